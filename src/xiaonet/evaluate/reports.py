"""What an evaluation writes out: markdown / CSV / JSON tables, and its output folder with
the figures (drawn by :mod:`xiaonet.evaluate.figures`).

Every table cell comes from a measured row; a figure title names the data it was measured
on. Missing values print as ``n/a`` with the reason in a note column, never as a number.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from xiaonet.evaluate.figures import plot_gallery, plot_precision_recall, plot_residual_histograms

# Picker colours avoid the phase colours (blue P, red S) so a pick's phase is its marker shape.
def format_value(value, digits: int = 3) -> str:
    """Numbers to text for tables: NaN and None become ``n/a``."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "n/a"
        if value != 0 and (abs(value) < 10 ** -digits or abs(value) >= 1e6):
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: Sequence[dict], columns: Sequence[tuple[str, str]], digits: int = 3) -> str:
    """A GitHub markdown table of ``rows``; ``columns`` are (key, header) pairs."""
    lines = [
        "| " + " | ".join(header for _, header in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        cells = [format_value(row.get(key), digits).replace("|", "\\|") for key, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows: Sequence[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(data, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(data), indent=2) + "\n")
    return path


# --- tables -------------------------------------------------------------------------------------

DATASET_COLUMNS = [
    ("dataset", "dataset"), ("evaluated_traces", "traces"), ("P_picks", "P picks"),
    ("S_picks", "S picks"), ("sampling_rate", "Hz"), ("unit", "stored unit"),
    ("median_peak", "median peak |amplitude|"), ("amplitudes", "amplitudes"), ("notes", "notes"),
]
METRIC_COLUMNS = [
    ("dataset", "dataset"), ("picker", "picker"), ("phase", "phase"), ("threshold", "threshold"),
    ("precision", "precision"), ("recall", "recall"), ("f1", "F1"), ("tp", "TP"), ("fp", "FP"),
    ("fn", "FN"), ("residual_mean", "mean res. (s)"), ("residual_std", "std (s)"),
    ("residual_mae", "MAE (s)"), ("residual_rmse", "RMSE (s)"),
    ("residual_outlier_fraction", "outliers"), ("best_threshold", "best thr."),
    ("best_f1", "best F1"), ("note", "note"),
]
BENCHMARK_COLUMNS = [
    ("dataset", "dataset"), ("picker", "picker"), ("task1_auc", "T1 ROC AUC"),
    ("task1_label", "T1 windows (scored/noise)"), ("task2_mcc", "T2 MCC"),
    ("task2_scored", "T2 windows"), ("task3_P_rmse", "T3 P RMSE (s)"),
    ("task3_P_mae", "T3 P MAE (s)"), ("task3_S_rmse", "T3 S RMSE (s)"),
    ("task3_S_mae", "T3 S MAE (s)"), ("note", "note"),
]


def metric_table_rows(rows: Iterable[dict]) -> list[dict]:
    """Metric rows for display: a phase the picker cannot pick shows n/a, not zeros."""
    out = []
    for row in rows:
        row = dict(row)
        if "P only" in row.get("note", "") and row.get("phase") == "S":
            for key in ("precision", "recall", "f1", "tp", "fp", "best_threshold", "best_f1"):
                row[key] = None
        elif row.get("n_reference") == 0:  # no analyst picks: only the false positives mean something
            for key in ("precision", "recall", "f1", "best_threshold", "best_f1"):
                row[key] = None
        out.append(row)
    return out


def benchmark_table_rows(summaries: Iterable[dict]) -> list[dict]:
    out = []
    for s in summaries:
        row = dict(s)
        row["task1_label"] = f"{s['task1_scored']}/{s['task1_noise']}"
        notes = []
        if s["task1_windows"] == 0:
            notes.append("T1: records shorter than 30 s, no window")
        elif s["task1_noise"] == 0:
            notes.append("T1: no noise window fits before the P (AUC undefined)")
        if s["task1_scored"] < s["task1_windows"]:
            notes.append(f"{s['task1_windows'] - s['task1_scored']} T1 window(s) not scored "
                         "(record shorter than the picker's input)")
        t3_windows = s["task3_P_windows"] + s["task3_S_windows"]
        t3_scored = s["task3_P_scored"] + s["task3_S_scored"]
        if s.get("picks_s", True) and t3_scored < t3_windows:
            notes.append(f"{t3_windows - t3_scored} T2/T3 window(s) not scored (record shorter than "
                         "the picker's input)")
        if s.get("picks_s", True) and s["task2_scored"] and math.isnan(s["task2_mcc"]):
            notes.append("T2: one phase only (MCC undefined)")
        if not s.get("picks_s", True):
            notes.append("STA/LTA: no P-vs-S decision, no S onset")
        if s.get("errors"):
            notes.append(f"{s['errors']} window(s) failed")
        row["note"] = "; ".join(notes)
        out.append(row)
    return out


# --- one evaluation's output folder ----------------------------------------------------------


def summary_markdown(evaluation, benchmark_summaries: list[dict] | None = None,
                     figures: dict[str, list[Path]] | None = None, relative_to: Path | None = None) -> str:
    """The markdown summary of an evaluation: data, whole-trace metrics, benchmark, figures."""
    s = evaluation.settings
    parts = [
        "### Data",
        "",
        markdown_table(evaluation.datasets, DATASET_COLUMNS),
        "",
        f"### Whole-trace picking (hit: same phase within {s.tolerance:g} s of the reference pick; "
        f"outliers: |residual| > {s.outlier_threshold:g} s)",
        "",
        markdown_table(metric_table_rows(evaluation.rows), METRIC_COLUMNS),
        "",
        *(["Reference: the analyst picks, except for datasets marked *teacher consensus*: there the "
           "reference is the picks PhaseNet and EQTransformer (threshold 0.3) agree on within 0.3 s, and a "
           f"pick of one teacher alone is neither rewarded nor penalised ({sum(len(v) for v in evaluation.ignored.values())} "
           "such picks). Agreement with the consensus is not accuracy: the teachers score 1 there by "
           "construction.", ""] if getattr(evaluation, "ignored", None) else []),
        "`best thr.` / `best F1`: the threshold of the sweep "
        f"({min(s.thresholds):g}-{max(s.thresholds):g}) with the highest F1 on these same traces "
        "(an optimistic figure: it is tuned on the test data). For STA/LTA the sweep is over its "
        "pick confidence 1 - on/peak ratio, not a probability.",
    ]
    if evaluation.unavailable:
        parts += ["", "Not evaluated:", ""]
        parts += [f"- `{u['picker']}`: {u['reason']}" for u in evaluation.unavailable]
    if benchmark_summaries:
        parts += [
            "",
            "### SeisBench pick benchmark (Münchmeyer et al. 2022), tasks 1-3",
            "",
            markdown_table(benchmark_table_rows(benchmark_summaries), BENCHMARK_COLUMNS),
        ]
    if figures:
        parts += ["", "### Figures", ""]
        for dataset, paths in figures.items():
            for path in paths:
                shown = Path(path).relative_to(relative_to) if relative_to else Path(path)
                parts.append(f"![{Path(path).stem}]({shown.as_posix()})")
    return "\n".join(parts) + "\n"


def write_evaluation_outputs(evaluation, out: str | Path, benchmark_summaries: list[dict] | None = None,
                             benchmark_records: list[dict] | None = None, gallery_examples: int = 4,
                             seed: int = 0) -> Path:
    """Tables (markdown, CSV, JSON) and figures of an evaluation into ``out``; returns summary.md."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(evaluation.datasets, out / "datasets.csv")
    write_csv(evaluation.rows, out / "metrics.csv")
    write_csv(evaluation.sweeps, out / "sweep.csv")
    pick_rows = [
        {"picker": run.picker, "dataset": run.dataset, "trace": key, "phase": p.phase,
         "time": str(p.peak_time), "probability": p.peak_value}
        for run in evaluation.runs for key, picks in run.picks.items() for p in picks
    ]
    write_csv(pick_rows or [{"picker": "", "dataset": "", "trace": "", "phase": "", "time": "",
                             "probability": ""}], out / "picks.csv")
    if benchmark_summaries is not None:
        write_csv(benchmark_summaries, out / "benchmark.csv")
    if benchmark_records:
        write_csv(benchmark_records, out / "benchmark_windows_scored.csv")
    figures: dict[str, list[Path]] = {}
    rng = np.random.default_rng(seed)
    for description in evaluation.datasets:
        name = description["dataset"]
        safe = name.replace("/", "_")
        figures[name] = []
        if not any(run.dataset == name for run in evaluation.runs):
            continue
        figures[name].append(plot_residual_histograms(
            evaluation.runs, {name: evaluation.references(name)}, name, evaluation.settings.tolerance,
            out / "figures" / f"residuals_{safe}.png"))
        figures[name].append(plot_precision_recall(evaluation.sweeps, evaluation.rows, name,
                                                   out / "figures" / f"precision_recall_{safe}.png"))
        if gallery_examples:
            figures[name].append(plot_gallery(evaluation.traces[name], evaluation.runs, name,
                                              out / "figures" / f"gallery_{safe}.png", gallery_examples, rng))
    failures = {run.picker + " on " + run.dataset: run.failures for run in evaluation.runs if run.failures}
    write_json({
        "settings": {"tolerance": evaluation.settings.tolerance,
                     "thresholds": list(evaluation.settings.thresholds),
                     "outlier_threshold": evaluation.settings.outlier_threshold},
        "datasets": evaluation.datasets,
        "metrics": evaluation.rows,
        "sweep": evaluation.sweeps,
        "benchmark": benchmark_summaries or [],
        "unavailable": evaluation.unavailable,
        "failures": failures,
        "notes": {run.picker + " on " + run.dataset: dict(run.notes) for run in evaluation.runs if run.notes},
    }, out / "results.json")
    text = summary_markdown(evaluation, benchmark_summaries, figures, relative_to=out)
    (out / "summary.md").write_text(text)
    return out / "summary.md"
