"""Smoke training on tiny data built from ObsPy's example event: loss falls, resume is exact.

The dataset is written with SeisBench's WaveformDataWriter into tmp_path (four "stations"
carrying the example event at different offsets), plus one miniSEED file as continuous
data. A deterministic fake teacher labels them, so no teacher weights are needed.
"""

from __future__ import annotations

import json

import numpy as np
import obspy
import pytest
import torch

from xiaonet.distill.config import config_from_dict
from xiaonet.distill.splits import load_data
from xiaonet.distill.teacher_labels import attach_teacher_labels
from xiaonet.distill.selection import score_records
from xiaonet.distill.training import EarlyStopping, set_seed, setup_device, train

P_SAMPLE, S_SAMPLE = 470, 800  # the example event's P (00:20:07.7) and a nominal S


class FakeTeacher:
    """Gaussian P / S probabilities at the analyst-like times of the example event."""

    def annotate(self, stream, batch_size=64):
        out = obspy.Stream()
        tr = stream[0]
        n = tr.stats.npts
        t = np.arange(n)
        for phase, sample in (("P", P_SAMPLE), ("S", S_SAMPLE)):
            shifted = sample + int(round(tr.stats.get("event_offset", 0)))
            data = np.exp(-0.5 * ((t - shifted) / 20.0) ** 2) if tr.stats.station != "CONT" else np.zeros(n)
            out.append(obspy.Trace(data=data, header={"channel": f"Fake_{phase}", "sampling_rate": 100.0,
                                                      "starttime": tr.stats.starttime,
                                                      "station": tr.stats.station}))
        return out


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    import seisbench.data as sbd

    root = tmp_path_factory.mktemp("tinydata")
    stream = obspy.read()
    stream.sort(keys=["channel"], reverse=True)  # Z, N, E
    data = np.stack([tr.data for tr in stream]).astype(np.float32)
    labelled = root / "labelled"
    with sbd.WaveformDataWriter(labelled / "metadata.csv", labelled / "waveforms.hdf5") as writer:
        writer.data_format = {"dimension_order": "CW", "component_order": "ZNE", "sampling_rate": 100}
        for i in range(4):
            writer.add_trace(
                {"station_network_code": "XX", "station_code": f"ST{i}", "trace_sampling_rate_hz": 100.0,
                 "trace_p_arrival_sample": P_SAMPLE, "trace_s_arrival_sample": S_SAMPLE,
                 "trace_category": "earthquake_local", "trace_start_time": "2009-08-24T00:20:03"},
                data,
            )
    continuous = root / "continuous"
    continuous.mkdir()
    quiet = stream.copy()
    for tr in quiet:
        tr.stats.station = "CONT"
        tr.data = tr.data[:400].repeat(8)[:3000].astype(np.int32)  # pre-event noise only
    quiet.write(str(continuous / "XX.CONT.mseed"), format="MSEED")
    return root


def tiny_config(root, cache, **train):
    return config_from_dict({
        "name": "tiny",
        "seed": 7,
        "model": {"preset": "xiaonet-xs"},
        "teacher": {"members": [{"name": "phasenet", "weights": "fake"}], "cache_dir": str(cache)},
        "data": {
            "shared_dir": str(root),
            "window_len": 1024,
            "sources": [
                {"path": "labelled", "kind": "labelled", "weight": 0.7, "dev_fraction": 0.25},
                {"path": "continuous", "kind": "continuous", "weight": 0.3},
            ],
        },
        "train": {"batch_size": 8, "steps_per_epoch": 6, "max_epochs": 2, "lr": 0.01, "progress": False,
                  "patience": 100, **train},
        "eval": {"threshold_grid": [0.2, 0.4]},
    })


def load_bundle(config):
    bundle = load_data(config)
    attach_teacher_labels(bundle.train + bundle.dev, config.teacher.members, config.teacher.cache_dir,
                          load_model=lambda name, weights: FakeTeacher())
    return bundle


def test_split_is_by_station_and_labels_attached(tiny_data, tmp_path):
    config = tiny_config(tiny_data, tmp_path / "cache")
    bundle = load_bundle(config)
    dev_stations = {r.station for r in bundle.dev}
    assert dev_stations and not dev_stations & {r.station for r in bundle.train}
    assert len(bundle.dev) == 1 and len(bundle.train) == 4  # 3 labelled + 1 continuous
    assert all(r.teacher is not None for r in bundle.train)
    labelled = [r for r in bundle.train if r.source == "labelled"][0]
    assert int(np.argmax(labelled.teacher[0])) == P_SAMPLE
    # The cache is reused: a second pass computes nothing.
    counts = attach_teacher_labels(bundle.train, config.teacher.members, config.teacher.cache_dir,
                                   load_model=lambda *a: pytest.fail("teacher must come from the cache"))
    assert counts["computed"] == 0


