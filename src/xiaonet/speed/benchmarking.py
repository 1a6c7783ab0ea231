"""Speed and memory of every picker runtime, measured in one run on the same data.

Rows are (model, runtime) pairs: the student presets through torch (SeisBench ``annotate``)
and through ONNX Runtime (fp32 and int8, :mod:`xiaonet.edge`), PhaseNet and EQTransformer
through SeisBench and through ONNX Runtime, and the STA/LTA baseline (ObsPy). For each row:

* parameters, ONNX file sizes (fp32, int8) and multiply-accumulates per 30 s window
  (:func:`xiaonet.models.cost.count_macs`: convolutions, linear layers, LSTMs and
  EQTransformer's attention);
* latency per window at batch 1 (p50, p99 over ``latency_calls`` calls);
* throughput of whole-trace picking, in station-hours per CPU-second of the one thread
  (median over ``repeats``; CPU time, so other jobs on a shared machine do not count), and
  the same per wall-clock second, on the same blocks of 3-component data for every row;
* peak resident memory (VmHWM) of a fresh Python process that loads the runtime and picks
  the same data once (the torch-free rows read numpy arrays and import neither torch,
  SeisBench nor ObsPy).

Then, unless ``cli`` is off, the commands a user types (``xiaonet pick FILE`` with the default
student, ``--picker stalta``, ``--picker phasenet``, ``--example``) as whole processes on the
same data (:mod:`xiaonet.speed.whole_process`).

Nothing here imports torch at module level, so the fresh edge processes stay torch-free.
"""

from __future__ import annotations

import os
import platform
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from xiaonet.models.cost import count_macs
from xiaonet.speed.data import BenchmarkError, calibration_from_blocks, load_benchmark_data, synthetic_data
from xiaonet.speed.fresh_process import baseline_rss_mb, measure_fresh_process
from xiaonet.speed.report import Row, evaluate_targets
from xiaonet.speed.timing import latency_percentiles, time_repeats

STUDENT_RUNTIMES = ("torch", "onnx-fp32", "onnx-int8", "c-fp32", "c-int8")
RUNTIMES = {
    "phasenet": ("seisbench", "onnx-fp32", "onnx-int8"),
    "eqtransformer": ("seisbench", "onnx-fp32"),
    "stalta": ("obspy",),
}
DEFAULT_MODELS = ("xiaonet-xs", "xiaonet-s", "xiaonet-m", "phasenet", "eqtransformer", "stalta")
WINDOW_30S = 3001  # samples in a 30 s window at 100 Hz


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
    #: Also time whole ``xiaonet pick`` processes on the same data (:mod:`xiaonet.speed.whole_process`).
    cli: bool = True


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


# --- the run ----------------------------------------------------------------------------------


class ModelArtifacts:
    """A model's torch object, ONNX files and static figures, built once per run."""

    def __init__(self, name: str, config: BenchmarkConfig, calibration: np.ndarray, workdir: Path,
                 wants: set[str], note: Callable[[str], None]):
        from xiaonet.models.model import count_parameters
        from xiaonet.models.presets import PRESETS, load_student, shipped_weights

        self.name = name
        self.onnx: dict[str, Path] = {}
        self.c_dirs: dict[str, Path] = {}  # the generated C runtime (xiaonet.edge.c_runtime) per precision
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
        macs = count_macs(model, self.window_samples)
        self.macs_per_30s = macs * WINDOW_30S / self.window_samples
        self.macs_note = "" if self.window_samples == WINDOW_30S else f"{self.window_samples}-sample window scaled to 30 s"
        if any(w.startswith("c-") for w in wants):  # C is generated from the ONNX files
            wants |= {"onnx-" + w[2:] for w in wants if w.startswith("c-")}
        if any(w.startswith("onnx") for w in wants):
            from xiaonet.export.onnx_files import ExportError, export_onnx, quantize_int8
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
            for runtime in sorted(w for w in wants if w.startswith("c-")):
                source = "onnx-" + runtime[2:]
                if source not in self.onnx:
                    self.errors[runtime] = self.errors.get(source, f"no {source} file to generate C from")
                    continue
                from xiaonet.edge.c_export import write_c_model

                try:
                    self.c_dirs[runtime] = workdir / f"{name}-{runtime}"
                    write_c_model(self.onnx[source], self.c_dirs[runtime])
                except ValueError as error:
                    self.errors[runtime] = str(error)

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
            if runtime.startswith(("onnx", "c-")):
                if runtime.startswith("c-"):
                    from xiaonet.edge.c_runtime import CPicker

                    picker = CPicker(art.c_dirs[runtime])
                else:
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
            if runtime.startswith(("onnx", "c-")):
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
                if runtime.startswith("c-"):
                    spec["c"] = str(art.c_dirs[runtime])
                report = measure_fresh_process(spec)
                row.peak_rss_mb = report["peak_rss_mb"]
                if runtime.startswith(("onnx", "c-")) and report["loaded"]:
                    raise BenchmarkError(f"the torch-free process imported {report['loaded']}")
        except Exception as error:  # one failing runtime never takes the run down
            row.error = f"{type(error).__name__}: {error}"
            note(f"{name}:{runtime}: {row.error}")

    cli = None
    if config.cli:
        from xiaonet.speed.report import evaluate_cli_targets
        from xiaonet.speed.whole_process import run_cli_benchmark

        with_phasenet = any(name == "phasenet" for name, _ in rows_wanted)
        cli = run_cli_benchmark(data, workdir, config.repeats, config.threads, with_phasenet, note)
        cli["targets"] = evaluate_cli_targets(cli)

    return {
        "config": asdict(config),
        "environment": environment(),
        "data": {"description": data.description, "station_hours": data.station_hours,
                 "synthetic": data.synthetic, "blocks": len(data.blocks)},
        "baseline_rss_mb": baseline_rss_mb() if config.measure_rss else None,
        "untrained": sorted(n for n, a in artifacts.items() if a.untrained),
        "rows": [asdict(row) for row in rows],
        "targets": evaluate_targets(rows),
        "cli": cli,
        "workdir": str(workdir),
    }


def environment() -> dict:
    versions = {}
    for module in ("numpy", "onnxruntime", "torch", "seisbench", "obspy"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # noqa: BLE001 - absent modules are reported as absent
            versions[module] = None
    return {"machine": platform.machine(), "platform": platform.platform(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(), **versions}
