"""The generated C runtime (host gcc): equal to ONNX Runtime, same picks as `python -m xiaonet.edge`."""

import csv
import ctypes
import shutil

import numpy as np
import obspy
import pytest

from tests.export.test_onnx_files import write_example
from xiaonet.edge import EdgeModel, EdgePicker
from xiaonet.edge.c_export import CExportError, write_c_model
from xiaonet.edge.c_runtime import CModel, CPicker, CRuntimeError
from xiaonet.edge.windowing import synthetic_windows

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                                reason="no C compiler on this machine")

THRESHOLDS = {"P": 0.3, "S": 0.3}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The shipped xiaonet-s as fp32 and int8 ONNX, and C generated from each."""
    from xiaonet.export.onnx_files import calibration_windows, export_onnx, quantize_int8
    from xiaonet.models.presets import load_student

    folder = tmp_path_factory.mktemp("c-runtime")
    fp32 = export_onnx(load_student("xiaonet-s"), folder / "s.onnx", "xiaonet-s")
    windows = calibration_windows([write_example(folder / "cal.mseed", repeats=3)], 32, 3001, "ZNE", 100.0,
                                  np.random.default_rng(0))
    int8 = quantize_int8(fp32, folder / "s.int8.onnx", windows)
    write_c_model(fp32, folder / "c32")
    write_c_model(int8, folder / "c8")
    return {"fp32": fp32, "int8": int8, "c32": folder / "c32", "c8": folder / "c8", "dir": folder}


def test_c_forward_equals_onnx_runtime_fp32(exported):
    c_model, reference = CModel(exported["c32"]), EdgeModel(exported["fp32"])
    assert c_model.window == reference.metadata.in_samples == 6001
    windows = synthetic_windows([6001, 64, 999, 3001, 100], np.random.default_rng(0))
    constant = np.full((1, 3, 500), 7.0, np.float32)
    constant[0, 1] = np.random.default_rng(1).normal(size=500)  # one live channel, two constant
    for window in windows + [constant, np.zeros((2, 3, 300), np.float32)]:
        assert np.abs(c_model.predict(window) - reference.predict(window)).max() <= 1e-4


def test_c_forward_int8_within_the_int8_tolerance(exported):
    """The project's int8 tolerance (tests/export/test_onnx_files.py): probabilities within 0.1."""
    c_model, reference = CModel(exported["c8"]), EdgeModel(exported["int8"])
    assert c_model.metadata.precision == "int8"
    for window in synthetic_windows([6001, 999, 100], np.random.default_rng(2)):
        assert np.abs(c_model.predict(window) - reference.predict(window)).max() <= 0.1


def edge_command(args, out):
    from xiaonet.edge.__main__ import main

    assert main([*args, "--out", str(out), "--threshold", "P=0.3", "--threshold", "S=0.3"]) == 0
    with open(out) as handle:
        return list(csv.DictReader(handle))


def assert_same_rows(ours, theirs, tolerance_s=0.01):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a["phase"] == b["phase"] and a["station"] == b["station"]
        assert abs(obspy.UTCDateTime(a["time"]) - obspy.UTCDateTime(b["time"])) <= tolerance_s + 1e-9


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_c_picks_equal_the_edge_command_on_real_data(exported, precision, tmp_path):
    """Several windows plus the end-aligned one (example event tiled: 12,000 samples)."""
    data = write_example(tmp_path / "event.mseed", repeats=4)
    onnx_path, c_dir = (exported["fp32"], exported["c32"]) if precision == "fp32" else (exported["int8"], exported["c8"])
    onnx_rows = edge_command([str(onnx_path), str(data)], tmp_path / "onnx.csv")
    c_rows = edge_command([str(c_dir), str(data), "--runtime", "c"], tmp_path / "c.csv")
    assert len(onnx_rows) >= 4, "the shipped student must pick the example event for this test to bite"
    assert_same_rows(c_rows, onnx_rows)
    assert c_rows[0]["picker"] == f"xiaonet-s-c-{precision}"


def test_c_picks_equal_the_edge_command_on_an_hour_of_real_data(exported, shared_dir, tmp_path):
    path = shared_dir / "data/continuous/chile_CX_deepphasepick/CX.PB01..HH_.20140301T015959.mseed"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    onnx_rows = edge_command([str(exported["fp32"]), str(path)], tmp_path / "onnx.csv")
    c_rows = edge_command([str(exported["c32"]), str(path), "--runtime", "c"], tmp_path / "c.csv")
    assert len(onnx_rows) >= 5
    assert_same_rows(c_rows, onnx_rows)


def test_short_records_are_predicted_whole_or_not_at_all(exported):
    stream = obspy.read()
    zne = np.stack([stream.select(component=c)[0].data for c in "ZNE"]).astype(np.float32)
    c_picker, edge_picker = CPicker(exported["c32"], THRESHOLDS), EdgePicker(exported["fp32"], THRESHOLDS)
    for first, n in ((250, 800), (700, 2000), (0, 99), (0, 150)):
        part = zne[:, first : first + n]
        ours, theirs = c_picker.pick_array(part, 10.0), edge_picker.pick_array(part, 10.0)
        assert [(p.phase, round(p.peak_time, 2)) for p in ours] == [(p.phase, round(p.peak_time, 2)) for p in theirs]
    assert c_picker.pick_array(zne[:, :99]) == []


