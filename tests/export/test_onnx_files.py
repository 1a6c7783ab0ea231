"""ONNX export: ONNX Runtime equals torch, metadata round trip, int8 close to fp32, CLI."""

import numpy as np
import obspy
import pytest
import torch

from xiaonet.cli import main
from xiaonet.edge import EdgeModel, EdgePicker
from xiaonet.export.onnx_files import (
    calibration_windows,
    export_onnx,
    max_abs_difference,
    quantize_int8,
)
from xiaonet.edge.windowing import synthetic_windows
from xiaonet.models.presets import build_student


def seeded_student(name="xiaonet-s"):
    torch.manual_seed(0)
    return build_student(name).eval()


def write_example(path, repeats=1):
    """ObsPy's example event (real data) as miniSEED, tiled ``repeats`` times."""
    stream = obspy.read()
    for trace in stream:
        trace.data = np.tile(trace.data, repeats).astype(np.float32)
    stream.write(str(path), format="MSEED")
    return path


@pytest.mark.parametrize("preset", ["xiaonet-xs", "xiaonet-s"])
def test_onnx_equals_torch_on_any_length(tmp_path, preset):
    model = seeded_student(preset)
    path = export_onnx(model, tmp_path / "m.onnx", preset)
    rng = np.random.default_rng(0)
    for window in synthetic_windows([3001, 64, 999, 10_000], rng):
        assert max_abs_difference(model, path, window) <= 1e-4


def test_metadata_carries_what_the_runtime_needs(tmp_path):
    model = seeded_student()
    model.default_args["P_threshold"] = 0.42
    path = export_onnx(model, tmp_path / "m.onnx", "xiaonet-s", thresholds={"S": 0.25})
    meta = EdgeModel(path).metadata
    assert (meta.sampling_rate, meta.component_order, meta.labels) == (100.0, "ZNE", ("P", "S", "N"))
    assert (meta.in_samples, meta.overlap, meta.dynamic_length) == (3001, 0.25, True)
    assert meta.thresholds == {"P": 0.42, "S": 0.25}
    assert "demean" in meta.normalisation and meta.precision == "fp32"


def test_phasenet_exports_with_its_normalisation(tmp_path, teacher_cache):
    from xiaonet.models.teachers import load_teacher

    model = load_teacher("phasenet")
    path = export_onnx(model, tmp_path / "phasenet.onnx", "phasenet", thresholds={"P": 0.3, "S": 0.3})
    window = synthetic_windows([3001], np.random.default_rng(1))[0]
    assert max_abs_difference(model, path, window) <= 1e-4
    meta = EdgeModel(path).metadata
    assert (meta.component_order, meta.labels, meta.overlap, meta.dynamic_length) == ("ENZ", ("N", "P", "S"), 1500, False)


def test_int8_stays_close_to_fp32_on_the_example_event(tmp_path):
    """Tolerance: probabilities within 0.1, every pick matched within 0.1 s and 0.1 in value."""
    model = seeded_student()
    fp32 = export_onnx(model, tmp_path / "m.onnx", "xiaonet-s")
    rng = np.random.default_rng(0)
    windows = calibration_windows([write_example(tmp_path / "cal.mseed")], 32, 2000, "ZNE", 100.0, rng)
    assert windows.shape == (32, 3, 2000) and np.abs(windows).max() > 0
    int8 = quantize_int8(fp32, tmp_path / "m.int8.onnx", windows)
    assert int8.stat().st_size < fp32.stat().st_size / 1.5
    assert EdgeModel(int8).metadata.precision == "int8"

    thresholds = {"P": 0.3, "S": 0.3}
    stream = obspy.read()
    a, b = EdgePicker(fp32, thresholds).annotate(stream), EdgePicker(int8, thresholds).annotate(stream)
    assert max(np.abs(x.data - y.data).max() for x, y in zip(a, b)) <= 0.1
    picks32, picks8 = EdgePicker(fp32, thresholds).pick(stream), EdgePicker(int8, thresholds).pick(stream)
    assert picks32, "the seeded student must pick the example event for this test to bite"
    for ours, theirs in ((picks32, picks8), (picks8, picks32)):
        for pick in ours:
            close = [q for q in theirs if q.phase == pick.phase and abs(q.peak_time - pick.peak_time) <= 0.1]
            assert close, f"{pick} has no counterpart"
            assert min(abs(q.peak_value - pick.peak_value) for q in close) <= 0.1


def test_cli_export_int8(tmp_path, capsys):
    out = tmp_path / "s.onnx"
    calibration = write_example(tmp_path / "cal.mseed", repeats=3)
    code = main(["export", "xiaonet-s", "--allow-untrained", "--out", str(out), "--int8",
                 "--calibration", str(calibration), "--calibration-windows", "8"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "max |ONNX Runtime - torch|" in printed.out and "int8:" in printed.out
    assert out.is_file() and (tmp_path / "s.int8.onnx").is_file()


def test_cli_export_errors_are_actionable(tmp_path, capsys):
    assert main(["export", "xiaonet-zz", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "Known presets" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["export", "xiaonet-s", "--allow-untrained", "--out", str(tmp_path / "x.onnx"),
                 "--int8", "--calibration", str(empty)])
    assert code == 1
    assert "no calibration data" in capsys.readouterr().err


def test_eqtransformer_metadata_keeps_its_seisbench_settings(teacher_cache):
    """Blinding, max stacking, 3000-sample overlap and the 1-45 Hz band-pass travel with the file."""
    from xiaonet.export.onnx_files import model_metadata
    from xiaonet.models.teachers import load_teacher

    meta = model_metadata(load_teacher("eqtransformer"), "eqtransformer")
    assert (meta.in_samples, meta.overlap, meta.stacking, meta.blinding) == (6000, 3000, "max", (500, 500))
    assert meta.labels == ("Detection", "P", "S") and meta.thresholds == {"P": 0.1, "S": 0.1}
    assert meta.stream_filter == {"type": "bandpass", "freqmin": 1, "freqmax": 45, "corners": 2, "zerophase": True}
    assert not meta.dynamic_length
