"""Whole-trace evaluation on a SeisBench-format dataset the tests write into a temp folder."""

from __future__ import annotations

import numpy as np
import obspy
import pytest
import seisbench.util as sbu

from xiaonet.evaluate.evaluation import EvaluationSettings, evaluate
from xiaonet.data.records import DataError
from xiaonet.evaluate.traces import LabelledDataset, training_records
from xiaonet.picking.specs import parse_picker_spec
from xiaonet.picking.pickers import Picker

RATE = 100.0
N_SAMPLES = 6000  # 60 s


def make_dataset(folder, n_quakes: int = 6, n_noise: int = 2, seed: int = 1, start_times: bool = True,
                 same_station: bool = False):
    """Write a tiny SeisBench-format dataset: quakes with a P burst (all components) and a
    stronger S burst (horizontals) at known samples, plus pure-noise rows. Returns the truth
    as a list of dicts (row, P, S in samples, start)."""
    from seisbench.data import WaveformDataWriter

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth = []
    with WaveformDataWriter(folder / "metadata.csv", folder / "waveforms.hdf5") as writer:
        writer.data_format = {"component_order": "ZNE", "dimension_order": "CW", "sampling_rate": RATE,
                              "measurement": "velocity", "unit": "counts"}
        for row in range(n_quakes + n_noise):
            data = rng.normal(0, 1.0, (3, N_SAMPLES))
            meta = {
                "station_network_code": "XX",
                "station_code": "AAA" if same_station else f"S{row:02d}",
                "station_channel_code": "HHZ,HHN,HHE",
                "trace_sampling_rate_hz": RATE,
                "trace_category": "earthquake_local" if row < n_quakes else "noise",
            }
            start = obspy.UTCDateTime(2020, 1, 1, 0, row)
            if start_times:
                meta["trace_start_time"] = str(start)
            p = s = np.nan
            if row < n_quakes:
                p = int(rng.integers(1500, 2500))
                s = p + int(rng.integers(500, 900))
                t = np.arange(N_SAMPLES)
                for onset, amplitude, channels in ((p, 25.0, (0, 1, 2)), (s, 60.0, (1, 2))):
                    envelope = np.where(t >= onset, np.exp(-(t - onset) / 150.0), 0.0)
                    for c in channels:
                        data[c] += amplitude * envelope * np.sin(2 * np.pi * 8.0 * (t - onset) / RATE + c)
            meta["trace_p_arrival_sample"] = p
            meta["trace_s_arrival_sample"] = s
            writer.add_trace(meta, data.astype(np.float32))
            truth.append({"row": row, "P": p, "S": s, "start": start if start_times else None})
    return truth


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data") / "toy_quakes"
    make_dataset(folder)
    return folder


class OraclePicker(Picker):
    """Picks the truth (shifted by ``shift`` seconds) from a table keyed by station."""

    def __init__(self, truth_by_station: dict, shift: float = 0.0, duplicates: bool = False, name="oracle"):
        self.truth = truth_by_station
        self.shift = shift
        self.duplicates = duplicates
        self.name = name

    def annotate(self, stream):
        return obspy.Stream()

    def pick_block(self, stream):
        tr = stream[0]
        picks = sbu.PickList()
        for phase, time in self.truth.get(tr.stats.station, []):
            for extra in ((0.0, 0.3) if self.duplicates else (0.0,)):
                t = time + self.shift + extra
                picks.append(sbu.Pick(f"{tr.stats.network}.{tr.stats.station}.{tr.stats.location}",
                                      start_time=t, end_time=t, peak_time=t, peak_value=0.9,
                                      phase=phase))
        return picks


class EmptyPicker(OraclePicker):
    def pick_block(self, stream):
        return sbu.PickList()


class BrokenPicker(OraclePicker):
    def pick_block(self, stream):
        if stream[0].stats.station == "S01":
            raise RuntimeError("model exploded")
        return super().pick_block(stream)