def test_validation_split_chooses_epoch_and_thresholds_and_leaves_dev_unchanged(tiny_data, tmp_path,
                                                                                torch_threads):
    plain = tiny_config(tiny_data, tmp_path / "cache")
    with_val = tiny_config(tiny_data, tmp_path / "cache")
    with_val.data.sources[0].val_fraction = 0.25
    before, bundle = load_data(plain), load_bundle(with_val)
    assert [r.name for r in bundle.dev] == [r.name for r in before.dev]  # dev drawn first, unchanged
    stations = [{r.station for r in split} for split in (bundle.train, bundle.val, bundle.dev)]
    assert len(bundle.val) == 1 and all(stations)
    assert not (stations[0] & stations[1] or stations[0] & stations[2] or stations[1] & stations[2])
    assert bundle.selection == ("val", bundle.val)
    result = train(with_val, tmp_path / "run", bundle)
    assert "val_p_f1" in result.history[0] and "dev_p_f1" not in result.history[0]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["selection_split"] == "val" and metrics["thresholds"]["P"]["tuned_on"] == "val"
    assert "val" in (tmp_path / "run" / "split.csv").read_text()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["val_stations"] == sorted(stations[1])


def test_refit_keeps_the_chosen_epoch_and_thresholds_without_scoring_any_split(tiny_data, tmp_path,
                                                                               torch_threads):
    config = tiny_config(tiny_data, tmp_path / "cache", max_epochs=4)
    config.eval.keep_epoch, config.eval.p_threshold, config.eval.s_threshold = 2, 0.35, 0.45
    bundle = load_bundle(config)
    result = train(config, tmp_path / "refit", bundle)
    assert [h["epoch"] for h in result.history] == [1, 2]  # stops at the kept epoch
    assert not any(key.endswith("_f1") for key in result.history[0])  # dev never scored per epoch
    assert result.best_epoch == 2
    assert result.model.default_args == {"P_threshold": 0.35, "S_threshold": 0.45}
    assert result.history[-1]["lr"] > 0.1 * config.train.lr  # schedule spans max_epochs, not 2


def test_val_and_dev_fractions_must_leave_training_stations(tiny_data, tmp_path):
    from xiaonet.data.config_files import ConfigError
    from xiaonet.distill.config import validate_config

    config = tiny_config(tiny_data, tmp_path / "cache")
    config.data.sources[0].val_fraction = 0.8
    with pytest.raises(ConfigError, match="val_fraction"):
        validate_config(config)


def test_loss_falls_and_run_folder_is_complete(tiny_data, tmp_path, torch_threads):
    config = tiny_config(tiny_data, tmp_path / "cache", max_epochs=4, steps_per_epoch=8)
    bundle = load_bundle(config)
    result = train(config, tmp_path / "run", bundle)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.85 * losses[0], losses
    run = tmp_path / "run"
    for name in ("config.json", "manifest.json", "split.csv", "version.txt", "history.csv", "history.json",
                 "curves.png", "checkpoint.pt", "best.pt", "metrics.json", "model/tiny.json", "model/tiny.pt"):
        assert (run / name).is_file(), name
    saved = json.loads((run / "model" / "tiny.json").read_text())
    assert set(saved["default_args"]) == {"P_threshold", "S_threshold"}
    assert "ST" in (run / "split.csv").read_text()


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_data, tmp_path, torch_threads):
    straight = tiny_config(tiny_data, tmp_path / "cache", max_epochs=2)
    bundle = load_bundle(straight)
    a = train(straight, tmp_path / "straight", bundle)
    # "Killed" after epoch 1: a run configured for 1 epoch, then resumed with the 2-epoch config.
    first = tiny_config(tiny_data, tmp_path / "cache", max_epochs=1)
    train(first, tmp_path / "killed", bundle)
    (tmp_path / "killed" / "config.json").write_text((tmp_path / "straight" / "config.json").read_text())
    state = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 1
    b = train(straight, tmp_path / "killed", bundle, resume=True)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    last_a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["model"]
    last_b = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)["model"]
    for key in last_a:
        assert torch.equal(last_a[key], last_b[key]), key


def test_resume_without_checkpoint_names_the_file(tiny_data, tmp_path):
    config = tiny_config(tiny_data, tmp_path / "cache")
    bundle = load_bundle(config)
    with pytest.raises(FileNotFoundError, match="checkpoint.pt"):
        train(config, tmp_path / "nothing", bundle, resume=True)


class _RunsCode:
    """Unpickling this would call print: what a tampered checkpoint could do."""

    def __reduce__(self):
        return (print, ("code ran while loading a checkpoint",))


