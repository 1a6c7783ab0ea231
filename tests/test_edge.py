"""The torch-free runtime: same windows, stacking, trigger and picks as the torch path."""

import subprocess
import sys
import textwrap

import numpy as np
import obspy
import pytest

from xiaonet.edge import EdgeModelError, EdgePicker, trigger_onset, window_offsets
from xiaonet.data.picktable import PICK_COLUMNS
from xiaonet.edge.filters import bandpass

THRESHOLDS = {"P": 0.3, "S": 0.3}


@pytest.fixture(scope="module")
def student_onnx(tmp_path_factory):
    import torch

    from xiaonet.export.onnx_files import export_onnx
    from xiaonet.models.presets import build_student

    torch.manual_seed(0)
    model = build_student("xiaonet-s").eval()
    path = export_onnx(model, tmp_path_factory.mktemp("edge") / "xiaonet-s.onnx", "xiaonet-s")
    return model, path


def long_stream(seed=1, seconds=95.0):
    """ObsPy's example event inside seeded noise: several windows, the last one end-aligned."""
    rng = np.random.default_rng(seed)
    example = obspy.read()
    out = obspy.Stream()
    n = int(seconds * 100)
    for trace in example:
        data = rng.normal(0, 30.0, n)
        data[4000 : 4000 + trace.stats.npts] += trace.data
        out.append(obspy.Trace(data, {**{k: trace.stats[k] for k in ("network", "station", "location", "channel")},
                                      "sampling_rate": 100.0, "starttime": trace.stats.starttime - 40.0}))
    return out


def test_trigger_onset_equals_obspy_on_random_curves():
    from obspy.signal.trigger import trigger_onset as obspy_trigger_onset

    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 400))
        curve = rng.random(n)
        if rng.random() < 0.5:  # smooth, probability-like curves too
            curve = np.convolve(curve, np.ones(9) / 9, mode="same") ** 2
        thres1 = float(rng.uniform(0.05, 0.9))
        thres2 = thres1 * float(rng.uniform(0.2, 1.0))
        expected = np.asarray(obspy_trigger_onset(curve, thres1, thres2), dtype=np.int64).reshape(-1, 2)
        np.testing.assert_array_equal(trigger_onset(curve, thres1, thres2), expected)


def test_trigger_onset_refuses_inverted_thresholds():
    with pytest.raises(ValueError, match="thres1 >= thres2"):
        trigger_onset(np.zeros(5), 0.2, 0.4)


def test_window_offsets_cover_record_like_seisbench():
    for n in (3001, 3002, 5000, 9001, 360_000):
        offsets = window_offsets(n, 3001, 750)
        assert offsets[0] == 0 and offsets[-1] + 3001 == n
        assert np.all(np.diff(offsets) <= 2251)
    assert window_offsets(3000, 3001, 750).size == 0


@pytest.mark.parametrize("method", ["avg", "max"])
def test_window_stack_equals_a_nan_aware_reference(method):
    from xiaonet.edge.windowing import WindowStack

    rng = np.random.default_rng(2)
    n, length, blinding = 9000, 3001, (100, 200)
    offsets = window_offsets(n, length, 1500)
    predictions = rng.random((len(offsets), 2, length)).astype(np.float32)
    reference = np.full((len(offsets), 2, n), np.nan)
    stack = WindowStack(2, n, blinding, method)
    for i, (offset, prediction) in enumerate(zip(offsets, predictions)):
        reference[i, :, offset + blinding[0] : offset + length - blinding[1]] = prediction[:, blinding[0] : length - blinding[1]]
        stack.add(int(offset), prediction)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmean(reference, axis=0) if method == "avg" else np.nanmax(reference, axis=0)
    np.testing.assert_allclose(stack.result(), expected, rtol=1e-6, equal_nan=True)


def test_annotations_and_picks_equal_torch_path(student_onnx):
    from xiaonet.picking.pickers import ModelPicker

    model, path = student_onnx
    torch_picker = ModelPicker(model, name="xiaonet-s", thresholds=THRESHOLDS)
    edge_picker = EdgePicker(path, thresholds=THRESHOLDS)
    for stream in (obspy.read(), long_stream()):
        expected = torch_picker.annotate(stream.copy())
        got = edge_picker.annotate(stream.copy())
        assert len(got) == len(expected) == 3
        for e, g in zip(sorted(expected, key=lambda t: t.stats.channel), sorted(got, key=lambda t: t.stats.channel)):
            assert e.stats.channel.split("_")[1] == g.stats.channel.split("_")[1]
            assert abs(e.stats.starttime - g.stats.starttime) < 1e-6
            assert e.stats.npts == g.stats.npts
            np.testing.assert_allclose(g.data, e.data, atol=1e-5)
        torch_picks = torch_picker.pick(stream.copy())
        edge_picks = edge_picker.pick(stream.copy())
        assert len(torch_picks) > 0, "the seeded student must pick something for this test to bite"
        assert len(edge_picks) == len(torch_picks)
        for t, e in zip(torch_picks, edge_picks):
            assert (t.trace_id, t.phase) == (e.trace_id, e.phase)
            assert abs(t.peak_time - e.peak_time) < 1e-6
            assert abs(t.start_time - e.start_time) < 1e-6 and abs(t.end_time - e.end_time) < 1e-6
            assert e.peak_value == pytest.approx(float(t.peak_value), abs=1e-5)


