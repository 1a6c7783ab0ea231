"""Pick-benchmark tasks 1-3: window rules, reproducibility, and scores of hand-made pickers."""

from __future__ import annotations

import math

import numpy as np
import obspy
import pytest
import seisbench.util as sbu
from tests.evaluate.test_evaluation import make_dataset

from xiaonet.evaluate.traces import LabelledDataset
from xiaonet.picking.specs import build_picker, parse_picker_spec
from xiaonet.evaluate.pick_benchmark import (
    BenchmarkSettings,
    benchmark_pickers,
    dataset_rng,
    generate_windows,
    read_windows,
    run_benchmark,
    summarise_benchmark,
    write_windows,
)
from xiaonet.picking.pickers import Picker


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench") / "toy_bench"
    make_dataset(folder, n_quakes=6, n_noise=2, seed=3)
    return LabelledDataset(folder)


class GaussianPicker(Picker):
    """Annotates Gaussians (sigma 0.1 s) at the true onsets, shifted by ``shift`` seconds;
    optionally needs ``min_samples`` of input like a teacher with a fixed window."""

    def __init__(self, onsets_by_station: dict, shift: float = 0.0, min_samples: int = 0, swap=False,
                 name="gauss"):
        self.onsets, self.shift, self.min_samples, self.swap, self.name = (
            onsets_by_station, shift, min_samples, swap, name)

    def pick_block(self, stream):
        return sbu.PickList()

    def annotate(self, stream):
        z = stream.select(component="Z")[0]
        out = obspy.Stream()
        if z.stats.npts < self.min_samples:
            return out
        seconds = float(z.stats.starttime) + z.times()
        for phase in "PS":
            curve = np.zeros(z.stats.npts)
            for label, t in self.onsets.get(z.stats.station, []):
                if label == phase:
                    curve = np.maximum(curve, np.exp(-0.5 * ((seconds - float(t) - self.shift) / 0.1) ** 2))
            trace = z.copy()
            trace.data = curve
            trace.stats.channel = f"Gauss_{('S' if phase == 'P' else 'P') if self.swap else phase}"
            out.append(trace)
        return out


def comparable(windows):
    """Windows as tuples with NaN onsets as None (NaN != NaN)."""
    return [tuple(None if isinstance(v, float) and math.isnan(v) else v for v in vars(w).values())
            for w in windows]


def onsets(dataset):
    return {t.stream[0].stats.station: [(r.phase, r.time) for r in t.references] for t in dataset}


def test_windows_follow_the_task_rules(dataset):
    settings = BenchmarkSettings()
    windows, skipped = generate_windows(dataset, settings, np.random.default_rng(0))
    margin = settings.edge_margin_s * 100
    assert sum(w.label == "noise" for w in windows) >= 2  # the two noise rows at least
    for w in windows:
        meta = dataset.metadata.iloc[w.row]
        arrivals = [v for v in (meta["trace_p_arrival_sample"], meta["trace_s_arrival_sample"]) if not math.isnan(v)]
        inside = [a for a in arrivals if w.start <= a < w.end]
        if w.task == "detection":
            assert w.end - w.start == 3000
            if w.label == "earthquake":
                assert w.onset == min(arrivals) and w.start + margin <= w.onset <= w.end - margin
            else:
                assert all(a >= w.end + margin for a in arrivals)
        else:
            assert w.end - w.start == 1000
            assert inside == [w.onset]  # exactly one onset, the labelled one
            assert w.start + margin <= w.onset <= w.end - margin
        assert 0 <= w.start < w.end <= 6000
    assert set(skipped) == {"detection_too_short", "noise_no_room", "phase_no_room"}


def test_windows_are_reproducible_and_round_trip(dataset, tmp_path):
    settings = BenchmarkSettings(seed=7)
    first = generate_windows(dataset, settings, dataset_rng(7, dataset))[0]
    again = generate_windows(dataset, settings, dataset_rng(7, dataset))[0]
    other = generate_windows(dataset, settings, dataset_rng(8, dataset))[0]
    assert comparable(first) == comparable(again) and comparable(first) != comparable(other)
    path = write_windows(first, tmp_path / "windows.csv")
    assert comparable(read_windows(path)) == comparable(first)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="bad.csv: expected the columns"):
        read_windows(tmp_path / "bad.csv")


