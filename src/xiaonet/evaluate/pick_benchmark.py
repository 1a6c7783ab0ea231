"""The SeisBench pick-benchmark tasks (Münchmeyer et al., 2022, JGR) for any picker.

* **Task 1, detection**: 30 s windows, earthquake windows (holding the first onset at least
  ``edge_margin_s`` from either edge) against noise windows (whole-noise rows, or cut from an
  earthquake row so that they end ``edge_margin_s`` before its first onset). Score: ROC AUC
  of the window's detection score.
* **Task 2, P or S**: 10 s windows holding exactly one onset, at least ``edge_margin_s`` from
  the edges. Score: Matthews correlation of the P-vs-S decision.
* **Task 3, onset time**: the same windows; residual (predicted minus analyst onset) RMSE,
  MAE, mean, std and outlier fraction per phase.

Windows are drawn with a seeded ``numpy.random.Generator`` and written to CSV
(:func:`write_windows`), so a run can be repeated on exactly the same windows
(:func:`read_windows`).

How each picker is asked (SeisBench's benchmark practice): the picker annotates a *context*
of ``context_s`` seconds around the target window (clipped to the record), so that teachers
that need 30 s (PhaseNet) or 60 s (EQTransformer) inputs can run, and is scored on the
target window only. Where the record is shorter than what a teacher needs, it produces no
annotation and the window is counted as "not scored" (never as a miss or a hit).

* Detection score: the highest P or S probability in the target window (for STA/LTA: the
  highest STA/LTA ratio).
* P-vs-S decision: P when the highest P probability in the window is at least the highest S
  probability. STA/LTA has no S characteristic function: task 2 and its S onsets are "n/a".
* Onset: the time of the highest probability of the labelled phase in the window (for
  STA/LTA: the first sample where the ratio reaches its trigger-on level; none = no onset).
"""

from __future__ import annotations

import csv
import math
import zlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import obspy

from xiaonet.evaluate.evaluation import PHASES
from xiaonet.evaluate.traces import LabelledDataset
from xiaonet.scoring.matching import matthews_corrcoef, residual_summary, roc_auc


@dataclass
class BenchmarkSettings:
    seed: int = 20261127
    detection_window_s: float = 30.0
    phase_window_s: float = 10.0
    edge_margin_s: float = 0.5
    context_s: float = 60.0
    outlier_threshold: float = 0.2


@dataclass
class BenchmarkWindow:
    """One target window: samples ``[start, end)`` of dataset row ``row``."""

    task: str  # "detection" (task 1) or "phase" (tasks 2 and 3)
    dataset: str
    row: int
    start: int
    end: int
    sampling_rate: float
    label: str  # task 1: earthquake / noise; tasks 2-3: P / S
    onset: float = float("nan")  # analyst onset (sample in the row), nan for noise


def _onsets(dataset: LabelledDataset, row: int) -> dict[str, float]:
    meta = dataset.metadata.iloc[row]
    out = {}
    for phase, column in (("P", "trace_p_arrival_sample"), ("S", "trace_s_arrival_sample")):
        value = meta.get(column)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            out[phase] = float(value)
    return out


def _n_samples(dataset: LabelledDataset, row: int) -> int:
    return int(dataset.waveforms(row).shape[-1])


def generate_windows(
    dataset: LabelledDataset, settings: BenchmarkSettings, rng: np.random.Generator
) -> tuple[list[BenchmarkWindow], dict[str, int]]:
    """Draw task 1 and task 2/3 windows for every row; returns windows and skip counts."""
    windows: list[BenchmarkWindow] = []
    skipped = {"detection_too_short": 0, "noise_no_room": 0, "phase_no_room": 0}
    for row in dataset.rows:
        rate = dataset.sampling_rate(row)
        n = _n_samples(dataset, row)
        onsets = _onsets(dataset, row)
        margin = int(round(settings.edge_margin_s * rate))
        length = int(round(settings.detection_window_s * rate))
        category = str(dataset.metadata.iloc[row].get("trace_category", ""))
        # task 1
        if n < length:
            skipped["detection_too_short"] += 1
        elif not onsets or category == "noise":
            start = int(rng.integers(0, n - length + 1))
            windows.append(BenchmarkWindow("detection", dataset.name, row, start, start + length, rate, "noise"))
        else:
            first = min(onsets.values())
            lo = max(0, int(math.ceil(first + margin - length)))
            hi = min(n - length, int(math.floor(first - margin)))
            if lo <= hi:
                start = int(rng.integers(lo, hi + 1))
                windows.append(BenchmarkWindow("detection", dataset.name, row, start, start + length,
                                               rate, "earthquake", first))
            noise_end = int(math.floor(first - margin))
            if noise_end >= length:
                start = int(rng.integers(0, noise_end - length + 1))
                windows.append(BenchmarkWindow("detection", dataset.name, row, start, start + length, rate, "noise"))
            else:
                skipped["noise_no_room"] += 1
        # tasks 2 and 3
        length = int(round(settings.phase_window_s * rate))
        for phase, onset in sorted(onsets.items()):
            others = [t for p, t in onsets.items() if p != phase]
            lo = max(0, int(math.ceil(onset + margin - length)))
            hi = min(n - length, int(math.floor(onset - margin)))
            candidates = np.arange(lo, hi + 1) if lo <= hi else np.zeros(0, dtype=int)
            for other in others:  # exactly one onset in the window
                candidates = candidates[(other < candidates) | (other >= candidates + length)]
            if candidates.size == 0:
                skipped["phase_no_room"] += 1
                continue
            start = int(rng.choice(candidates))
            windows.append(BenchmarkWindow("phase", dataset.name, row, start, start + length, rate, phase, onset))
    return windows, skipped