def test_resume_loads_the_checkpoint_with_weights_only(tiny_data, tmp_path, capsys):
    config = tiny_config(tiny_data, tmp_path / "cache", max_epochs=1)
    bundle = load_bundle(config)
    train(config, tmp_path / "run", bundle)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)  # plain data: loads
    state["history"].append(_RunsCode())
    torch.save(state, tmp_path / "run" / "checkpoint.pt")
    capsys.readouterr()
    with pytest.raises(Exception, match="weights_only|Unsupported global"):
        train(config, tmp_path / "run", bundle, resume=True)
    assert "code ran" not in capsys.readouterr().out


def test_score_records_counts_picks_on_noise_as_false_positives(tiny_data, tmp_path):
    config = tiny_config(tiny_data, tmp_path / "cache")
    bundle = load_bundle(config)

    class Everywhere:
        def pick(self, stream, note=None):
            from seisbench.util import Pick

            tid = f"{stream[0].stats.network}.{stream[0].stats.station}."
            start = stream[0].stats.starttime
            return [Pick(tid, start + P_SAMPLE / 100, phase="P"), Pick(tid, start + 20.0, phase="P"),
                    Pick(tid, start + S_SAMPLE / 100 + 0.2, phase="S")]

    scores = score_records(Everywhere(), bundle.dev)
    assert scores["P"]["tp"] == 1 and scores["P"]["fp"] == 1 and scores["P"]["fn"] == 0
    assert scores["S"]["tp"] == 1 and abs(scores["S"]["residual_mae"] - 0.2) < 1e-6


def test_early_stopping_counts_epochs_without_improvement():
    stopper = EarlyStopping(patience=2, min_delta=0.01, mode="max")
    assert stopper.step(0.5, 1)
    assert not stopper.step(0.505, 2)  # below min_delta
    assert not stopper.should_stop
    assert not stopper.step(0.4, 3)
    assert stopper.should_stop and stopper.best_epoch == 1
    clone = EarlyStopping()
    clone.load_state_dict(stopper.state_dict())
    assert clone.should_stop and clone.best == 0.5


def test_set_seed_and_setup_device():
    set_seed(3)
    a = torch.rand(3)
    set_seed(3)
    assert torch.equal(a, torch.rand(3))
    assert setup_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        setup_device("tpu9")


def test_missing_teacher_weights_name_the_variable_and_file(tiny_data, tmp_path):
    from xiaonet.distill.config import TeacherMember
    from xiaonet.models.teachers import TeacherUnavailable

    config = tiny_config(tiny_data, tmp_path / "cache")
    bundle = load_data(config)
    with pytest.raises(TeacherUnavailable, match=r"SEISBENCH_CACHE_ROOT.*|no_such_weights\.pt"):
        attach_teacher_labels(bundle.train, [TeacherMember("phasenet", "no_such_weights")], tmp_path / "c2")


def test_flat_windows_are_recognised():
    from xiaonet.data.windows import is_flat

    assert is_flat(np.full((3, 100), 1242.0, dtype=np.float32))
    assert is_flat(np.zeros((3, 100)))
    noisy = np.full((3, 100), 1242.0)
    noisy[0, 50] += 1.0
    assert not is_flat(noisy)


def test_shipped_students_have_cards_thresholds_and_size():
    from xiaonet.models.model import count_macs, count_parameters
    from xiaonet.models.presets import DEFAULT_PRESET, PRESETS, load_student, shipped_weights

    shipped = [name for name in PRESETS if shipped_weights(name) is not None]
    if not shipped:
        pytest.skip("no trained weights shipped in xiaonet/weights yet")
    for name in shipped:
        prefix = shipped_weights(name)
        assert prefix.with_suffix(".md").is_file(), f"{name} has no model card"
        model = load_student(name)
        assert set(model.default_args) >= {"P_threshold", "S_threshold"}
        if name == DEFAULT_PRESET:  # the edge budget: <= 40k parameters, <= 1/10 of PhaseNet's MACs
            assert count_parameters(model) <= 40_000
            assert count_macs(model, 3000) <= 2_000_000
        picks = model.classify(obspy.read()).picks
        assert all(p.phase in ("P", "S") for p in picks)
    # a student small enough for a microcontroller still ships beside the default
    assert any(count_parameters(load_student(name)) <= 10_000 for name in shipped)