def truth_by_station(dataset: LabelledDataset) -> dict:
    table = {}
    for trace in dataset:
        table[trace.stream[0].stats.station] = [(r.phase, obspy.UTCDateTime(r.time)) for r in trace.references]
    return table


def rows_by(evaluation, picker):
    return {r["phase"]: r for r in evaluation.rows if r["picker"] == picker}


def test_dataset_rows_become_streams_with_rate_order_start_and_picks(dataset_dir):
    truth = make_dataset(dataset_dir.parent / "again", seed=1)
    dataset = LabelledDataset(dataset_dir)
    assert len(dataset) == 8
    trace = dataset.trace(0)
    assert [tr.stats.channel for tr in trace.stream] == ["HHZ", "HHN", "HHE"]
    assert all(tr.stats.sampling_rate == RATE and tr.stats.npts == N_SAMPLES for tr in trace.stream)
    assert trace.stream[0].stats.starttime == truth[0]["start"]
    by_phase = {r.phase: r.time for r in trace.references}
    assert by_phase["P"] == pytest.approx(float(truth[0]["start"]) + truth[0]["P"] / RATE)
    assert by_phase["S"] == pytest.approx(float(truth[0]["start"]) + truth[0]["S"] / RATE)
    assert dataset.trace(7).references == [] and dataset.trace(7).category == "noise"
    # the S burst is on the horizontals: component order was kept (Z has no S burst)
    s_sample = int(truth[0]["S"])
    z, n = trace.stream[0].data, trace.stream[1].data
    assert np.abs(n[s_sample : s_sample + 100]).max() > 3 * np.abs(z[s_sample : s_sample + 100]).max()


def test_description_flags_physical_units_only_for_tiny_amplitudes(dataset_dir):
    stored = LabelledDataset(dataset_dir).describe()
    tiny = LabelledDataset(dataset_dir, gain=1e-20)
    assert stored["amplitudes"] == "counts-like" and stored["P_picks"] == 6 and stored["S_picks"] == 6
    assert tiny.name == "toy_quakesx1e-20"
    assert tiny.describe()["amplitudes"].startswith("physical")
    assert np.abs(tiny.trace(0).stream[0].data).max() < 1e-17


def test_bad_dataset_folders_are_named(tmp_path):
    with pytest.raises(DataError, match="metadata.csv is missing"):
        LabelledDataset(tmp_path / "nothing")
    folder = tmp_path / "no_picks"
    make_dataset(folder, n_quakes=1, n_noise=0)
    meta = (folder / "metadata.csv").read_text().replace("trace_p_arrival_sample", "p").replace(
        "trace_s_arrival_sample", "s")
    (folder / "metadata.csv").write_text(meta)
    with pytest.raises(DataError, match="no analyst pick column"):
        LabelledDataset(folder)


def test_perfect_shifted_empty_and_duplicate_pickers(dataset_dir):
    dataset = LabelledDataset(dataset_dir)
    table = truth_by_station(dataset)
    pickers = [
        OraclePicker(table, name="perfect"),
        OraclePicker(table, shift=0.15, name="late"),
        EmptyPicker(table, name="empty"),
        OraclePicker(table, duplicates=True, name="twice"),
    ]
    evaluation = evaluate(pickers, [dataset], EvaluationSettings(progress=False))
    perfect, late = rows_by(evaluation, "perfect"), rows_by(evaluation, "late")
    for phase in "PS":
        assert perfect[phase]["f1"] == 1.0 and perfect[phase]["residual_mae"] == pytest.approx(0, abs=1e-6)
        assert late[phase]["f1"] == 1.0
        assert late[phase]["residual_mean"] == pytest.approx(0.15, abs=1e-6)
        assert late[phase]["residual_outlier_fraction"] == 0.0  # 0.15 < 0.2 s
    empty = rows_by(evaluation, "empty")["P"]
    assert (empty["tp"], empty["fn"], empty["f1"]) == (0, 6, 0.0) and "no picks" in empty["note"]
    twice = rows_by(evaluation, "twice")["P"]
    assert (twice["tp"], twice["fp"]) == (6, 6) and twice["precision"] == 0.5
    # the sweep of a perfect picker is perfect up to its 0.9 confidence, empty above
    sweep = {(s["phase"], s["threshold"]): s for s in evaluation.sweeps if s["picker"] == "perfect"}
    assert sweep[("P", 0.9)]["f1"] == 1.0 and sweep[("P", 0.95)]["f1"] == 0.0
    assert perfect["P"]["best_threshold"] == 0.05 and perfect["P"]["best_f1"] == 1.0


