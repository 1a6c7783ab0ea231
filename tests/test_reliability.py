"""Fault cases of the reliability campaign (issue 15), on generated inputs: one bad input never
costs a batch, refusals are one line naming the file, nothing is left out without a note, and
the streaming engine gives the offline picks on what real packet feeds do."""

import json
import shutil

import numpy as np
import obspy
import pytest

from xiaonet.cli import main


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.mseed"
    obspy.read().write(str(path), format="MSEED")
    return path


def _stderr_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# --- 1. one bad input never costs a batch ---------------------------------------------------


@pytest.mark.parametrize("missing", ["missing.mseed", "nothing-matches-*.mseed"])
def test_pick_missing_input_picks_the_rest_and_exits_1(tmp_path, good_file, capsys, missing):
    out = tmp_path / "picks.csv"
    code = main(["pick", str(tmp_path / missing), str(good_file), "--picker", "stalta",
                 "--out", str(out), "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert f"{missing}: no such file, folder or matching glob" in err
    assert "1 input(s) failed" in err
    assert "RJOB" in out.read_text()  # the good file was picked


def test_truncated_file_fails_the_same_way_in_pick_and_stream_replay(tmp_path, good_file, capsys):
    data = good_file.read_bytes()
    truncated = tmp_path / "truncated.mseed"
    truncated.write_bytes(data[: len(data) - 100])
    pick_code = main(["pick", str(truncated), "--picker", "stalta", "--out", str(tmp_path / "a.csv"),
                      "--no-progress"])
    pick_err = capsys.readouterr().err
    stream_code = main(["stream", "--replay", str(truncated), str(tmp_path / "missing.mseed"),
                        "--picker", "stalta", "--out", str(tmp_path / "b.csv")])
    stream_err = capsys.readouterr().err
    assert pick_code == stream_code == 1
    assert "truncated" in pick_err and "truncated" in stream_err
    assert "missing.mseed: no such file" in stream_err and "2 input(s) failed" in stream_err


def test_edge_cli_missing_input_picks_the_rest(tmp_path, good_file, capsys):
    pytest.importorskip("onnxruntime")
    import torch

    from xiaonet.edge.__main__ import main as edge_main
    from xiaonet.export.onnx_files import export_onnx
    from xiaonet.models.presets import build_student

    torch.manual_seed(0)
    onnx_path = export_onnx(build_student("xiaonet-xs").eval(), tmp_path / "xs.onnx", "xiaonet-xs")
    out = tmp_path / "picks.csv"
    code = edge_main([str(onnx_path), str(tmp_path / "missing.mseed"), str(good_file), "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "missing.mseed: no such file" in err and "1 input(s) failed" in err
    assert out.read_text().startswith("network,station")
    # an output folder that does not exist is refused before anything is read
    assert edge_main([str(onnx_path), str(good_file), "--out", str(tmp_path / "no" / "p.csv")]) == 2


# --- 2. refusals are one clear line ---------------------------------------------------------


def _weights_copy(tmp_path, name):
    from xiaonet.models.presets import shipped_weights

    prefix = shipped_weights("xiaonet-s")
    if prefix is None:
        pytest.skip("no shipped xiaonet-s weights")
    shutil.copy(prefix.with_suffix(".json"), tmp_path / f"{name}.json")
    shutil.copy(prefix.with_suffix(".pt"), tmp_path / f"{name}.pt")
    return tmp_path / name


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("echo this-must-never-run",))


def _bad_weights(tmp_path, kind):
    prefix = _weights_copy(tmp_path, kind)
    pt, js = prefix.with_suffix(".pt"), prefix.with_suffix(".json")
    if kind == "pickled-code":
        import torch

        torch.save({"x": _RunsCode()}, pt)
    elif kind == "truncated":
        pt.write_bytes(pt.read_bytes()[:20000])
    elif kind == "random":
        pt.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "corrupt-json":
        js.write_text('{"model_args": ')
    return prefix, (js if kind == "corrupt-json" else pt)


@pytest.mark.parametrize("kind", ["pickled-code", "truncated", "random", "corrupt-json"])
def test_bad_weights_are_refused_in_one_line_naming_the_file(tmp_path, capsys, kind):
    prefix, bad_file = _bad_weights(tmp_path, kind)
    code = main(["pick", "--example", "--picker", str(prefix), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and str(bad_file) in lines[0], lines
    assert "Traceback" not in captured.err and "this-must-never-run" not in captured.out
    if kind == "pickled-code":
        assert "refused, nothing was run" in lines[0]


def test_out_into_missing_folder_is_refused_before_picking(tmp_path, good_file, capsys):
    code = main(["pick", str(good_file), "--picker", "stalta", "--out", str(tmp_path / "nope" / "p.csv")])
    assert code == 2
    lines = _stderr_lines(capsys)
    assert len(lines) == 1 and "folder" in lines[0] and "does not exist" in lines[0]
    assert main(["stream", "--replay", str(good_file), "--picker", "stalta",
                 "--out", str(tmp_path / "nope" / "p.csv")]) == 2


def _train_config(tmp_path, **data):
    config = {"name": "t", "data": {"shared_dir": str(tmp_path), "sources": []}}
    for key, value in data.items():
        section, _, field = key.partition("__")
        config.setdefault(section, {})[field] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


@pytest.mark.parametrize("problem, expected", [
    ({}, "data.sources: empty"),
    ({"model__preset": "xiaonet-huge"}, "model.preset: unknown preset 'xiaonet-huge'"),
])
def test_train_config_refused_before_data_is_loaded(tmp_path, capsys, problem, expected):
    config = _train_config(tmp_path, **problem)
    code = main(["train", "--config", str(config), "--run-dir", str(tmp_path / "run")])
    assert code == 2
    lines = _stderr_lines(capsys)
    assert len(lines) == 1 and expected in lines[0], lines
    assert not (tmp_path / "run").exists()


# --- 4. nothing is left out without a note ----------------------------------------------------


def _notes_of(picker, stream):
    notes = []
    picks = picker.pick(stream, note=notes.append)
    return picks, notes


@pytest.mark.parametrize("picker_name", ["xiaonet-s", "stalta"])
def test_channels_without_known_components_get_a_note(picker_name):
    import xiaonet

    stream = obspy.read()
    for trace, code in zip(stream, "UVW"):
        trace.stats.channel = "EH" + code
    picks, notes = _notes_of(xiaonet.load_picker(picker_name), stream)
    assert len(picks) == 0
    assert any("EHU, EHV, EHW" in n and "not picked" in n for n in notes), notes


def test_record_too_short_and_low_rate_get_a_note():
    import xiaonet

    picker = xiaonet.load_picker("xiaonet-s")
    stream = obspy.read()
    t0 = stream[0].stats.starttime
    _, notes = _notes_of(picker, stream.slice(t0 + 7.2, t0 + 8.1))
    assert any("shorter than" in n and "not picked" in n for n in notes), notes
    low = stream.copy().filter("lowpass", freq=8).decimate(5, no_filter=True)
    _, notes = _notes_of(picker, low)
    assert any("sampled at 20 Hz" in n and "fewer" in n for n in notes), notes
    _, notes = _notes_of(picker, stream)  # a usable station: no note
    assert notes == []


# --- 3. streaming survives what real packet feeds do ------------------------------------------


@pytest.fixture(scope="module")
def sharp():
    from tests.stream.test_engine import sharp_student

    return sharp_student()


@pytest.fixture(scope="module")
def record():
    from tests.stream.test_engine import synthetic_stream

    return synthetic_stream(200, "REL", seed=3, events=(40.0, 130.0))


def _streamed(picker, packets, **config):
    from tests.stream.test_engine import stream_all

    from xiaonet.stream.settings import StreamingConfig
    from xiaonet.stream.engine import StreamingPicker

    engine = StreamingPicker(picker, StreamingConfig(**config), note=lambda message: None)
    return engine, stream_all(engine, packets)


def _packets(stream, seed=0, **kwargs):
    from tests.stream.test_engine import cut_packets

    return cut_packets(stream, np.random.default_rng(seed), **kwargs)


def test_swapped_and_shuffled_packets_are_used_not_dropped(sharp, record):
    from tests.stream.test_engine import assert_same_picks

    offline = sharp.pick(record)
    packets = _packets(record, low=100, high=100, max_delay=0)
    swapped = list(packets)
    for channel in {p.id for p in packets}:  # packet k+1 before k, per channel
        where = [i for i, p in enumerate(swapped) if p.id == channel]
        for a, b in zip(where[0::2], where[1::2]):
            swapped[a], swapped[b] = swapped[b], swapped[a]
    engine, emitted = _streamed(sharp, swapped)
    assert engine.counters["late_packets"] == 0 and engine.counters["reordered_packets"] > 100
    assert_same_picks(offline, emitted)
    rng = np.random.default_rng(1)
    arrival = [p.stats.endtime.timestamp + rng.uniform(0, 20) for p in packets]  # shuffled within 20 s
    engine, emitted = _streamed(sharp, [packets[i] for i in np.argsort(arrival)])
    assert engine.counters["late_packets"] == 0
    assert_same_picks(offline, emitted)
    # without a reorder window the overtaken packets come too late (the old behaviour)
    engine, _ = _streamed(sharp, swapped, reorder_window=0.0)
    assert engine.counters["late_packets"] > 0


def test_station_at_200_hz_streams_its_offline_picks(sharp, record):
    from tests.stream.test_engine import assert_same_picks

    fast = record.copy()
    for trace in fast:
        trace.resample(200.0)
    engine, emitted = _streamed(sharp, _packets(fast, high=800))
    assert engine.counters["resampled_packets"] > 0 and engine.counters["unsupported_rate_packets"] == 0
    assert_same_picks(sharp.pick(fast), emitted)


def test_components_at_different_rates_stream_like_offline(sharp, record):
    mixed = record.copy()
    mixed.select(channel="HHN")[0].resample(200.0)
    mixed.select(channel="HHE")[0].resample(50.0)
    engine, emitted = _streamed(sharp, _packets(mixed, high=512))  # was a KeyError
    assert engine.counters["resampled_packets"] > 0
    offline = sharp.pick(mixed)
    # The 50 Hz channel goes through FFT resampling, which offline does on the whole record
    # and streaming on what has arrived (plus 10 s): the untrained sharp student's hundreds of
    # noise picks sit on the threshold, so a few may flip; all others within one sample.
    assert len(offline) > 100
    times = {(e.pick.phase, round(e.pick.peak_time.timestamp, 2)) for e in emitted}
    same = sum((p.phase, round(p.peak_time.timestamp, 2)) in times for p in offline)
    assert same >= 0.97 * len(offline) and abs(len(emitted) - len(offline)) <= 0.03 * len(offline), (
        same, len(offline), len(emitted))


def test_sub_sample_component_offsets_and_short_records_stream_like_offline(sharp, record):
    from tests.stream.test_engine import assert_same_picks

    shifted = record.copy()
    shifted.select(channel="HHN")[0].stats.starttime += 0.004
    shifted.select(channel="HHE")[0].stats.starttime += 0.007
    for trace in shifted:
        trace.stats.starttime += 0.005  # a half-sample start, as O2.WILZ's files have
    _, emitted = _streamed(sharp, _packets(shifted, seed=4))
    assert_same_picks(sharp.pick(shifted), emitted)
    short = record.slice(record[0].stats.starttime + 35).copy()
    for trace in short:
        trace.data = trace.data[:2999]
    _, emitted = _streamed(sharp, _packets(short, seed=5, high=400))
    assert_same_picks(sharp.pick(short), emitted)


# --- 6. the edge runtime resamples as the torch path does ---------------------------------------


@pytest.mark.parametrize("rate", [200.0, 1000.0])
def test_edge_and_torch_give_the_same_picks_on_resampled_input(sharp, record, tmp_path, rate):
    pytest.importorskip("onnxruntime")
    from xiaonet.edge import EdgePicker
    from xiaonet.export.onnx_files import export_onnx

    path = export_onnx(sharp.model, tmp_path / "sharp.onnx", "sharp-student")
    edge = EdgePicker(path, thresholds=sharp.thresholds)
    fast = record.slice(record[0].stats.starttime, record[0].stats.starttime + 90).copy()
    for trace in fast:
        trace.resample(rate)
    torch_picks = sharp.pick(fast.copy(), note=lambda message: None)
    edge_picks = edge.pick(fast.copy(), note=lambda message: None)
    assert len(torch_picks) > 20
    assert [(p.phase, p.peak_time) for p in edge_picks] == [(p.phase, p.peak_time) for p in torch_picks]


# --- 5. picks do not depend on where windows start -----------------------------------------------


def _after(picks, start, window_s=61.0):
    return sorted((p.phase, round(p.peak_time.timestamp, 3), round(float(p.peak_value), 4))
                  for p in picks if p.peak_time >= start + window_s)


@pytest.mark.parametrize("cut", [1, 137, 5555])
def test_picks_do_not_move_when_the_record_start_moves(sharp, cut):
    from tests.stream.test_engine import synthetic_stream

    record = synthetic_stream(300, "GRD", seed=9, events=(40.0, 130.0, 220.0))
    reference = sharp.pick(record)
    t0 = record[0].stats.starttime
    later = record.slice(t0 + cut / 100.0)
    assert later[0].stats.starttime == t0 + cut / 100.0
    kept = _after(reference, later[0].stats.starttime)
    assert len(kept) > 20
    assert _after(sharp.pick(later), later[0].stats.starttime) == kept
    # and after a gap: the data beyond one window after it is picked as without the gap
    gap_end = t0 + 100 + cut / 100.0
    gapped = record.slice(t0, t0 + 80) + record.slice(gap_end)
    assert _after(sharp.pick(gapped), gap_end) == _after(reference, gap_end)


def test_edge_runtime_and_streaming_use_the_same_absolute_window_grid(sharp, tmp_path):
    pytest.importorskip("onnxruntime")
    from tests.stream.test_engine import assert_same_picks, synthetic_stream

    from xiaonet.edge import EdgePicker
    from xiaonet.export.onnx_files import export_onnx

    record = synthetic_stream(200, "GRE", seed=10, events=(40.0, 130.0))
    later = record.slice(record[0].stats.starttime + 13.37)
    torch_picks = sharp.pick(later)
    edge = EdgePicker(export_onnx(sharp.model, tmp_path / "sharp.onnx", "sharp"), thresholds=sharp.thresholds)
    assert edge.model.metadata.window_grid == "absolute"
    assert [(p.phase, p.peak_time) for p in edge.pick(later)] == [(p.phase, p.peak_time) for p in torch_picks]
    _, emitted = _streamed(sharp, _packets(later, seed=6))
    assert_same_picks(torch_picks, emitted)