def test_perfect_annotation_scores_perfectly(dataset):
    settings = BenchmarkSettings()
    windows, _ = generate_windows(dataset, settings, np.random.default_rng(0))
    records = run_benchmark(GaussianPicker(onsets(dataset)), dataset, windows, settings, progress=False)
    summary = summarise_benchmark(records, settings)
    assert summary["task1_auc"] == 1.0
    assert summary["task2_mcc"] == 1.0
    assert summary["task3_P_mae"] < 0.011 and summary["task3_S_mae"] < 0.011  # one sample at 100 Hz
    assert summary["errors"] == 0


def test_shifted_and_swapped_annotations(dataset):
    settings = BenchmarkSettings()
    windows, _ = generate_windows(dataset, settings, np.random.default_rng(0))
    late = summarise_benchmark(run_benchmark(GaussianPicker(onsets(dataset), shift=0.3), dataset, windows,
                                             settings, progress=False), settings)
    assert late["task3_P_mean"] == pytest.approx(0.3, abs=0.011)
    assert late["task3_P_outlier_fraction"] == 1.0  # 0.3 s > 0.2 s
    swapped = summarise_benchmark(run_benchmark(GaussianPicker(onsets(dataset), swap=True), dataset, windows,
                                                settings, progress=False), settings)
    assert swapped["task2_mcc"] == -1.0


def test_picker_needing_long_input_is_not_scored_on_short_context(dataset):
    settings = BenchmarkSettings(context_s=20.0)
    windows, _ = generate_windows(dataset, settings, np.random.default_rng(0))
    fussy = GaussianPicker(onsets(dataset), min_samples=2500)  # needs 25 s, like a teacher
    summary = summarise_benchmark(run_benchmark(fussy, dataset, windows, settings, progress=False), settings)
    phase_windows = summary["task3_P_windows"] + summary["task3_S_windows"]
    # 10 s targets in 20 s contexts: too short; 30 s targets are long enough
    assert phase_windows > 0 and summary["task3_P_scored"] == 0 and summary["task2_scored"] == 0
    assert math.isnan(summary["task2_mcc"])
    assert summary["task1_scored"] == summary["task1_windows"] > 0


def test_stalta_has_no_phase_decision(dataset, tmp_path):
    settings = BenchmarkSettings()
    stalta = build_picker(parse_picker_spec("stalta"))
    summaries, records, windows = benchmark_pickers([stalta], [dataset], settings, tmp_path / "w.csv",
                                                    progress=False)
    (summary,) = summaries
    assert summary["picks_s"] is False
    assert math.isnan(summary["task2_mcc"]) and summary["task2_scored"] == 0
    assert math.isnan(summary["task3_S_rmse"]) and summary["task3_P_scored"] > 0
    assert summary["task1_auc"] > 0.9  # clear synthetic bursts against noise
    assert comparable(read_windows(tmp_path / "w.csv")) == comparable(windows)


def _record(task, label, det=float("nan"), p=float("nan"), s=float("nan"), residual=float("nan")):
    return {"task": task, "label": label, "detection_score": det, "P_score": p, "S_score": s,
            "onset_residual": residual, "error": ""}


def test_summary_of_hand_made_records():
    settings = BenchmarkSettings()
    records = [
        _record("detection", "earthquake", det=0.9), _record("detection", "noise", det=0.2),
        _record("detection", "earthquake", det=0.1), _record("detection", "noise"),  # not scored
        _record("phase", "P", p=0.8, s=0.1, residual=0.1), _record("phase", "P", p=0.2, s=0.6, residual=-0.3),
        _record("phase", "S", p=0.1, s=0.9, residual=0.0),
    ]
    summary = summarise_benchmark(records, settings)
    assert (summary["task1_windows"], summary["task1_scored"], summary["task1_noise"]) == (4, 3, 1)
    assert summary["task1_auc"] == pytest.approx(0.5)  # 0.9 beats 0.2, 0.1 loses to it
    # truth P,P,S; predicted P,S,S: tp=1 tn=1 fp=0 fn=1
    assert summary["task2_mcc"] == pytest.approx(0.5)
    assert summary["task3_P_rmse"] == pytest.approx(np.sqrt((0.01 + 0.09) / 2))
    assert summary["task3_P_outlier_fraction"] == 0.5
    only_p = summarise_benchmark([r for r in records if r["label"] != "S"], settings)
    assert math.isnan(only_p["task2_mcc"])  # one phase only: undefined, not 0
    stalta_like = summarise_benchmark(records, settings, picks_s=False)
    assert math.isnan(stalta_like["task2_mcc"]) and math.isnan(stalta_like["task3_S_mae"])