class NextRowPicker(Picker):
    """Recognises its row by the first sample and picks the *next* row's arrivals."""

    name = "next-row"

    def __init__(self, fingerprints: dict, arrivals: list):
        self.fingerprints, self.arrivals = fingerprints, arrivals

    def annotate(self, stream):
        return obspy.Stream()

    def pick_block(self, stream):
        z = stream.select(component="Z")[0]
        row = self.fingerprints[round(float(z.data[0]), 3)]
        picks = sbu.PickList()
        for phase, t in self.arrivals[(row + 1) % len(self.arrivals)]:
            picks.append(sbu.Pick("XX.AAA.", start_time=t, end_time=t, peak_time=t, peak_value=0.9, phase=phase))
        return picks


def test_rows_sharing_a_station_are_scored_separately(tmp_path):
    folder = tmp_path / "one_station"
    make_dataset(folder, n_quakes=3, n_noise=0, start_times=False, same_station=True)
    dataset = LabelledDataset(folder)
    # Every row: the same station and the same default start time. A picker that gives each
    # row the next row's arrivals would score perfectly if picks were keyed by station.
    traces = list(dataset)
    fingerprints = {round(float(t.stream[0].data[0]), 3): i for i, t in enumerate(traces)}
    arrivals = [[(r.phase, obspy.UTCDateTime(r.time)) for r in t.references] for t in traces]
    evaluation = evaluate([NextRowPicker(fingerprints, arrivals)], [dataset], EvaluationSettings(progress=False))
    p = rows_by(evaluation, "next-row")["P"]
    own = [dict(a)["P"] for a in arrivals]
    expected = sum(abs(own[(i + 1) % 3] - own[i]) <= 0.5 for i in range(3))
    assert p["tp"] == expected < 3
    assert p["fp"] == p["fn"] == 3 - expected
    assert "no trace_start_time" in evaluation.datasets[0]["notes"]


def test_a_failing_trace_is_recorded_and_the_rest_scored(dataset_dir):
    dataset = LabelledDataset(dataset_dir)
    evaluation = evaluate([BrokenPicker(truth_by_station(dataset), name="broken")], [dataset],
                          EvaluationSettings(progress=False))
    p = rows_by(evaluation, "broken")["P"]
    assert p["tp"] == 5 and p["fn"] == 1 and "1 trace(s) failed" in p["note"]
    assert "model exploded" in evaluation.runs[0].failures[0]


def test_stalta_scores_p_only_and_ignores_amplitude_scale(dataset_dir):
    stored, tiny = LabelledDataset(dataset_dir), LabelledDataset(dataset_dir, gain=1e-20)
    evaluation = evaluate([parse_picker_spec("stalta")], [stored, tiny], EvaluationSettings(progress=False))
    rows = {(r["dataset"], r["phase"]): r for r in evaluation.rows}
    assert rows[("toy_quakes", "P")]["recall"] >= 5 / 6
    assert "P only" in rows[("toy_quakes", "S")]["note"]
    for key in ("tp", "fp", "fn"):
        assert rows[("toy_quakes", "P")][key] == rows[("toy_quakesx1e-20", "P")][key]


