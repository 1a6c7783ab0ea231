"""Speed and memory of every picker runtime, measured in one run on the same data.

Rows are (model, runtime) pairs: the student presets through torch (SeisBench ``annotate``)
and through ONNX Runtime (fp32 and int8, :mod:`xiaonet.edge`), PhaseNet and EQTransformer
through SeisBench and through ONNX Runtime, and the STA/LTA baseline (ObsPy). For each row:

* parameters, ONNX file sizes (fp32, int8) and multiply-accumulates per 30 s window
  (:func:`count_macs_any`: convolutions, linear layers, LSTMs and EQTransformer's attention);
* latency per window at batch 1 (p50, p99 over ``latency_calls`` calls);
* throughput of whole-trace picking, in station-hours per CPU-second of the one thread
  (median over ``repeats``; CPU time, so other jobs on a shared machine do not count), and
  the same per wall-clock second, on the same blocks of 3-component data for every row;
* peak resident memory (VmHWM) of a fresh Python process that loads the runtime and picks
  the same data once (the torch-free rows read numpy arrays and import neither torch,
  SeisBench nor ObsPy).

Nothing here imports torch at module level, so the fresh edge processes stay torch-free.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

STUDENT_RUNTIMES = ("torch", "onnx-fp32", "onnx-int8")
RUNTIMES = {
    "phasenet": ("seisbench", "onnx-fp32", "onnx-int8"),
    "eqtransformer": ("seisbench", "onnx-fp32"),
    "stalta": ("obspy",),
}
DEFAULT_MODELS = ("xiaonet-xs", "xiaonet-s", "xiaonet-m", "phasenet", "eqtransformer", "stalta")
REFERENCE_ROW = ("phasenet", "seisbench")
WINDOW_30S = 3001  # samples in a 30 s window at 100 Hz


class BenchmarkError(RuntimeError):
    """The benchmark cannot run as asked; the message says what to change."""


@dataclass
class BenchmarkConfig:
    """What to measure and on which data."""

    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    #: Waveform files, folders or globs (3-component, ideally 100 Hz).
    data: list[str] = field(default_factory=list)
    #: Use at most this many station-hours of the data.
    hours: float = 1.0
    #: Seconds of seeded synthetic noise instead of real data (smoke tests only).
    synthetic_seconds: float | None = None
    threads: int = 1
    repeats: int = 3
    latency_calls: int = 100
    measure_rss: bool = True
    seed: int = 0
    #: Calibration windows for the int8 models (cut from the benchmark data).
    calibration_windows: int = 128
    teacher_weights: str = "original"
    workdir: str | None = None


@dataclass
class Row:
    """One runtime's figures; None where a figure does not apply or could not be measured."""

    model: str
    runtime: str
    parameters: int | None = None
    fp32_bytes: int | None = None
    int8_bytes: int | None = None
    macs_per_30s: float | None = None
    macs_note: str = ""
    window_samples: int | None = None
    latency_ms_p50: float | None = None
    latency_ms_p99: float | None = None
    pick_seconds: list[float] = field(default_factory=list)  # wall clock, per repeat
    pick_cpu_seconds: list[float] = field(default_factory=list)  # process CPU time, per repeat
    throughput: float | None = None  # station-hours per CPU-second per core
    throughput_wall: float | None = None  # station-hours per wall-clock second per core
    #: ONNX rows only: the same picking from numpy arrays (no ObsPy cleaning), as on a
    #: device; station-hours per CPU-second.
    throughput_arrays: float | None = None
    peak_rss_mb: float | None = None
    n_picks: int | None = None
    error: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.model, self.runtime)


# --- which rows -------------------------------------------------------------------------------


def known_models() -> list[str]:
    from xiaonet.models.presets import PRESETS

    return sorted(PRESETS) + list(RUNTIMES)