def test_an_early_warning_student_trains_and_is_saved_as_one(tiny_data, tmp_path, torch_threads):
    """The smoke version of configs/xiaonet-ew.json: loss on the decided samples, scored once
    at the end, the settings saved with the weights."""
    from xiaonet.models.presets import load_student

    config = tiny_config(tiny_data, tmp_path / "cache", max_epochs=3, steps_per_epoch=6, score_every=3,
                         onset_share=0.5)
    config.model.overrides = {"window_len": 1024, "lookahead_s": 0.2, "hop_s": 0.1}
    config.eval.p_threshold, config.eval.s_threshold = 0.3, 0.3
    bundle = load_bundle(config)
    result = train(config, tmp_path / "run", bundle)
    assert [("val_p_f1" in h or "dev_p_f1" in h) for h in result.history] == [False, False, True]
    saved = load_student(str(tmp_path / "run" / "model" / "tiny"))
    assert saved.early_warning == {"lookahead_s": 0.2, "hop_s": 0.1, "confirm": 0.5}


def test_a_padded_start_student_learns_on_windows_that_start_their_record(tiny_data, tmp_path, torch_threads):
    """train.record_start_share: that share of the windows begin their record before the
    samples the student decides, filled as streaming fills a record's start; the student and
    the share go together."""
    from types import SimpleNamespace

    from xiaonet.data.config_files import ConfigError
    from xiaonet.distill.batches import make_batch
    from xiaonet.distill.config import check_trainable

    rng = np.random.default_rng(0)
    waveforms = rng.normal(5.0, 1.0, (64, 3, 200))
    sampler = SimpleNamespace(window_len=200, draw=lambda r: waveforms[r.integers(64)],
                              draw_onset_at=lambda r, a, b: waveforms[r.integers(64)])
    onset = np.zeros((3, 200), np.float32)
    onset[0] = 1.0  # a P everywhere: before a record's start the target must become noise
    window = lambda w, r: SimpleNamespace(waveform=w, soft=onset, hard=onset)  # noqa: E731
    x, teacher, _, labels, _ = (t.numpy() for t in make_batch(sampler, window, rng, 64, (150, 190), 0.0,
                                                               record_start_share=0.5))
    starts = []
    for w, soft, hard in zip(x, teacher, labels):
        start = int(np.argmin(np.isclose(w, w[:, :1]).all(axis=0)))  # samples equal to the first
        if start > 1:
            np.testing.assert_allclose(w[:, 0], w[:, start:].mean(axis=1), rtol=1e-5)
            for target in (soft, hard):
                assert (target[:, :start].T == [0, 0, 1]).all() and (target[:, start:] == onset[:, start:]).all()
        starts.append(start)
    assert max(starts) < 190 and 16 <= sum(s > 1 for s in starts) <= 48, starts
    assert any(110 <= s < 190 for s in starts) and any(1 < s < 110 for s in starts), starts
    config = tiny_config(tiny_data, tmp_path / "cache", max_epochs=2, steps_per_epoch=3, score_every=2,
                         onset_share=0.5, record_start_share=0.3)
    config.model.overrides = {"window_len": 1024, "lookahead_s": 0.2, "hop_s": 0.1}
    with pytest.raises(ConfigError, match="record_start_share"):
        check_trainable(config)
    config.model.overrides["padded_start"] = True
    check_trainable(config)
    config.eval.p_threshold, config.eval.s_threshold = 0.3, 0.3
    train(config, tmp_path / "run", load_bundle(config))
    from xiaonet.models.presets import load_student

    saved = load_student(str(tmp_path / "run" / "model" / "tiny"))
    assert saved.early_warning["padded_start"] is True


def test_training_can_start_from_a_students_weights(tiny_data, tmp_path, torch_threads):
    """model.init_weights: the run starts from those weights (a vanishing learning rate keeps
    them), and weights with other layers are refused before any data is read."""
    from xiaonet.data.config_files import ConfigError
    from xiaonet.distill.config import check_trainable
    from xiaonet.models.presets import build_student, load_student

    torch.manual_seed(3)
    build_student("xiaonet-xs", window_len=3001).save(str(tmp_path / "start"))
    config = tiny_config(tiny_data, tmp_path / "cache", max_epochs=1, steps_per_epoch=2, lr=1e-12)
    config.model.init_weights = str(tmp_path / "start")
    config.model.overrides = {"window_len": 1024, "lookahead_s": 0.2, "hop_s": 0.1}
    check_trainable(config)
    train(config, tmp_path / "run", load_bundle(config))
    start = load_student(str(tmp_path / "start")).state_dict()
    saved = load_student(str(tmp_path / "run" / "model" / "tiny"))
    for name, value in saved.state_dict().items():
        torch.testing.assert_close(value, start[name], atol=1e-6, rtol=0)
    config.model.init_weights = "xiaonet-s"  # 9.9k parameters into the 2.6k-parameter preset
    with pytest.raises(ConfigError, match="model.init_weights: 'xiaonet-s' has other layers"):
        check_trainable(config)
