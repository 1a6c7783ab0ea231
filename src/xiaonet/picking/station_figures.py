"""Figures a seismologist looks at: waveforms, probabilities and picks of one station.

A short record (up to ``LONG_RECORD_S``) is drawn whole: components, probabilities (or the
STA/LTA function) and every pick as a line. A longer one cannot be drawn that way (an hour
has hundreds of picks and one large event sets the scale of every trace), so it gets an
overview (peak amplitude on a log scale, picks per minute, probabilities with each pick
as a dot) and one panel per event: picks closer than ``GROUP_GAP_S`` form an event, the
``N_EVENT_PANELS`` with the most probable picks are drawn in time order, each component
scaled to its own window so that the P and S of a small event show as clearly as those of
a large one. ``window`` (``xiaonet pick --plot-window START/END``) draws part of a record.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import obspy

PHASE_COLOURS = {"P": "tab:blue", "S": "tab:red", "N": "0.6"}
LONG_RECORD_S = 300.0
GROUP_GAP_S = 10.0
N_EVENT_PANELS = 8
PANEL_BEFORE_S, PANEL_AFTER_S, PANEL_MIN_S = 4.0, 8.0, 20.0


class PlotWindowError(ValueError):
    """A ``--plot-window`` that cannot be read (the message says what was expected)."""


def parse_plot_window(text: str) -> tuple[str, str]:
    """``START/END``: each seconds after the record's start (``600/900``) or a UTC time
    (``2024-02-03T05:20:00/2024-02-03T05:25:00``); resolved against a record by :func:`window_times`."""
    parts = text.split("/")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise PlotWindowError(f"--plot-window {text!r}: expected START/END (seconds after the record start, "
                              "or UTC times)")
    for part in parts:
        try:
            _as_time(part, obspy.UTCDateTime(0))
        except (ValueError, TypeError):
            raise PlotWindowError(f"--plot-window {text!r}: {part!r} is neither seconds nor a UTC time") from None
    return parts[0].strip(), parts[1].strip()


def _as_time(value: str, reference: obspy.UTCDateTime) -> obspy.UTCDateTime:
    try:
        return reference + float(value)
    except ValueError:
        return obspy.UTCDateTime(value)


def window_times(window: tuple[str, str], reference: obspy.UTCDateTime) -> tuple[obspy.UTCDateTime, obspy.UTCDateTime]:
    start, end = (_as_time(v, reference) for v in window)
    if end <= start:
        raise PlotWindowError(f"--plot-window {window[0]}/{window[1]}: the end is not after the start")
    return start, end


def pick_time(pick) -> obspy.UTCDateTime:
    return obspy.UTCDateTime(pick.peak_time or pick.start_time)


def pick_groups(picks: list, gap_s: float = GROUP_GAP_S) -> list[list]:
    """Picks in time order, split wherever two follow each other by more than ``gap_s``."""
    groups: list[list] = []
    for pick in sorted(picks, key=pick_time):
        if groups and pick_time(pick) - pick_time(groups[-1][-1]) <= gap_s:
            groups[-1].append(pick)
        else:
            groups.append([pick])
    return groups


def strongest_groups(groups: list[list], n: int = N_EVENT_PANELS, loudest: obspy.UTCDateTime | None = None
                     ) -> list[list]:
    """The group nearest before ``loudest`` (the record's largest amplitude: its largest
    event) and those whose best P plus best S probability is highest (an event picked in
    both phases before a lone pick), ``n`` in all, in time order."""
    def score(group):
        return sum(max((p.peak_value or 0.0 for p in group if p.phase == phase), default=0.0) for phase in "PS")

    chosen = []
    if loudest is not None and groups:
        before = [g for g in groups if pick_time(g[0]) <= loudest + GROUP_GAP_S] or groups
        chosen.append(min(before, key=lambda g: abs(loudest - pick_time(g[0]))))
    chosen += [g for g in sorted(groups, key=score, reverse=True) if g not in chosen]
    return sorted(chosen[:n], key=lambda g: pick_time(g[0]))


def plot_station(stream: obspy.Stream, annotations: obspy.Stream, picks: list, path: str | Path, title: str = "",
                 window: tuple[str, str] | None = None) -> Path:
    """One figure for a station: the whole record when short, else an overview and event panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = min(tr.stats.starttime for tr in stream) if len(stream) else obspy.UTCDateTime(0)
    title = title or f"{stream[0].id[:-1] if len(stream) else ''} from {reference}"
    if window is not None:
        start, end = window_times(window, reference)
        stream, annotations = stream.slice(start, end), annotations.slice(start, end)
        picks = [p for p in picks if start <= pick_time(p) <= end]
        if not len(stream):
            raise PlotWindowError(f"--plot-window {window[0]}/{window[1]}: no data of {title} in it")
        reference = start
    end = max(tr.stats.endtime for tr in stream) if len(stream) else reference
    traces = sorted(stream, key=lambda tr: tr.stats.channel[-1])
    if end - reference <= LONG_RECORD_S:
        fig = _whole_record(plt, traces, annotations, picks, reference, title)
    else:
        fig = _long_record(plt, traces, annotations, picks, reference, end, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _seconds(trace: obspy.Trace, reference) -> np.ndarray:
    return trace.times() + (trace.stats.starttime - reference)


def _probability_label(annotations) -> str:
    return "probability" if all(tr.stats.channel != "StaLta_P" for tr in annotations) else "STA/LTA"


def _phase_traces(annotations):
    return [(tr.stats.channel.split("_")[-1], tr) for tr in annotations if tr.stats.channel.split("_")[-1] != "N"]


def _whole_record(plt, traces, annotations, picks, reference, title):
    """Components (top), probabilities or characteristic function (bottom), picks as lines."""
    n_rows = len(traces) + 1
    fig, axes = plt.subplots(n_rows, 1, figsize=(11, 1.6 * n_rows + 0.6), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, trace in zip(axes, traces):
        ax.plot(_seconds(trace, reference), trace.data, "k", lw=0.5)
        ax.set_ylabel(trace.stats.channel, rotation=0, ha="right")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    ax_prob = axes[-1]
    for label, trace in _phase_traces(annotations):
        ax_prob.plot(_seconds(trace, reference), trace.data, color=PHASE_COLOURS.get(label, "k"), lw=1, label=label)
    ax_prob.set_ylabel(_probability_label(annotations), rotation=0, ha="right")
    if len(annotations):
        ax_prob.legend(loc="upper right", fontsize=8)
    for pick in picks:
        for ax in axes:
            ax.axvline(pick_time(pick) - reference, color=PHASE_COLOURS.get(pick.phase, "k"), lw=1, ls="--")
    axes[0].set_title(title)
    axes[-1].set_xlabel(f"seconds after {reference}")
    fig.tight_layout()
    return fig


def _binned_peak(times: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The largest value in each bin (NaN where a bin has no sample)."""
    index = np.digitize(times, edges) - 1
    keep = (index >= 0) & (index < len(edges) - 1)
    peak = np.full(len(edges) - 1, -np.inf)
    np.maximum.at(peak, index[keep], values[keep])
    return np.where(np.isfinite(peak), peak, np.nan)


def _loudest(traces) -> obspy.UTCDateTime | None:
    peaks = [(float(np.max(np.abs(tr.data - np.median(tr.data)))), tr) for tr in traces if tr.stats.npts]
    if not peaks:
        return None
    _, trace = max(peaks, key=lambda item: item[0])
    return trace.stats.starttime + int(np.argmax(np.abs(trace.data - np.median(trace.data)))) * trace.stats.delta


def _long_record(plt, traces, annotations, picks, reference, end, title):
    groups = strongest_groups(pick_groups(picks), loudest=_loudest(traces))
    duration = float(end - reference)
    unit, scale = ("minutes", 60.0) if duration > 1200 else ("seconds", 1.0)
    n_panel_rows = (len(groups) + 1) // 2
    fig = plt.figure(figsize=(12, 6.0 + 2.7 * n_panel_rows))
    outer = fig.add_gridspec(2, 1, height_ratios=[5.0, 2.7 * n_panel_rows], hspace=0.12)
    top = outer[0].subgridspec(3, 1, height_ratios=[1.3, 0.8, 1.0], hspace=0.1)
    ax_amp = fig.add_subplot(top[0])
    ax_density = fig.add_subplot(top[1], sharex=ax_amp)
    ax_prob = fig.add_subplot(top[2], sharex=ax_amp)
    edges = np.linspace(0.0, duration, 601)
    for trace in traces:  # peak absolute amplitude per bin, log scale: small events stay visible
        data = np.abs(trace.data - np.median(trace.data))
        ax_amp.semilogy(edges[:-1] / scale, _binned_peak(_seconds(trace, reference), data, edges), lw=0.7,
                        label=trace.stats.channel)
    ax_amp.set_ylabel("peak |amplitude|")
    ax_amp.legend(loc="upper right", fontsize=7, ncol=len(traces))
    fig.suptitle(f"{title}: {len(picks)} picks in {duration / 60:.0f} min; the numbered pick groups "
                 f"(the largest amplitude and the most probable P and S) are drawn below", fontsize=10)
    minute_edges = np.arange(0.0, duration + 60.0, 60.0)
    for phase in "PS":
        times = np.array([pick_time(p) - reference for p in picks if p.phase == phase], float)
        counts, _ = np.histogram(times, minute_edges)
        ax_density.step(minute_edges[:-1] / scale, counts, where="post", color=PHASE_COLOURS[phase],
                        label=f"{phase} ({len(times)})")
    ax_density.set_ylabel("picks / min")
    ax_density.legend(loc="upper right", fontsize=7, ncol=2)
    for label, trace in _phase_traces(annotations):
        ax_prob.plot(edges[:-1] / scale, _binned_peak(_seconds(trace, reference), trace.data, edges),
                     color=PHASE_COLOURS.get(label, "k"), lw=0.6, alpha=0.6)
    for phase in "PS":
        mine = [p for p in picks if p.phase == phase]
        ax_prob.scatter([(pick_time(p) - reference) / scale for p in mine], [p.peak_value or 0.0 for p in mine],
                        s=7, color=PHASE_COLOURS[phase], zorder=3, label=f"{phase} pick")
    ax_prob.set_ylabel(_probability_label(annotations))
    ax_prob.set_xlabel(f"{unit} after {reference.strftime('%Y-%m-%d %H:%M:%S')}")
    ax_prob.legend(loc="upper right", fontsize=7, ncol=2)
    for ax in (ax_amp, ax_density):
        ax.tick_params(labelbottom=False)
    for number, group in enumerate(groups, 1):
        at = (pick_time(group[0]) - reference) / scale
        for ax in (ax_amp, ax_density, ax_prob):
            ax.axvspan(at - 0.002 * duration / scale, at + 0.002 * duration / scale, color="orange", alpha=0.4, lw=0)
        ax_amp.annotate(str(number), (at, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                        fontsize=8, color="darkorange")
    panels = outer[1].subgridspec(n_panel_rows, 2, hspace=0.45, wspace=0.12)
    for number, group in enumerate(groups, 1):
        cell = panels[(number - 1) // 2, (number - 1) % 2].subgridspec(2, 1, height_ratios=[2.2, 1.0], hspace=0.05)
        _event_panel(fig.add_subplot(cell[0]), fig.add_subplot(cell[1]), number, group, traces, annotations, picks)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.955, bottom=0.04)
    return fig


def _event_panel(ax, ax_prob, number, group, traces, annotations, picks):
    """One event: each component demeaned and scaled to its own peak in the window, offset
    from the next; the picks in the window as lines; the probabilities below."""
    first, last = pick_time(group[0]), pick_time(group[-1])
    start, stop = first - PANEL_BEFORE_S, last + PANEL_AFTER_S
    if stop - start < PANEL_MIN_S:
        stop = start + PANEL_MIN_S
    for offset, trace in enumerate(traces):
        piece = trace.slice(start, stop)
        if not piece.stats.npts:
            continue
        data = piece.data - np.mean(piece.data)
        peak = float(np.max(np.abs(data))) or 1.0
        ax.plot(_seconds(piece, start), data / peak / 2.2 - offset, "k", lw=0.5)
    ax.set_yticks([-i for i in range(len(traces))], [tr.stats.channel for tr in traces], fontsize=7)
    for label, trace in _phase_traces(annotations):
        piece = trace.slice(start, stop)
        ax_prob.plot(_seconds(piece, start), piece.data, color=PHASE_COLOURS.get(label, "k"), lw=0.8)
    ax_prob.set_ylim(0, 1.05 if _probability_label(annotations) == "probability" else None)
    shown = [p for p in picks if start <= pick_time(p) <= stop]
    for pick in shown:
        for axis in (ax, ax_prob):
            axis.axvline(pick_time(pick) - start, color=PHASE_COLOURS.get(pick.phase, "k"), lw=0.9, ls="--")
    best = ", ".join(f"{phase} {max(p.peak_value or 0.0 for p in group if p.phase == phase):.2f}"
                     for phase in "PS" if any(p.phase == phase for p in group))
    ax.set_title(f"{number}: {first.strftime('%H:%M:%S.%f')[:-5]} ({best})", fontsize=8, loc="left")
    ax.set_xlim(0, stop - start)
    ax_prob.set_xlim(0, stop - start)
    ax.tick_params(labelbottom=False, labelsize=7)
    ax_prob.tick_params(labelsize=7)
    ax_prob.set_xlabel(f"seconds after {start.strftime('%H:%M:%S')}", fontsize=7)