def expand_model_specs(specs: list[str]) -> list[tuple[str, str]]:
    """``xiaonet-s`` -> all its runtimes; ``xiaonet-s:onnx-int8`` -> that one row."""
    from xiaonet.models.presets import PRESETS

    rows: list[tuple[str, str]] = []
    for spec in specs:
        name, _, runtime = spec.partition(":")
        name = name.strip() if name in PRESETS else name.strip().lower()
        if name in PRESETS:
            available = STUDENT_RUNTIMES
        elif name in RUNTIMES:
            available = RUNTIMES[name]
        else:
            raise BenchmarkError(f"Unknown model '{name}'. Known: {', '.join(known_models())}.")
        if runtime and runtime not in available:
            raise BenchmarkError(
                f"Unknown runtime '{runtime}' for {name}. Known: {', '.join(available)}."
            )
        for r in [runtime] if runtime else available:
            if (name, r) not in rows:
                rows.append((name, r))
    return rows


# --- data -------------------------------------------------------------------------------------


@dataclass
class Block:
    """One instrument's contiguous record: (3, n) float32 in ZNE order at 100 Hz."""

    trace_id: str  # NET.STA.LOC
    channel_prefix: str  # band + instrument code, e.g. "HH"
    start: float  # POSIX seconds
    data: np.ndarray

    def to_stream(self):
        import obspy

        network, station, location = self.trace_id.split(".")
        return obspy.Stream([
            obspy.Trace(self.data[i].copy(), {
                "network": network, "station": station, "location": location,
                "channel": self.channel_prefix + component, "sampling_rate": 100.0,
                "starttime": obspy.UTCDateTime(self.start),
            })
            for i, component in enumerate("ZNE")
        ])


