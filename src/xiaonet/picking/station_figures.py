"""Figures a seismologist looks at: waveforms, probabilities and picks of one station."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import obspy

PHASE_COLOURS = {"P": "tab:blue", "S": "tab:red", "N": "0.6"}


def plot_station(
    stream: obspy.Stream,
    annotations: obspy.Stream,
    picks: list,
    path: str | Path,
    title: str = "",
) -> Path:
    """Components (top), probabilities or characteristic function (bottom), picks as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traces = sorted(stream, key=lambda tr: tr.stats.channel[-1])
    n_rows = len(traces) + 1
    fig, axes = plt.subplots(n_rows, 1, figsize=(11, 1.6 * n_rows + 0.6), sharex=True)
    axes = np.atleast_1d(axes)
    reference = min(tr.stats.starttime for tr in stream) if len(stream) else obspy.UTCDateTime(0)

    def seconds(trace: obspy.Trace) -> np.ndarray:
        return trace.times() + (trace.stats.starttime - reference)

    for ax, trace in zip(axes, traces):
        ax.plot(seconds(trace), trace.data, "k", lw=0.5)
        ax.set_ylabel(trace.stats.channel, rotation=0, ha="right")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    ax_prob = axes[-1]
    for trace in annotations:
        label = trace.stats.channel.split("_")[-1]
        if label == "N":
            continue
        ax_prob.plot(seconds(trace), trace.data, color=PHASE_COLOURS.get(label, "k"), lw=1, label=label)
    is_probability = all(tr.stats.channel != "StaLta_P" for tr in annotations)
    ax_prob.set_ylabel("probability" if is_probability else "STA/LTA", rotation=0, ha="right")
    if len(annotations):
        ax_prob.legend(loc="upper right", fontsize=8)
    for pick in picks:
        t = (pick.peak_time or pick.start_time) - reference
        for ax in axes:
            ax.axvline(t, color=PHASE_COLOURS.get(pick.phase, "k"), lw=1, ls="--")
    axes[0].set_title(title or f"{stream[0].id[:-1] if len(stream) else ''} from {reference}")
    axes[-1].set_xlabel(f"seconds after {reference}")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