def test_gaps_are_never_picked_across(student_onnx):
    _, path = student_onnx
    stream = long_stream()
    stream.cutout(stream[0].stats.starttime + 50, stream[0].stats.starttime + 52)
    picks = EdgePicker(path, thresholds={"P": 0.05, "S": 0.05}).pick(stream)
    gap_start, gap_end = stream[0].stats.endtime, stream[1].stats.starttime
    assert picks
    assert not any(gap_start < p.start_time < gap_end or gap_start < p.end_time < gap_end for p in picks)


def test_pick_array_times_are_seconds_from_start(student_onnx):
    _, path = student_onnx
    picker = EdgePicker(path, thresholds={"P": 0.05, "S": 0.05})
    data = np.stack([tr.data for tr in obspy.read().select(channel="EH[ZNE]")])[[2, 1, 0]]
    picks = picker.pick_array(data, start_time=100.0, trace_id="BW.RJOB.")
    assert picks and all(100.0 <= p.start_time <= p.peak_time <= p.end_time <= 130.0 for p in picks)
    with pytest.raises(ValueError, match="component order ZNE"):
        picker.pick_array(data[:2])


def test_bandpass_equals_obspy():
    trace = obspy.read()[0]
    expected = trace.copy().filter("bandpass", freqmin=1, freqmax=45, corners=2, zerophase=True).data
    got = bandpass(trace.data.astype(np.float64), 1, 45, 100.0, corners=2, zerophase=True)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())


def test_unusable_files_are_named(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_text("not a model")
    with pytest.raises(EdgeModelError, match="model.onnx.*cannot load"):
        EdgePicker(not_onnx)
    bare = tmp_path / "bare.onnx"
    node = helper.make_node("Identity", ["waveforms"], ["probabilities"])
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("waveforms", TensorProto.FLOAT, [1, 3, 10])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 3, 10])],
    )
    onnx.save(helper.make_model(graph), str(bare))
    with pytest.raises(EdgeModelError, match="bare.onnx: not an ONNX file written by `xiaonet export`"):
        EdgePicker(bare)
    with pytest.raises(EdgeModelError, match="no such ONNX file"):
        EdgePicker(tmp_path / "missing.onnx")


def test_edge_imports_and_picks_without_torch_or_seisbench(student_onnx):
    _, path = student_onnx
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("torch", "seisbench"):
            sys.modules[name] = None  # any import of them raises ImportError
        import numpy as np
        import xiaonet.edge
        from xiaonet.edge import EdgePicker
        picker = EdgePicker({str(path)!r}, thresholds={{"P": 0.05, "S": 0.05}})
        rng = np.random.default_rng(0)
        data = rng.normal(size=(3, 12000)).cumsum(axis=1)
        picks = picker.pick_array(data, 0.0, "XX.TEST.")
        assert picks, "no picks"
        loaded = [m for m in sys.modules if m.split(".")[0] in ("torch", "seisbench") and sys.modules[m] is not None]
        assert not loaded, loaded
        print("ok", len(picks))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_edge_command_writes_the_pick_table_and_names_bad_files(student_onnx, tmp_path, capsys):
    from xiaonet.edge.__main__ import main as edge_main

    _, path = student_onnx
    good = tmp_path / "event.mseed"
    long_stream().write(str(good), format="MSEED")
    bad = tmp_path / "broken.mseed"
    bad.write_bytes(b"not seismic data" * 10)
    out = tmp_path / "picks.csv"
    code = edge_main([str(path), str(good), str(bad), "--out", str(out), "--threshold", "P=0.05", "--threshold", "S=0.05"])
    assert code == 1
    assert "broken.mseed" in capsys.readouterr().err
    lines = out.read_text().splitlines()
    assert lines[0] == ",".join(PICK_COLUMNS)
    assert len(lines) > 1 and all(",BW,RJOB," in "," + line for line in lines[1:])


def test_streaming_engine_on_the_exported_model_gives_the_edge_picks(student_onnx):
    """The streaming engine's windowing over the ONNX model, fed 1.5 s packets, equals
    whole-trace edge picking (the streaming module itself imports SeisBench for its pick type)."""
    from xiaonet.edge import EdgeModel
    from xiaonet.stream.engine import StreamingPicker
    from xiaonet.stream.predictors import predictor_from_edge_model

    _, path = student_onnx
    thresholds = {"P": 0.05, "S": 0.05}
    stream = long_stream()
    offline = EdgePicker(path, thresholds=thresholds).pick(stream)
    predictor = predictor_from_edge_model(EdgeModel(path))
    predictor.thresholds = dict(thresholds)
    engine = StreamingPicker(predictor)
    emitted = []
    start, end = stream[0].stats.starttime, stream[0].stats.endtime
    t = start
    while t <= end:
        emitted += engine.feed_many([tr.slice(t, t + 1.5 - 0.005) for tr in stream])
        t += 1.5
    emitted += engine.flush()
    streamed = sorted(e.pick for e in emitted)
    assert offline and len(streamed) == len(offline)
    for s, o in zip(streamed, offline):
        assert (s.trace_id, s.phase) == (o.trace_id, o.phase)
        assert abs(s.peak_time - o.peak_time) < 1e-6
        assert float(s.peak_value) == pytest.approx(o.peak_value, abs=1e-5)


def test_edge_runtime_has_its_own_console_script():
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("xiaonet-edge") == "xiaonet.edge.__main__:main"
