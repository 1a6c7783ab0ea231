"""The figures of evaluations and studies: residual histograms, precision-recall curves,
example traces with every picker's picks, accuracy against size, F1 bars."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

PICKER_COLOURS = ["tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:olive", "tab:cyan",
                  "tab:pink", "0.35", "gold", "navy"]
PHASE_COLOURS = {"P": "tab:blue", "S": "tab:red"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --- figures ------------------------------------------------------------------------------------


def plot_residual_histograms(runs, references_by_dataset: dict, dataset: str, tolerance: float,
                             path: str | Path, bins: int = 41) -> Path:
    """Histograms of pick residuals (predicted - analyst) per picker (rows) and phase (columns)."""
    from xiaonet.scoring.matching import score_picks

    plt = _plt()
    runs = [r for r in runs if r.dataset == dataset]
    fig, axes = plt.subplots(max(len(runs), 1), 2, figsize=(9, 1.9 * max(len(runs), 1) + 0.9),
                             sharex=True, squeeze=False)
    edges = np.linspace(-tolerance, tolerance, bins)
    for i, run in enumerate(runs):
        scores = score_picks(run.all_picks(), references_by_dataset[dataset], tolerance)
        for j, phase in enumerate("PS"):
            ax = axes[i, j]
            residuals = scores[phase].residuals
            if residuals.size:
                ax.hist(residuals, bins=edges, color=PHASE_COLOURS[phase], alpha=0.8)
                ax.text(0.02, 0.95, f"n={residuals.size}\nMAE {np.abs(residuals).mean():.3f} s",
                        transform=ax.transAxes, va="top", fontsize=8)
            else:
                ax.text(0.5, 0.5, "no matched picks", transform=ax.transAxes, ha="center", va="center")
            ax.axvline(0, color="k", lw=0.6)
            if j == 0:
                ax.set_ylabel(run.picker, rotation=0, ha="right", fontsize=9)
            if i == 0:
                ax.set_title(f"{phase} residuals")
    for ax in axes[-1]:
        ax.set_xlabel("predicted - analyst (s)")
    fig.suptitle(f"Pick residuals on {dataset} (hits within {tolerance:g} s)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_precision_recall(sweeps: list[dict], rows: list[dict], dataset: str, path: str | Path) -> Path:
    """Precision-recall curves per phase, one line per picker; best-F1 points marked."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), squeeze=False)
    pickers = list(dict.fromkeys(s["picker"] for s in sweeps if s["dataset"] == dataset))
    for j, phase in enumerate("PS"):
        ax = axes[0, j]
        for k, picker in enumerate(pickers):
            points = sorted((s for s in sweeps if s["dataset"] == dataset and s["picker"] == picker
                             and s["phase"] == phase and s["tp"] + s["fp"] > 0),
                            key=lambda s: s["threshold"])
            if not points:
                continue
            colour = PICKER_COLOURS[k % len(PICKER_COLOURS)]
            best = max(points, key=lambda p: p["f1"])
            ax.plot([p["recall"] for p in points], [p["precision"] for p in points], "-", color=colour,
                    label=f"{picker} (best F1 {best['f1']:.2f} at {best['threshold']:g})", lw=1.3)
            ax.plot(best["recall"], best["precision"], "o", color=colour, ms=6)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"{phase} picks (threshold sweep; dot: best F1)", fontsize=9)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(f"Precision-recall on {dataset}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_gallery(traces, runs, dataset: str, path: str | Path, n_examples: int = 4,
                 rng: np.random.Generator | None = None, margin_s: float = 8.0,
                 max_view_s: float = 120.0) -> Path:
    """Example traces (vertical component) with reference picks and every picker's picks.

    The view spans the reference picks with ``margin_s`` on each side; on a long continuous
    record, whose references span more than ``max_view_s``, it is one randomly chosen
    reference P with its surroundings instead (a whole hour of picks is unreadable). Picks
    outside the view are counted next to the picker's name.
    """
    plt = _plt()
    rng = rng or np.random.default_rng(0)
    runs = [r for r in runs if r.dataset == dataset]
    with_picks = [t for t in traces if t.references] or list(traces)
    chosen = sorted(rng.choice(len(with_picks), size=min(n_examples, len(with_picks)), replace=False)) \
        if with_picks else []
    fig, axes = plt.subplots(max(len(chosen), 1), 1, figsize=(11, 2.5 * max(len(chosen), 1) + 0.8),
                             squeeze=False)
    for ax, index in zip(axes[:, 0], chosen):
        trace = with_picks[index]
        verticals = trace.stream.select(component="Z")
        vertical = verticals[0] if len(verticals) else trace.stream[0]
        start = vertical.stats.starttime
        times = vertical.times()
        if trace.references:
            ref_times = [float(r.time) - float(start) for r in trace.references]
            lo, hi = max(0.0, min(ref_times) - margin_s), min(times[-1], max(ref_times) + margin_s)
            if hi - lo > max_view_s:  # a long record: zoom on one reference P
                p_times = [float(r.time) - float(start) for r in trace.references if r.phase == "P"] or ref_times
                centre = p_times[int(rng.integers(len(p_times)))]
                lo, hi = max(0.0, centre - max_view_s / 4), min(times[-1], centre + 3 * max_view_s / 4)
        else:
            lo, hi = 0.0, times[-1]
        inside = (times >= lo) & (times <= hi)
        data = vertical.data[inside] - np.mean(vertical.data[inside])
        peak = np.abs(data).max() or 1.0
        ax.plot(times[inside], data / peak, "k", lw=0.5)
        for ref in trace.references:
            ax.axvline(float(ref.time) - float(start), color=PHASE_COLOURS[ref.phase], lw=2.5, alpha=0.45)
        for k, run in enumerate(runs):
            colour = PICKER_COLOURS[k % len(PICKER_COLOURS)]
            y = -1.0 - 0.4 * (k + 1)
            outside = 0
            for pick in run.picks.get(trace.key, []):
                t = float(pick.peak_time) - float(start)
                if not lo <= t <= hi:
                    outside += 1
                    continue
                ax.plot(t, y, "v" if pick.phase == "P" else "s", color=colour, ms=7, mec="k", mew=0.5)
            name = run.picker + (f" (+{outside} outside)" if outside else "")
            ax.text(-0.005, y, name, transform=ax.get_yaxis_transform(), ha="right", va="center",
                    fontsize=7, color=colour)
        ax.set_ylim(-1.0 - 0.4 * (max(len(runs), 1) + 1), 1.1)
        ax.set_yticks([])
        ax.set_xlim(lo, hi)
        ax.set_title(f"{trace.key}  {vertical.id}  ({trace.category})", fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("seconds from record start")
    fig.suptitle(
        f"Examples from {dataset}: vertical component; reference P (blue) / S (red) as bands; "
        "picks: triangle = P, square = S",
        fontsize=9,
    )
    fig.tight_layout()
    fig.subplots_adjust(left=0.16)
    return _save(fig, path)


def plot_accuracy_vs_size(points: list[dict], path: str | Path, title: str) -> Path:
    """F1 against parameters and against MACs per 30 s (log x); points: picker, params, macs, P/S F1."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), squeeze=False)
    for ax, key, label in ((axes[0, 0], "params", "parameters"), (axes[0, 1], "macs", "MACs per 30 s window")):
        for phase, marker in (("P", "o"), ("S", "s")):
            pts = [p for p in points if p.get(key) and not math.isnan(p[key])
                   and not math.isnan(p.get(f"{phase}_f1", float("nan")))]
            ax.plot([p[key] for p in pts], [p[f"{phase}_f1"] for p in pts], marker, color=PHASE_COLOURS[phase],
                    label=f"{phase} F1", ls="none")
            for p in pts:
                ax.annotate(p["picker"], (p[key], p[f"{phase}_f1"]), textcoords="offset points",
                            xytext=(4, 2), fontsize=7)
        baselines = [p for p in points if p.get(key) == 0]
        for p in baselines:  # STA/LTA: no parameters, a horizontal reference line
            if not math.isnan(p.get("P_f1", float("nan"))):
                ax.axhline(p["P_f1"], color=PHASE_COLOURS["P"], ls=":", lw=1)
                ax.text(0.01, p["P_f1"], f" {p['picker']} P", transform=ax.get_yaxis_transform(),
                        fontsize=7, va="bottom", color=PHASE_COLOURS["P"])
        if any(p.get(key) and not math.isnan(p[key]) for p in points):
            ax.set_xscale("log")
        else:
            ax.text(0.5, 0.5, "no model measured", transform=ax.transAxes, ha="center")
        ax.set_xlabel(label)
        ax.set_ylabel("F1")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_residual_comparison(residuals: dict[str, dict[str, np.ndarray]], path: str | Path, title: str,
                             tolerance: float) -> Path:
    """Overlaid residual distributions per phase for a few pickers (e.g. distilled vs labels only)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), squeeze=False)
    edges = np.linspace(-tolerance, tolerance, 41)
    for j, phase in enumerate("PS"):
        ax = axes[0, j]
        for k, (picker, by_phase) in enumerate(residuals.items()):
            r = by_phase.get(phase, np.zeros(0))
            if r.size:
                ax.hist(r, bins=edges, histtype="step", lw=1.5, color=PICKER_COLOURS[k % len(PICKER_COLOURS)],
                        label=f"{picker} (n={r.size}, MAE {np.abs(r).mean():.3f} s)")
        ax.axvline(0, color="k", lw=0.6)
        ax.set_title(f"{phase} residuals")
        ax.set_xlabel("predicted - analyst (s)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path) -> Path:
    plt = _plt()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_f1_bars(bars: list[dict], path: str | Path, title: str) -> Path:
    """P and S F1 side by side per picker (e.g. one student at several window lengths)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(bars) + 2), 3.8))
    x = np.arange(len(bars))
    for offset, phase in ((-0.2, "P"), (0.2, "S")):
        values = [b.get(f"{phase}_f1", float("nan")) for b in bars]
        ax.bar(x + offset, [0 if math.isnan(v) else v for v in values], 0.38, color=PHASE_COLOURS[phase],
               label=f"{phase} F1")
        for xi, v in zip(x + offset, values):
            ax.text(xi, (0 if math.isnan(v) else v) + 0.01, "n/a" if math.isnan(v) else f"{v:.2f}",
                    ha="center", fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels([b["picker"] for b in bars], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("F1")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_recall_against_snr(rows: list[dict], path: str | Path, title: str) -> Path:
    """Recall (solid, with its interval shaded) and precision (dashed) against SNR, per phase
    (columns) and picker (colours): the sensitivity figure."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), squeeze=False, sharey=True)
    pickers = list(dict.fromkeys(r["picker"] for r in rows))
    for j, phase in enumerate("PS"):
        ax = axes[0, j]
        for k, picker in enumerate(pickers):
            points = sorted((r for r in rows if r["picker"] == picker and r["phase"] == phase and r["events"]),
                            key=lambda r: r["snr_db"])
            if not points or (phase == "S" and picker.startswith("stalta")):
                continue
            colour = PICKER_COLOURS[k % len(PICKER_COLOURS)]
            x = [r["snr_db"] for r in points]
            ax.plot(x, [r["recall"] for r in points], "o-", color=colour, lw=1.5, label=f"{picker} recall")
            ax.fill_between(x, [r["recall_low"] for r in points], [r["recall_high"] for r in points],
                            color=colour, alpha=0.15, lw=0)
            ax.plot(x, [r["precision"] for r in points], "--", color=colour, lw=1.0, label=f"{picker} precision")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("SNR of the added real noise (dB)")
        ax.set_title(f"{phase} picks", fontsize=9)
        ax.grid(alpha=0.3)
        if j == 0:
            ax.set_ylabel("recall (solid, 90% interval) / precision (dashed)")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