def test_student_picks_do_not_change_with_amplitude_scale(dataset_dir, tmp_path, torch_threads):
    import torch

    from xiaonet.models.presets import build_student

    torch.manual_seed(0)
    model = build_student("xiaonet-xs")
    model.save(str(tmp_path / "toy_student"))
    spec = parse_picker_spec(str(tmp_path / "toy_student"))
    spec.thresholds = {"P": 0.34, "S": 0.34}  # an untrained net hovers near 1/3
    stored, tiny = LabelledDataset(dataset_dir), LabelledDataset(dataset_dir, gain=1e-20)
    evaluation = evaluate([spec], [stored, tiny], EvaluationSettings(progress=False), max_traces=3)
    assert not evaluation.unavailable
    runs = {run.dataset: run for run in evaluation.runs}
    for key, picks in runs["toy_quakes"].picks.items():
        twin = runs["toy_quakesx1e-20"].picks[key.replace("toy_quakes", "toy_quakesx1e-20")]
        assert [(p.phase, round(float(p.peak_time), 2)) for p in picks] == [
            (p.phase, round(float(p.peak_time), 2)) for p in twin]


def test_unknown_picker_is_listed_not_fatal(dataset_dir):
    evaluation = evaluate([parse_picker_spec("nonsense"), parse_picker_spec("stalta")],
                          [LabelledDataset(dataset_dir)], EvaluationSettings(progress=False), max_traces=2)
    assert evaluation.unavailable[0]["picker"] == "nonsense"
    assert "Unknown picker" in evaluation.unavailable[0]["reason"]
    assert {r["picker"] for r in evaluation.rows} == {"stalta"}


def test_picker_spec_window_option():
    assert parse_picker_spec("phasenet:stead").spec == "phasenet:stead"
    assert parse_picker_spec("xiaonet-s@window=6001").name == "xiaonet-s@window=6001"
    with pytest.raises(ValueError, match="@window=SAMPLES"):
        parse_picker_spec("xiaonet-s@stride=4")


def test_training_records_of_a_split_file_are_left_out(dataset_dir, tmp_path):
    split = tmp_path / "split.csv"
    names = LabelledDataset(dataset_dir).metadata["trace_name"].tolist()
    import csv

    with split.open("w", newline="") as handle:  # trace names hold commas: quoted, as xiaonet train writes
        writer = csv.writer(handle)
        writer.writerow(["split", "source", "station", "record"])
        for i, part in ((0, "train"), (1, "val"), (2, "train"), (3, "dev"), (4, "test")):
            writer.writerow([part, "toy_quakes", f"XX.S{i:02d}", f"toy_quakes/{names[i]}"])
    excluded = training_records(split)
    assert len(excluded) == 3
    dataset = LabelledDataset(dataset_dir, exclude=excluded)
    assert dataset.rows == [3, 4, 5, 6, 7] and len(dataset) == 5
    assert [t.key for t in dataset][0] == "toy_quakes/3"
    assert dataset.describe()["excluded_training_rows"] == 3
    with pytest.raises(DataError, match="split file not found"):
        training_records(tmp_path / "nope.csv")


# --- continuous data scored against the teachers' consensus ---------------------------------


class FixedPicker(Picker):
    """Picks at fixed offsets (seconds after each instrument's start)."""

    def __init__(self, name, offsets):
        self.name = name
        self.offsets = offsets

    def pick_block(self, stream):
        start = stream[0].stats.starttime
        s = stream[0].stats
        trace_id = f"{s.network}.{s.station}.{s.location}"
        return sbu.PickList(sbu.Pick(trace_id, start + t, start + t, peak_time=start + t, peak_value=0.9,
                                     phase=phase) for phase, t in self.offsets)

    def annotate(self, stream):
        return obspy.Stream()


@pytest.fixture
def continuous_dir(tmp_path):
    folder = tmp_path / "continuous"
    folder.mkdir()
    for network in ("AA", "BB"):
        stream = obspy.read()
        for tr in stream:
            tr.stats.network = network
        stream.write(str(folder / f"{network}.RJOB.mseed"), format="MSEED")
    (folder / "README.md").write_text("not a waveform")
    return folder