def write_windows(windows: list[BenchmarkWindow], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(BenchmarkWindow)])
        writer.writeheader()
        for window in windows:
            writer.writerow(asdict(window))
    return path


def read_windows(path: str | Path) -> list[BenchmarkWindow]:
    """Windows written by :func:`write_windows` (raises ValueError naming the file)."""
    path = Path(path)
    expected = [f.name for f in fields(BenchmarkWindow)]
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != expected:
            raise ValueError(f"{path}: expected the columns {', '.join(expected)}, got {reader.fieldnames}")
        return [
            BenchmarkWindow(r["task"], r["dataset"], int(r["row"]), int(r["start"]), int(r["end"]),
                            float(r["sampling_rate"]), r["label"], float(r["onset"]))
            for r in reader
        ]


# --- scoring ---------------------------------------------------------------------------------


def _context_stream(stream: obspy.Stream, start: int, end: int, context: int) -> obspy.Stream:
    """The samples around ``[start, end)`` widened to ``context`` samples within the record."""
    n = min(tr.stats.npts for tr in stream)
    extra = max(0, context - (end - start))
    lo = max(0, start - extra // 2)
    hi = min(n, lo + max(context, end - start))
    lo = max(0, hi - max(context, end - start))
    out = obspy.Stream()
    for trace in stream:
        piece = trace.copy()
        piece.data = trace.data[lo:hi].copy()
        piece.stats.starttime = trace.stats.starttime + lo * trace.stats.delta
        out.append(piece)
    return out


def _window_curves(annotations: obspy.Stream, t0, t1) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per phase: (times, values) of the annotation inside [t0, t1]."""
    curves = {}
    for trace in annotations:
        phase = trace.stats.channel.rsplit("_", 1)[-1]
        if phase not in PHASES:
            continue
        seconds = float(trace.stats.starttime - t0) + trace.times()
        inside = (seconds >= 0) & (seconds <= float(t1 - t0))
        if inside.any():
            curves[phase] = (seconds[inside], np.asarray(trace.data[inside], dtype=np.float64))
    return curves


def score_window(picker, trace_stream: obspy.Stream, window: BenchmarkWindow,
                 settings: BenchmarkSettings) -> dict:
    """Detection score, P / S scores and the predicted onset of one window for one picker."""
    rate = window.sampling_rate
    context = int(round(settings.context_s * rate))
    stream = _context_stream(trace_stream, window.start, window.end, context)
    start_time = trace_stream[0].stats.starttime
    t0 = start_time + window.start / rate
    t1 = start_time + (window.end - 1) / rate
    record = {"detection_score": float("nan"), "P_score": float("nan"), "S_score": float("nan"),
              "onset_residual": float("nan")}
    annotations = picker.annotate(stream)
    curves = _window_curves(annotations, t0, t1)
    if not curves:
        return record  # the picker could not annotate this context (too short for it)
    record["detection_score"] = max(float(values.max()) for _, values in curves.values())
    for phase, (_, values) in curves.items():
        record[f"{phase}_score"] = float(values.max())
    if window.task == "phase" and window.label in curves:
        seconds, values = curves[window.label]
        trigger = getattr(getattr(picker, "config", None), "trigger_on", None)
        if trigger is not None:  # STA/LTA: first trigger crossing, as its picks do
            above = np.flatnonzero(values >= trigger)
            predicted = seconds[above[0]] if above.size else float("nan")
        else:
            predicted = seconds[int(np.argmax(values))]
        onset_seconds = (window.onset - window.start) / rate
        record["onset_residual"] = float(predicted - onset_seconds)
    return record


def run_benchmark(picker, dataset: LabelledDataset, windows: list[BenchmarkWindow],
                  settings: BenchmarkSettings, progress: bool = True) -> list[dict]:
    """Score every window of ``dataset`` with ``picker``; a failing window is recorded."""
    import logging

    from tqdm import tqdm

    # SeisBench warns once per window when a record is shorter than a teacher's input; the
    # summary counts those windows as "not scored" instead.
    seisbench_logger = logging.getLogger("seisbench")
    level = seisbench_logger.level
    seisbench_logger.setLevel(logging.ERROR)
    try:
        return _run_benchmark(picker, dataset, windows, settings, progress, tqdm)
    finally:
        seisbench_logger.setLevel(level)


def _run_benchmark(picker, dataset, windows, settings, progress, tqdm) -> list[dict]:
    records = []
    cache: dict[int, obspy.Stream] = {}
    mine = [w for w in windows if w.dataset == dataset.name]
    for window in tqdm(mine, desc=f"benchmark {picker.name} on {dataset.name}", unit="window",
                       disable=not progress):
        if window.row not in cache:
            cache = {window.row: dataset.trace(window.row).stream}
        try:
            scores = score_window(picker, cache[window.row], window, settings)
            error = ""
        except Exception as exc:  # one bad window never takes the benchmark down
            scores = {"detection_score": float("nan"), "P_score": float("nan"),
                      "S_score": float("nan"), "onset_residual": float("nan")}
            error = f"{type(exc).__name__}: {exc}"
        records.append({"picker": picker.name, **asdict(window), **scores, "error": error})
    return records


def summarise_benchmark(records: list[dict], settings: BenchmarkSettings,
                        picks_s: bool = True) -> dict:
    """Task 1 ROC AUC, task 2 MCC and task 3 residual statistics of one picker on one dataset.

    ``picks_s=False`` (STA/LTA) reports task 2 and S onsets as not applicable.
    """
    detection = [r for r in records if r["task"] == "detection"]
    scored = [r for r in detection if not math.isnan(r["detection_score"])]
    labels = [r["label"] == "earthquake" for r in scored]
    summary = {
        "task1_windows": len(detection),
        "task1_scored": len(scored),
        "task1_noise": int(sum(not label for label in labels)),
        "task1_auc": roc_auc([r["detection_score"] for r in scored], labels) if scored else float("nan"),
    }
    phase = [r for r in records if r["task"] == "phase"]
    decided = [r for r in phase if not (math.isnan(r["P_score"]) or math.isnan(r["S_score"]))]
    summary["task2_windows"] = len(phase)
    summary["task2_scored"] = len(decided) if picks_s else 0
    truth = [r["label"] == "P" for r in decided]
    both_phases = 0 < sum(truth) < len(truth)  # MCC is undefined with one class only
    summary["task2_mcc"] = (
        matthews_corrcoef(truth, [r["P_score"] >= r["S_score"] for r in decided])
        if picks_s and both_phases else float("nan")
    )
    for ph in PHASES:
        mine = [r for r in phase if r["label"] == ph]
        residuals = [r["onset_residual"] for r in mine if not math.isnan(r["onset_residual"])]
        applicable = picks_s or ph == "P"
        stats = residual_summary(residuals, settings.outlier_threshold) if applicable else {}
        summary[f"task3_{ph}_windows"] = len(mine)
        summary[f"task3_{ph}_scored"] = len(residuals) if applicable else 0
        for key in ("rmse", "mae", "mean", "std", "outlier_fraction"):
            summary[f"task3_{ph}_{key}"] = stats.get(key, float("nan"))
    summary["errors"] = sum(bool(r["error"]) for r in records)
    return summary


def dataset_rng(seed: int, dataset: LabelledDataset) -> np.random.Generator:
    """The window generator of one dataset: the seed and the folder name, so a dataset gets the
    same windows whatever else is evaluated with it (and its ``--gain`` copies get the same)."""
    return np.random.default_rng([seed, zlib.crc32(dataset.path.name.encode())])


def benchmark_pickers(pickers, datasets: list[LabelledDataset], settings: BenchmarkSettings,
                      windows_path: str | Path | None = None, reuse_windows: bool = False,
                      progress: bool = True) -> tuple[list[dict], list[dict], list[BenchmarkWindow]]:
    """Tasks 1-3 for every picker on every dataset: (summaries, per-window records, windows).

    Windows are drawn once per dataset from ``settings.seed`` (the same windows for every
    picker). With ``reuse_windows`` and an existing ``windows_path`` they are read from it.
    """
    if reuse_windows and windows_path is not None and Path(windows_path).is_file():
        windows = read_windows(windows_path)
    else:
        windows = []
        for dataset in datasets:
            windows.extend(generate_windows(dataset, settings, dataset_rng(settings.seed, dataset))[0])
        if windows_path is not None:
            write_windows(windows, windows_path)
    summaries, records = [], []
    for dataset in datasets:
        for picker in pickers:
            mine = run_benchmark(picker, dataset, windows, settings, progress)
            records.extend(mine)
            picks_s = getattr(getattr(picker, "config", None), "trigger_on", None) is None
            summaries.append({"dataset": dataset.name, "picker": picker.name, "picks_s": picks_s,
                              **summarise_benchmark(mine, settings, picks_s)})
    return summaries, records, windows