@dataclass
class BenchmarkData:
    blocks: list[Block]
    description: str
    synthetic: bool = False

    @property
    def station_hours(self) -> float:
        return sum(b.data.shape[-1] for b in self.blocks) / 100.0 / 3600.0

    def save(self, path: Path) -> Path:
        arrays = {f"data_{i}": b.data for i, b in enumerate(self.blocks)}
        meta = [{"trace_id": b.trace_id, "channel_prefix": b.channel_prefix, "start": b.start}
                for b in self.blocks]
        np.savez(path, meta=json.dumps(meta), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "BenchmarkData":
        with np.load(path) as saved:
            meta = json.loads(str(saved["meta"]))
            blocks = [Block(m["trace_id"], m["channel_prefix"], m["start"], saved[f"data_{i}"])
                      for i, m in enumerate(meta)]
        return cls(blocks, description=str(path))


def load_benchmark_data(paths: list[str], hours: float,
                        note: Callable[[str], None] = print) -> BenchmarkData:
    """Contiguous 3-component blocks from waveform files, up to ``hours`` station-hours.

    Data are cleaned like ``xiaonet pick`` does (:func:`xiaonet.data.waveforms.prepare_station`) and
    resampled to 100 Hz; blocks without all three components are skipped with a note.
    """
    from xiaonet.edge.streams import resample_stream, stream_to_array
    from xiaonet.data.waveforms import (
        WaveformInputError,
        contiguous_blocks,
        expand_inputs,
        group_by_station,
        prepare_station,
        read_waveform_file,
    )

    budget = int(round(hours * 3600 * 100))
    blocks: list[Block] = []
    try:
        files = expand_inputs(paths)
    except WaveformInputError as error:
        raise BenchmarkError(str(error)) from None
    from xiaonet.data.waveforms import NOT_WAVEFORM_SUFFIXES

    files = [p for p in files if p.suffix.lower() not in NOT_WAVEFORM_SUFFIXES]
    for path in files:
        if budget <= 0:
            break
        try:
            stream = read_waveform_file(path, note=note)
        except WaveformInputError as error:
            note(str(error))
            continue
        for key, station_stream in group_by_station(stream).items():
            prepared = prepare_station(station_stream, note)
            resample_stream(prepared, 100.0)
            for start, end in contiguous_blocks(prepared):
                piece = prepared.slice(start, end)
                components = {tr.stats.channel[-1] for tr in piece}
                if not ({"Z", "N", "E"} <= components or {"Z", "1", "2"} <= components):
                    note(f"{key}: block from {start} lacks three components; skipped")
                    continue
                converted = stream_to_array(piece, "ZNE", 100.0)
                if converted is None or budget <= 0:
                    continue
                t0, data, trace_id = converted
                data = data[:, :budget].astype(np.float32)
                budget -= data.shape[-1]
                blocks.append(Block(trace_id, piece[0].stats.channel[:2], float(t0.timestamp), data))
    if not blocks:
        raise BenchmarkError(
            f"no 3-component data in {paths}: give miniSEED files or folders with --data "
            "(or --synthetic SECONDS for a smoke test)"
        )
    data = BenchmarkData(blocks, description=", ".join(str(p) for p in paths))
    data.description += f" ({data.station_hours:.3f} station-hours in {len(blocks)} block(s))"
    return data


def synthetic_data(seconds: float, rng: np.random.Generator) -> BenchmarkData:
    """Seeded random-walk noise, 3 components at 100 Hz: for smoke tests, not for figures."""
    n = int(seconds * 100)
    data = (np.cumsum(rng.standard_normal((3, n)), axis=-1) * 0.1 + rng.standard_normal((3, n))) * 100
    block = Block("XX.SYNTH.", "HH", 1.7e9, data.astype(np.float32))
    return BenchmarkData([block], description=f"SYNTHETIC NOISE, {seconds:g} s (not real data)",
                         synthetic=True)


# --- model cost -------------------------------------------------------------------------------


def count_macs_any(model, n_samples: int, in_channels: int = 3) -> int:
    """Multiply-accumulates of one window: Conv1d / ConvTranspose1d (as
    :func:`xiaonet.models.model.count_macs`), Linear, LSTM and EQTransformer's additive attention.

    Element-wise operations, normalisation and activations are not counted.
    """
    import torch
    import torch.nn as nn

    macs = 0

    def hook(module, inputs, output):
        nonlocal macs
        if isinstance(module, nn.ConvTranspose1d):
            macs += module.in_channels * module.out_channels // module.groups * module.kernel_size[0] * inputs[0].shape[-1]
        elif isinstance(module, nn.Conv1d):
            macs += module.in_channels * module.out_channels // module.groups * module.kernel_size[0] * output.shape[-1]
        elif isinstance(module, nn.Linear):
            macs += module.in_features * module.out_features * (output.numel() // module.out_features)
        elif isinstance(module, nn.LSTM):
            steps = inputs[0].shape[1 if module.batch_first else 0]
            batch = inputs[0].shape[0 if module.batch_first else 1] if inputs[0].dim() == 3 else 1
            directions = 2 if module.bidirectional else 1
            h = module.hidden_size
            for layer in range(module.num_layers):
                size_in = module.input_size if layer == 0 else h * directions
                macs += directions * steps * batch * 4 * h * (size_in + h)
        elif type(module).__name__ == "SeqSelfAttention":
            x = inputs[0]  # (batch, channels, time)
            channels, steps = x.shape[1], x.shape[2]
            units = module.Wx.shape[1]
            macs += x.shape[0] * (2 * steps * channels * units + steps * steps * units + steps * steps * channels)

    counted = (nn.Conv1d, nn.ConvTranspose1d, nn.Linear, nn.LSTM)
    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, counted) or type(m).__name__ == "SeqSelfAttention"]
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, n_samples))
    finally:
        for handle in handles:
            handle.remove()
    return int(macs)


# --- timing helpers ---------------------------------------------------------------------------