def test_consensus_scoring_rewards_agreement_and_ignores_single_teacher_picks(continuous_dir):
    from xiaonet.evaluate.traces import ContinuousDataset

    assert ContinuousDataset.networks_in(continuous_dir) == ["AA", "BB"]
    datasets = [ContinuousDataset(continuous_dir, network=n) for n in ("AA", "BB")]
    assert [d.name for d in datasets] == ["continuous:AA", "continuous:BB"] and len(datasets[0]) == 1
    phasenet = FixedPicker("phasenet", [("P", 4.0), ("S", 10.0), ("P", 20.0)])
    eqtransformer = FixedPicker("eqtransformer", [("P", 4.2), ("S", 10.6)])
    # student: P on the consensus, one P near PhaseNet's lone P (ignored), one false P
    student = FixedPicker("student", [("P", 4.1), ("P", 20.1), ("P", 25.0), ("S", 10.3)])
    result = evaluate([phasenet, eqtransformer, student], datasets,
                      EvaluationSettings(progress=False, thresholds=(0.5,)))
    rows = {(r["dataset"], r["picker"], r["phase"]): r for r in result.rows}
    p = rows[("continuous:AA", "student", "P")]
    assert (p["tp"], p["fp"], p["fn"]) == (1, 1, 0)
    s = rows[("continuous:AA", "student", "S")]  # teachers' S are 0.6 s apart: no reference S
    assert (s["tp"], s["fp"], s["fn"]) == (0, 0, 0)
    assert "reference (a consensus teacher)" in rows[("continuous:AA", "phasenet", "P")]["note"]
    described = {d["dataset"]: d for d in result.datasets}
    assert described["continuous:BB"]["P_picks"] == 1 and described["continuous:BB"]["S_picks"] == 0
    assert described["continuous:AA"]["single_teacher_picks"] == 3


def test_continuous_folder_without_waveforms_is_named(tmp_path):
    from xiaonet.evaluate.traces import ContinuousDataset

    (tmp_path / "notes.txt").write_text("nothing")
    with pytest.raises(DataError, match="no waveform files"):
        ContinuousDataset(tmp_path)


def test_training_and_evaluation_read_a_seisbench_folder_the_same_way(tmp_path):
    """One reader of SeisBench folders: same waveforms, picks and start time for both paths."""
    import numpy as np

    from xiaonet.data.records import load_labelled_records
    from xiaonet.evaluate.traces import LabelledDataset

    from seisbench.data import WaveformDataWriter

    def write_tiny_dataset(folder, start="2020-01-01T00:00:00", p_sample=1500.0):
        with WaveformDataWriter(folder / "metadata.csv", folder / "waveforms.hdf5") as writer:
            writer.data_format = {"component_order": "ZNE", "dimension_order": "CW", "sampling_rate": 100.0}
            writer.add_trace({"station_network_code": "XX", "station_code": "AAA", "trace_name": "row0",
                              "trace_sampling_rate_hz": 100.0, "trace_start_time": start,
                              "trace_p_arrival_sample": p_sample, "trace_s_arrival_sample": 2100.0},
                             np.random.default_rng(0).normal(size=(3, 3000)).astype(np.float32))

    folder = tmp_path / "tiny"
    folder.mkdir()
    write_tiny_dataset(folder, start="27/10/2016 19:12")
    trace = LabelledDataset(folder).trace(0)
    record = load_labelled_records(folder, 100.0, note=lambda m: None)[0]
    assert float(trace.stream[0].stats.starttime) == record.start_time == float(obspy.UTCDateTime(2016, 10, 27, 19, 12))
    np.testing.assert_allclose(np.stack([tr.data for tr in trace.stream]), record.waveform, rtol=1e-6)
    p_time = next(r.time for r in trace.references if r.phase == "P")
    assert p_time == pytest.approx(record.start_time + record.p_samples[0] / 100.0)

    bad = tmp_path / "bad"
    bad.mkdir()
    write_tiny_dataset(bad, p_sample="soon")
    with pytest.raises(DataError, match="trace_p_arrival_sample is 'soon'"):
        LabelledDataset(bad).trace(0)
    with pytest.raises(DataError, match="row 0: trace_p_arrival_sample is 'soon'"):
        load_labelled_records(bad, 100.0, note=lambda m: None)