def test_per_channel_pushes_in_uneven_packets_give_the_block_picks(exported):
    """The microcontroller API: channels pushed one by one, a channel at most XN_MAX_LEAD ahead."""
    model = CModel(exported["c32"])
    lib = model.lib
    lib.xn_push.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int32]
    lib.xn_push.restype = ctypes.c_int32
    stream = obspy.read()
    zne = np.ascontiguousarray(np.tile(np.stack([stream.select(component=c)[0].data for c in "ZNE"]), 3),
                               dtype=np.float32)
    expected = model.stream_picks(zne, THRESHOLDS)
    assert expected

    from xiaonet.edge.c_runtime import _PICK_FN

    picks = []
    callback = _PICK_FN(lambda pick, _: picks.append((pick.contents.phase.decode(), pick.contents.start,
                                                      pick.contents.end, pick.contents.peak,
                                                      float(pick.contents.probability))))
    state = ctypes.create_string_buffer(lib.xn_stream_size())
    lib.xn_stream_init(state, callback, None)
    lib.xn_set_thresholds(state, 0.3, 0.3)
    rng = np.random.default_rng(0)
    done = [0, 0, 0]
    refused = 0
    while min(done) < zne.shape[1]:
        channel = int(rng.integers(3))
        n = min(int(rng.integers(1, 700)), zne.shape[1] - done[channel])
        taken = lib.xn_push(state, channel, zne[channel, done[channel]:].ctypes.data, n)
        assert 0 <= taken <= n
        refused += taken < n
        done[channel] += taken
    assert refused, "packets of up to 700 samples must hit the 512-sample lead limit"
    lib.xn_finish(state)
    assert sorted(picks) == sorted(expected)


def test_export_format_c_writes_a_documented_folder(tmp_path, capsys):
    from xiaonet.cli import main

    out = tmp_path / "c"
    assert main(["export", "xiaonet-s", "--format", "c", "--out", str(out), "--window", "3001"]) == 0
    printed = capsys.readouterr().out
    assert "max |C - ONNX Runtime|" in printed and "within 0.0001" in printed
    for name in ("xiaonet.h", "xiaonet.c", "xiaonet_model.h", "xiaonet_weights.c", "README.md", "model.json"):
        assert (out / name).is_file()
    assert "#define XN_WINDOW 3001" in (out / "xiaonet_model.h").read_text()
    assert "xn_push" in (out / "README.md").read_text()
    assert "malloc" not in (out / "xiaonet.c").read_text().replace("no malloc", "")


def test_teachers_and_foreign_files_are_refused_with_the_file_named(tmp_path):
    bogus = tmp_path / "x.onnx"
    bogus.write_bytes(b"not onnx")
    with pytest.raises(CExportError, match="x.onnx"):
        write_c_model(bogus, tmp_path / "out")
    with pytest.raises(CRuntimeError, match="export --format c"):
        CModel(tmp_path)


def test_missing_compiler_is_a_clear_error(exported, tmp_path, monkeypatch):
    folder = tmp_path / "copy"
    shutil.copytree(exported["c32"], folder)
    (folder / "xiaonet_weights.c").write_text((folder / "xiaonet_weights.c").read_text() + "\n/* new hash */\n")
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(CRuntimeError, match="needs a C compiler"):
        CModel(folder)


def test_stream_command_runs_on_the_c_library(exported, tmp_path, capsys):
    import json

    from xiaonet.cli import main

    path = write_example(tmp_path / "event.mseed", repeats=4)
    offline = CPicker(exported["c32"], THRESHOLDS).pick(obspy.read(str(path)))
    assert offline
    code = main(["stream", "--replay", str(path), "--picker", str(exported["c32"]), "--runtime", "c",
                 "--threshold", "P=0.3", "--threshold", "S=0.3", "--packet-samples", "300"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = [json.loads(line) for line in captured.out.splitlines() if line.strip()]
    got = sorted((r["phase"], obspy.UTCDateTime(r["time"]).timestamp) for r in rows)
    expected = sorted((p.phase, float(p.peak_time.timestamp)) for p in offline)
    assert len(got) == len(expected)
    assert all(a[0] == b[0] and abs(a[1] - b[1]) <= 0.0101 for a, b in zip(got, expected))


def test_the_c_runtime_imports_neither_torch_nor_onnxruntime(exported):
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys
        for name in ("torch", "seisbench", "onnxruntime", "onnx"):
            sys.modules[name] = None  # importing any of them now fails
        import numpy as np
        from xiaonet.edge.c_runtime import CPicker
        picker = CPicker({str(exported["c32"])!r})
        rng = np.random.default_rng(0)
        picker.pick_array(rng.normal(size=(3, 7000)).astype(np.float32))
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