def latency_percentiles(call: Callable[[], object], calls: int, warmup: int = 3) -> tuple[float, float]:
    """(p50, p99) wall time of ``call`` in milliseconds."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(max(1, calls)):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    times_ms = np.array(times) * 1e3
    return float(np.percentile(times_ms, 50)), float(np.percentile(times_ms, 99))


def time_repeats(call: Callable[[], object], repeats: int) -> tuple[list[float], list[float], object]:
    """Wall and process-CPU seconds of each of ``repeats`` calls (after one untimed warm-up),
    and the last result."""
    result = call()
    wall, cpu = [], []
    for _ in range(max(1, repeats)):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = call()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu, result


def peak_rss_mb() -> float:
    """Peak resident set size of this process (VmHWM on Linux, ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)


# --- fresh-process memory ---------------------------------------------------------------------


#: The fresh process of an ONNX row: numpy + xiaonet.edge only (not even this module).
EDGE_CHILD = """
import json, sys
import numpy as np
from xiaonet.edge import EdgePicker

spec = json.loads(sys.argv[1])
picker = EdgePicker(spec["onnx"], threads=int(spec["threads"]))
order = ["ZNE".index(c) for c in picker.model.metadata.component_order]
n_picks = 0
with np.load(spec["data"]) as saved:
    for i, block in enumerate(json.loads(str(saved["meta"]))):
        data = saved[f"data_{i}"]
        if order != [0, 1, 2]:
            data = data[order]
        n_picks += len(picker.pick_array(data, block["start"], block["trace_id"]))
        del data
status = open("/proc/self/status").read() if sys.platform.startswith("linux") else ""
if "VmHWM:" in status:
    peak = int(status.split("VmHWM:")[1].split()[0]) / 1024.0
else:
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "seisbench", "obspy"})
print(json.dumps({"peak_rss_mb": peak, "n_picks": n_picks, "loaded": loaded}))
"""


def rss_child(spec: dict) -> None:
    """Body of the fresh process of a torch / SeisBench / ObsPy row: load the picker, pick
    the saved data once, print peak RSS. (ONNX rows run :data:`EDGE_CHILD` instead.)

    ``spec``: model, runtime, data (npz path), threads, teacher weights, untrained.
    """
    threads = int(spec["threads"])
    data = BenchmarkData.load(spec["data"])
    if spec["runtime"] != "obspy":
        import torch

        torch.set_num_threads(threads)
    from xiaonet.picking.pickers import ModelPicker
    from xiaonet.picking.loading import load_picker
    from xiaonet.models.presets import build_student

    if spec.get("untrained"):
        picker = ModelPicker(build_student(spec["model"]), name=spec["model"])
    else:
        picker = load_picker(spec["model"], weights=spec.get("weights", "original"))
    n_picks = sum(len(picker.pick(block.to_stream(), note=lambda message: None)) for block in data.blocks)
    loaded = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "seisbench", "obspy"})
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "n_picks": n_picks, "loaded": loaded}))


