"""The benchmark's targets and its markdown table."""

from __future__ import annotations

from dataclasses import dataclass, field


#: The row every ratio is taken against: PhaseNet through SeisBench, measured in the same run.
REFERENCE_ROW = ("phasenet", "seisbench")


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

# --- targets and table ------------------------------------------------------------------------


def _row(rows: list[Row], model: str, runtime: str) -> Row | None:
    for row in rows:
        if row.key == (model, runtime) and not row.error:
            return row
    return None


def evaluate_targets(rows: list[Row], default: str | None = None, microcontroller: str = "xiaonet-s") -> list[dict]:
    """The targets, from the measured rows (None = not measured): speed and MACs for the default
    student (``DEFAULT_PRESET`` unless named), size and memory for the microcontroller student."""
    if default is None:
        from xiaonet.models.presets import DEFAULT_PRESET

        default = DEFAULT_PRESET
    reference = _row(rows, *REFERENCE_ROW)
    ort_reference = _row(rows, "phasenet", "onnx-fp32")

    def fastest(student):
        candidates = [r for r in (_row(rows, student, rt) for rt in ("onnx-int8", "onnx-fp32", "torch")) if r]
        return max(candidates, key=lambda r: r.throughput or 0, default=None)

    def ratio(a, b):
        return None if a is None or b is None or b == 0 else a / b

    best, fp32 = fastest(default), _row(rows, default, "onnx-fp32")
    small_fp32, small_int8 = _row(rows, microcontroller, "onnx-fp32"), _row(rows, microcontroller, "onnx-int8")
    c_fp32 = _row(rows, microcontroller, "c-fp32")
    targets = [
        {"target": f"{default} (default) throughput >= 20x PhaseNet through SeisBench (per core)",
         "value": ratio(best and best.throughput, reference and reference.throughput),
         "limit": 20.0, "higher_is_better": True, "via": best and best.runtime},
        {"target": f"{default} (default) throughput >= 5x PhaseNet in the same ONNX Runtime harness (fp32 vs fp32)",
         "value": ratio(fp32 and fp32.throughput, ort_reference and ort_reference.throughput),
         "limit": 5.0, "higher_is_better": True, "via": "onnx-fp32"},
        {"target": f"{default} (default) MACs per window <= 1/10 of PhaseNet's",
         "value": ratio((fp32 or best) and (fp32 or best).macs_per_30s, reference and reference.macs_per_30s),
         "limit": 0.1, "higher_is_better": False, "via": "count_macs"},
        {"target": f"{microcontroller} (microcontroller) int8 file <= 20 KB (20,000 B)",
         "value": float(small_int8.int8_bytes) if small_int8 and small_int8.int8_bytes else None,
         "limit": 20_000.0, "higher_is_better": False, "via": "onnx-int8"},
        {"target": f"peak RSS of the torch-free runtime ({microcontroller} int8) picking the data <= 60 MB",
         "value": small_int8.peak_rss_mb if small_int8 else None,
         "limit": 60.0, "higher_is_better": False, "via": "fresh process, numpy + onnxruntime"},
        {"target": f"peak RSS of the C runtime through ctypes ({microcontroller} fp32) picking the data <= 45 MB",
         "value": c_fp32.peak_rss_mb if c_fp32 else None,
         "limit": 45.0, "higher_is_better": False, "via": "fresh process, numpy + the C library"},
        {"target": f"throughput of the C runtime >= the ONNX Runtime path's ({microcontroller}, fp32 vs fp32, ratio >= 1)",
         "value": ratio(c_fp32 and c_fp32.throughput, small_fp32 and small_fp32.throughput),
         "limit": 1.0, "higher_is_better": True, "via": "c-fp32 / onnx-fp32"},
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
        "Peak RSS: fresh process per runtime picking the same data once; onnx and c rows read numpy "
        "arrays and import no torch/SeisBench/ObsPy (c rows: no onnxruntime either; the C library is compiled beforehand)"
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
    notes.append("Targets (default and microcontroller students):")
    for target in report["targets"]:
        value = target["value"]
        status = "not measured" if value is None else ("met" if target["met"] else "MISSED")
        shown = "–" if value is None else (f"{value:,.0f}" if value >= 100 else f"{value:.3g}")
        notes.append(f"- {target['target']}: {shown} ({target['via']}) -> {status}")
    return "\n".join(lines + notes)


# --- the CLI section: whole `xiaonet pick` processes --------------------------------------------

CLI_COLUMNS = [
    "command", "picker", "picks", "wall s", "CPU s", "peak RSS MB",
    "x PhaseNet CPU", "x PhaseNet RSS", "x STA/LTA CPU", "x STA/LTA RSS",
]


def _cli_row(cli: dict, label_start: str, picker: str) -> dict | None:
    for row in cli["rows"]:
        if row["label"].startswith(label_start) and row["picker"] == picker and not row["error"]:
            return row
    return None


def evaluate_cli_targets(cli: dict) -> list[dict]:
    """The issue's targets for whole processes (stated there for a 6 h, 100 Hz file)."""
    default = _cli_row(cli, "xiaonet pick FILE", cli["default_preset"])
    stalta = _cli_row(cli, "xiaonet pick FILE", "stalta")
    example = _cli_row(cli, "xiaonet pick --example", cli["default_preset"])

    def get(row, key):
        return row and row[key]

    cpu_ratio = None
    if default and stalta and stalta["cpu_s"]:
        cpu_ratio = default["cpu_s"] / stalta["cpu_s"]
    targets = [
        {"target": f"`xiaonet pick FILE` ({cli['default_preset']}, default) peak RSS <= 150 MB",
         "value": get(default, "peak_rss_mb_median"), "limit": 150.0, "higher_is_better": False, "via": "MB"},
        {"target": "`xiaonet pick FILE` CPU <= 1.5x `xiaonet pick FILE --picker stalta`",
         "value": cpu_ratio, "limit": 1.5, "higher_is_better": False, "via": "x"},
        {"target": "`xiaonet pick FILE --picker stalta` peak RSS <= 150 MB",
         "value": get(stalta, "peak_rss_mb_median"), "limit": 150.0, "higher_is_better": False, "via": "MB"},
        {"target": "`xiaonet pick --example` peak RSS <= 120 MB",
         "value": get(example, "peak_rss_mb_median"), "limit": 120.0, "higher_is_better": False, "via": "MB"},
    ]
    for target in targets:
        value = target["value"]
        target["met"] = None if value is None else value <= target["limit"]
    return targets


def format_cli_markdown(cli: dict, station_hours: float) -> str:
    """The CLI section: what it measures, its table, and the targets."""
    phasenet = _cli_row(cli, "xiaonet pick FILE", "phasenet")
    stalta = _cli_row(cli, "xiaonet pick FILE", "stalta")

    def ratio(a, b):
        if a is None or b is None or b == 0:
            return "–"
        value = a / b
        return f"{value:.2f}" if value < 10 else f"{value:.0f}"

    lines = [
        "",
        f"`xiaonet pick` as a user runs it: each command started as its own process (Python start-up, "
        f"imports, loading the picker, reading the file, picking, writing the CSV), on the same data "
        f"({', '.join(cli['files'])}; {station_hours:.3f} station-hours). Wall s, CPU s (user + sys) and "
        f"peak RSS (ru_maxrss) of that process from os.wait4, medians over {cli['repeats']} run(s) after "
        "one untimed warm-up run per command (the first run on new student weights builds the ONNX cache); "
        "ratios against the PhaseNet and STA/LTA commands of this run.",
        "",
        "| " + " | ".join(CLI_COLUMNS) + " |", "|" + "---|" * len(CLI_COLUMNS),
    ]
    for row in cli["rows"]:
        if row["error"]:
            lines.append(f"| `{row['label']}` | {row['picker']} | " + " | ".join(["–"] * (len(CLI_COLUMNS) - 3))
                         + f" | {row['error'][:100]} |")
            continue
        cpu, rss = row["cpu_s"], row["peak_rss_mb_median"]
        cells = [
            f"`{row['label']}`", row["picker"], str(row["n_picks"]), _fmt(row["wall_s"], 2), _fmt(cpu, 2),
            _fmt(rss, 0),
            ratio(cpu, phasenet and phasenet["cpu_s"]), ratio(rss, phasenet and phasenet["peak_rss_mb_median"]),
            ratio(cpu, stalta and stalta["cpu_s"]), ratio(rss, stalta and stalta["peak_rss_mb_median"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    first = [r for r in cli["rows"] if r.get("warmup")]
    if first:
        lines.append("")
        lines.append("Untimed warm-up runs (wall s / CPU s / peak MB): " + "; ".join(
            f"`{r['label']}` {r['warmup']['wall']:.2f} / {r['warmup']['cpu']:.2f} / {r['warmup']['peak_rss_mb']:.0f}"
            for r in first) + ".")
    lines.append("")
    lines.append(f"Targets for whole processes (the issue states them for a 6 h, 100 Hz file; "
                 f"this run picked {station_hours:.3f} station-hours):")
    for target in cli["targets"]:
        value = target["value"]
        status = "not measured" if value is None else ("met" if target["met"] else "MISSED")
        shown = "–" if value is None else f"{value:.2f}" + (" MB" if target["via"] == "MB" else "x")
        lines.append(f"- {target['target']}: {shown} -> {status}")
    return "\n".join(lines)