def measure_fresh_process(spec: dict, timeout: float = 900) -> dict:
    """Run :func:`rss_child` in a new interpreter; returns its JSON report."""
    if spec["runtime"].startswith("onnx"):
        code = EDGE_CHILD
    else:
        code = "import json, sys; from xiaonet.speed.benchmarking import rss_child; rss_child(json.loads(sys.argv[1]))"
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[variable] = str(spec["threads"])
    result = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True,
                            text=True, timeout=timeout, env=env)
    if result.returncode != 0:
        raise BenchmarkError(f"fresh process for {spec['model']}:{spec['runtime']} failed: "
                             f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def baseline_rss_mb() -> float:
    """Peak RSS of a fresh interpreter that imports numpy only (the floor of every row)."""
    code = "import numpy, json; from xiaonet.speed.benchmarking import peak_rss_mb; print(peak_rss_mb())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return float(result.stdout.strip().splitlines()[-1])


# --- the run ----------------------------------------------------------------------------------


class ModelArtifacts:
    """A model's torch object, ONNX files and static figures, built once per run."""

    def __init__(self, name: str, config: BenchmarkConfig, calibration: np.ndarray, workdir: Path,
                 wants: set[str], note: Callable[[str], None]):
        from xiaonet.models.model import count_parameters
        from xiaonet.models.presets import PRESETS, load_student, shipped_weights

        self.name = name
        self.onnx: dict[str, Path] = {}
        self.untrained = False
        self.torch_model = None
        self.errors: dict[str, str] = {}
        if name == "stalta":
            return
        if name in PRESETS:
            self.untrained = shipped_weights(name) is None
            self.torch_model = load_student(name, allow_untrained=True)
            if self.untrained:
                note(f"{name}: no trained weights shipped; timing an untrained model (speed does not depend on weights)")
        else:
            from xiaonet.models.teachers import load_teacher

            self.torch_model = load_teacher(name, config.teacher_weights)
        model = self.torch_model
        self.parameters = count_parameters(model)
        self.window_samples = int(model.in_samples)
        macs = count_macs_any(model, self.window_samples)
        self.macs_per_30s = macs * WINDOW_30S / self.window_samples
        self.macs_note = "" if self.window_samples == WINDOW_30S else f"{self.window_samples}-sample window scaled to 30 s"
        if any(w.startswith("onnx") for w in wants):
            from xiaonet.edge.export import ExportError, export_onnx, quantize_int8
            from xiaonet.models.model import XiaoNet

            try:
                self.onnx["onnx-fp32"] = export_onnx(model, workdir / f"{name}.onnx", name)
            except ExportError as error:
                self.errors["onnx-fp32"] = self.errors["onnx-int8"] = str(error)
            if "onnx-int8" in wants and "onnx-fp32" in self.onnx:
                window = calibration[..., : self.window_samples]
                # a fully convolutional student predicts a record shorter than its window whole,
                # so such records are what it must be calibrated on
                if window.shape[-1] < self.window_samples and not isinstance(model, XiaoNet):
                    self.errors["onnx-int8"] = "benchmark data shorter than one window: no calibration"
                else:
                    order = ["ZNE".index(c) for c in model.component_order]
                    try:
                        self.onnx["onnx-int8"] = quantize_int8(
                            self.onnx["onnx-fp32"], workdir / f"{name}.int8.onnx", window[:, order])
                    except ExportError as error:
                        self.errors["onnx-int8"] = str(error)

    def file_bytes(self, key: str) -> int | None:
        path = self.onnx.get(key)
        return path.stat().st_size if path else None


def run_benchmark(config: BenchmarkConfig, note: Callable[[str], None] = print) -> dict:
    """Measure every requested row on the same data; returns a JSON-ready report."""
    import torch

    from xiaonet.edge import EdgePicker
    from xiaonet.picking.pickers import ModelPicker
    from xiaonet.picking.stalta import StaLtaPicker

    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    rows_wanted = expand_model_specs(config.models)
    if config.synthetic_seconds:
        data = synthetic_data(config.synthetic_seconds, rng)
    else:
        if not config.data:
            raise BenchmarkError("no data: give --data PATH (3-component miniSEED) or --synthetic SECONDS")
        data = load_benchmark_data(config.data, config.hours, note)
    note(f"data: {data.description}")
    workdir = Path(config.workdir or tempfile.mkdtemp(prefix="xiaonet-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data_file = data.save(workdir / "data.npz")
    streams = [block.to_stream() for block in data.blocks]
    calibration = calibration_from_blocks(data.blocks, config.calibration_windows, rng)

    artifacts: dict[str, ModelArtifacts] = {}
    for name in dict.fromkeys(model for model, _ in rows_wanted):
        wants = {runtime for model, runtime in rows_wanted if model == name}
        note(f"preparing {name} ({', '.join(sorted(wants))})")
        # Export every ONNX variant the model has, so the file-size columns are complete.
        wants |= {r for r in (STUDENT_RUNTIMES if name not in RUNTIMES else RUNTIMES[name]) if r.startswith("onnx")}
        artifacts[name] = ModelArtifacts(name, config, calibration, workdir, wants, note)

    rows = []
    for name, runtime in rows_wanted:
        art = artifacts[name]
        row = Row(name, runtime)
        rows.append(row)
        if name != "stalta":
            row.parameters = art.parameters
            row.fp32_bytes = art.file_bytes("onnx-fp32")
            row.int8_bytes = art.file_bytes("onnx-int8")
            row.macs_per_30s = art.macs_per_30s
            row.macs_note = art.macs_note
            row.window_samples = art.window_samples
        if runtime in art.errors:
            row.error = art.errors[runtime]
            note(f"{name}:{runtime}: {row.error}")
            continue
        note(f"measuring {name}:{runtime}")
        try:
            if runtime.startswith("onnx"):
                picker = EdgePicker(art.onnx[runtime], threads=config.threads)
                window = np.ascontiguousarray(
                    calibration[:1, [ "ZNE".index(c) for c in picker.model.metadata.component_order], : art.window_samples])
                row.latency_ms_p50, row.latency_ms_p99 = latency_percentiles(
                    lambda: picker.model.predict(window), config.latency_calls)
            elif runtime == "obspy":
                picker = StaLtaPicker()
                trace = streams[0].select(component="Z")[0].slice(
                    streams[0][0].stats.starttime, streams[0][0].stats.starttime + 30 - 0.01).copy()
                row.window_samples = trace.stats.npts
                row.latency_ms_p50, row.latency_ms_p99 = latency_percentiles(
                    lambda: picker.characteristic_function(trace), config.latency_calls)
            else:
                model = art.torch_model
                picker = ModelPicker(model, name=name)
                window = torch.as_tensor(calibration[:1, ["ZNE".index(c) for c in model.component_order], : art.window_samples])

                def forward():
                    with torch.no_grad():
                        return model(model.annotate_batch_pre(window, {}))

                row.latency_ms_p50, row.latency_ms_p99 = latency_percentiles(forward, config.latency_calls)

            def pick_everything():
                # Pickers never modify their input (they clean a copy), so no copy here.
                return sum(len(picker.pick(s, note=lambda message: None)) for s in streams)

            row.pick_seconds, row.pick_cpu_seconds, row.n_picks = time_repeats(pick_everything, config.repeats)
            # CPU seconds of all threads = core-seconds.
            row.throughput = data.station_hours / float(np.median(row.pick_cpu_seconds))
            row.throughput_wall = data.station_hours / float(np.median(row.pick_seconds)) / config.threads
            if runtime.startswith("onnx"):
                order = ["ZNE".index(c) for c in picker.model.metadata.component_order]

                def pick_arrays():
                    return sum(len(picker.pick_array(b.data[order], b.start, b.trace_id)) for b in data.blocks)

                _, cpu_seconds, _ = time_repeats(pick_arrays, config.repeats)
                row.throughput_arrays = data.station_hours / float(np.median(cpu_seconds))
            if config.measure_rss:
                spec = {"model": name, "runtime": runtime, "data": str(data_file),
                        "threads": config.threads, "weights": config.teacher_weights,
                        "untrained": bool(art.untrained)}
                if runtime.startswith("onnx"):
                    spec["onnx"] = str(art.onnx[runtime])
                report = measure_fresh_process(spec)
                row.peak_rss_mb = report["peak_rss_mb"]
                if runtime.startswith("onnx") and report["loaded"]:
                    raise BenchmarkError(f"the torch-free process imported {report['loaded']}")
        except Exception as error:  # one failing runtime never takes the run down
            row.error = f"{type(error).__name__}: {error}"
            note(f"{name}:{runtime}: {row.error}")

    return {
        "config": asdict(config),
        "environment": environment(),
        "data": {"description": data.description, "station_hours": data.station_hours,
                 "synthetic": data.synthetic, "blocks": len(data.blocks)},
        "baseline_rss_mb": baseline_rss_mb() if config.measure_rss else None,
        "untrained": sorted(n for n, a in artifacts.items() if a.untrained),
        "rows": [asdict(row) for row in rows],
        "targets": evaluate_targets(rows),
        "workdir": str(workdir),
    }


def calibration_from_blocks(blocks: list[Block], n_windows: int, rng: np.random.Generator,
                            window: int = 6001) -> np.ndarray:
    """Windows (n, 3, up to ``window``) in ZNE order cut at random offsets of the benchmark data."""
    longest = max(b.data.shape[-1] for b in blocks)
    length = min(window, longest)
    usable = [b for b in blocks if b.data.shape[-1] >= length]
    out = np.empty((max(1, n_windows), 3, length), dtype=np.float32)
    for i in range(out.shape[0]):
        block = usable[int(rng.integers(len(usable)))]
        offset = int(rng.integers(0, block.data.shape[-1] - length + 1))
        out[i] = block.data[:, offset : offset + length]
    return out


def environment() -> dict:
    versions = {}
    for module in ("numpy", "onnxruntime", "torch", "seisbench", "obspy"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # noqa: BLE001 - absent modules are reported as absent
            versions[module] = None
    return {"machine": platform.machine(), "platform": platform.platform(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(), **versions}


# --- targets and table ------------------------------------------------------------------------


def _row(rows: list[Row], model: str, runtime: str) -> Row | None:
    for row in rows:
        if row.key == (model, runtime) and not row.error:
            return row
    return None


def evaluate_targets(rows: list[Row], student: str = "xiaonet-s") -> list[dict]:
    """The issue's targets for the default student, from the measured rows (None = not measured)."""
    reference = _row(rows, *REFERENCE_ROW)
    ort_reference = _row(rows, "phasenet", "onnx-fp32")
    candidates = [r for r in (_row(rows, student, rt) for rt in ("onnx-int8", "onnx-fp32", "torch")) if r]
    best = max(candidates, key=lambda r: r.throughput or 0, default=None)
    fp32, int8 = _row(rows, student, "onnx-fp32"), _row(rows, student, "onnx-int8")

    def ratio(a, b):
        return None if a is None or b is None or b == 0 else a / b

    targets = [
        {"target": f"{student} throughput >= 20x PhaseNet through SeisBench (per core)",
         "value": ratio(best and best.throughput, reference and reference.throughput),
         "limit": 20.0, "higher_is_better": True, "via": best and best.runtime},
        {"target": f"{student} throughput >= 5x PhaseNet in the same ONNX Runtime harness (fp32 vs fp32)",
         "value": ratio(fp32 and fp32.throughput, ort_reference and ort_reference.throughput),
         "limit": 5.0, "higher_is_better": True, "via": "onnx-fp32"},
        {"target": f"{student} MACs per window <= 1/10 of PhaseNet's",
         "value": ratio((fp32 or best) and (fp32 or best).macs_per_30s, reference and reference.macs_per_30s),
         "limit": 0.1, "higher_is_better": False, "via": "count_macs_any"},
        {"target": f"{student} int8 file <= 20 KB (20,000 B)",
         "value": float(int8.int8_bytes) if int8 and int8.int8_bytes else None,
         "limit": 20_000.0, "higher_is_better": False, "via": "onnx-int8"},
        {"target": f"peak RSS of the torch-free runtime ({student} int8) picking the data <= 60 MB",
         "value": int8.peak_rss_mb if int8 else None,
         "limit": 60.0, "higher_is_better": False, "via": "fresh process, numpy + onnxruntime"},
    ]
    for target in targets:
        value = target["value"]
        target["met"] = None if value is None else (
            value >= target["limit"] if target["higher_is_better"] else value <= target["limit"])
    return targets


COLUMNS = [
    "model", "runtime", "params", "fp32 file kB", "int8 file kB", "MMACs / 30 s",
    "latency p50 ms", "latency p99 ms", "station-h / core-s", "station-h / s wall", "peak RSS MB",
    "x PhaseNet speed", "x PhaseNet MACs", "x PhaseNet RSS",
]


def _fmt(value, digits=1, scale=1.0) -> str:
    if value is None:
        return "–"
    value = value * scale
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def format_markdown(report: dict) -> str:
    """The report as a markdown table plus the targets and notes."""
    rows = [Row(**{k: v for k, v in r.items()}) for r in report["rows"]]
    reference = _row(rows, *REFERENCE_ROW)

    def ratio(a, b, digits=2):
        if a is None or b is None or b == 0:
            return "–"
        value = a / b
        return f"{value:.{digits}f}" if value < 10 else f"{value:.0f}"

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        if row.error:
            lines.append(f"| {row.model} | {row.runtime} | " + " | ".join(["–"] * (len(COLUMNS) - 3))
                         + f" | failed: {row.error[:80]} |")
            continue
        cells = [
            row.model, row.runtime, _fmt(row.parameters, 0),
            _fmt(row.fp32_bytes, 1, 1e-3), _fmt(row.int8_bytes, 1, 1e-3),
            _fmt(row.macs_per_30s, 2, 1e-6) + ("*" if row.macs_note else ""),
            _fmt(row.latency_ms_p50, 2), _fmt(row.latency_ms_p99, 2),
            _fmt(row.throughput, 2), _fmt(row.throughput_wall, 2), _fmt(row.peak_rss_mb, 0),
            ratio(row.throughput, reference and reference.throughput),
            ratio(row.macs_per_30s, reference and reference.macs_per_30s, 3),
            ratio(row.peak_rss_mb, reference and reference.peak_rss_mb),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    data = report["data"]
    env = report["environment"]
    notes = [
        "",
        f"Data: {data['description']}" + ("  **SYNTHETIC NOISE: smoke test, not a measurement of real data**" if data["synthetic"] else ""),
        f"Machine: {env['machine']}, {env['platform']}, {env['cpu_count']} CPU(s); python {env['python']}, "
        f"torch {env['torch']}, onnxruntime {env['onnxruntime']}; threads {report['config']['threads']}, "
        f"repeats {report['config']['repeats']} (medians), latency over {report['config']['latency_calls']} calls at batch 1.",
        "Throughput: whole-trace picking of ObsPy streams (cleaning, windows, stacking, trigger) "
        "of all blocks, in station-hours per CPU-second of the process (core-s; robust to other "
        "jobs on the machine) and per wall-clock second; ratios (CPU) against PhaseNet through "
        "SeisBench in this run.",
        "Peak RSS: fresh process per runtime picking the same data once; onnx rows read numpy "
        "arrays and import no torch/SeisBench/ObsPy"
        + (f"; a bare python + numpy process peaks at {report['baseline_rss_mb']:.0f} MB." if report.get("baseline_rss_mb") else "."),
    ]
    arrays = [f"{r.model} {r.runtime} {r.throughput_arrays:.2f}" for r in rows if r.throughput_arrays]
    if arrays:
        notes.append("Torch-free picking from numpy arrays (no ObsPy cleaning), station-h / core-s: "
                     + "; ".join(arrays) + ".")
    if any(r.macs_note for r in rows):
        notes.append("* MACs of a longer window scaled to 30 s (EQTransformer: 6000-sample windows).")
    if report.get("untrained"):
        notes.append(f"Untrained (no shipped weights): {', '.join(report['untrained'])}; speed and memory do "
                     "not depend on the weights, pick counts do.")
    notes.append("")
    notes.append("Targets (default student):")
    for target in report["targets"]:
        value = target["value"]
        status = "not measured" if value is None else ("met" if target["met"] else "MISSED")
        shown = "–" if value is None else (f"{value:,.0f}" if value >= 100 else f"{value:.3g}")
        notes.append(f"- {target['target']}: {shown} ({target['via']}) -> {status}")
    return "\n".join(lines + notes)
