"""Sliding windows over a record and stacking of the window predictions, in numpy only.

The same cutting and stacking as SeisBench's ``WaveformModel.annotate`` for array models
(``_cut_fragments_array`` + ``avg`` / ``max`` stacking): windows of ``in_samples`` every
``in_samples - overlap`` samples, one more window aligned to the end of the record, and the
mean (or maximum) of all windows covering a sample (samples blinded at window edges do not
count).
"""

from __future__ import annotations

import math

import numpy as np


def overlap_samples(overlap: float, in_samples: int) -> int:
    """Overlap in samples; values below 1 are a fraction of the window (SeisBench's rule)."""
    if overlap < 1:
        return int(overlap * in_samples)
    return int(overlap)


def window_offsets(n_samples: int, in_samples: int, overlap: int) -> np.ndarray:
    """Start sample of every window; empty when the record is shorter than one window.

    >>> window_offsets(10000, 3001, 750).tolist()
    [0, 2251, 4502, 6753, 6999]
    """
    step = in_samples - overlap
    if step <= 0:
        raise ValueError(f"overlap {overlap} must be smaller than the window {in_samples}")
    offsets = np.arange(0, n_samples - in_samples + 1, step)
    if offsets.size and offsets[-1] + in_samples < n_samples:
        offsets = np.concatenate([offsets, [n_samples - in_samples]])
    return offsets.astype(np.int64)


#: Where windows start. ``record``: every step from the record start (SeisBench's
#: ``annotate``; the teachers). ``absolute``: on a grid of the absolute sample index (a
#: hypothetical sample at UTC 0, every step samples), plus one window at the record start and
#: one aligned to its end, so the windows over a stretch of data, and so its picks, do not
#: depend on where the record (or the file, or the block after a gap) starts (the students).
WINDOW_GRIDS = ("record", "absolute")


#: Where a start between two grid samples goes: to the nearer one, and a start within this
#: fraction of a sample of the half-sample tie goes to the later one. Recorders stamp the
#: components of one instrument with microseconds of jitter (O2.WILZ: EHE at .005000, EHN and
#: EHZ at .004999, half a sample off the 100 Hz grid); rounding each start on its own at the
#: tie puts one component a sample out of step with the others, and whether it does changes
#: with the block or chunk a start was cut at. With the tie moved 1/100 sample away from the
#: half-sample, where such data sit, every component of every block lands on the same index.
TIE_MARGIN = 0.01


def fill_record_start(window: np.ndarray, missing: int) -> np.ndarray:
    """A copy of ``window`` (channels x samples) whose first ``missing`` samples lie before
    its record began, set to each channel's mean over the rest: demeaned, they are zero and
    meet the data without a step. Early-warning students with ``padded_start`` are trained on
    such windows and streamed with them, so a record's first samples are decided like all
    others, by a window ending ``lookahead_s`` after them.

    >>> fill_record_start(np.array([[9.0, 9.0, 1.0, 3.0]]), 2).tolist()
    [[2.0, 2.0, 1.0, 3.0]]
    """
    out = np.array(window, dtype=np.float32, copy=True)
    if missing >= out.shape[-1]:
        raise ValueError(f"a window of {out.shape[-1]} samples needs at least one of its record, "
                         f"not {missing} missing")
    if missing > 0:
        out[..., :missing] = out[..., missing:].mean(axis=-1, keepdims=True)
    return out


def absolute_index(start, sampling_rate: float) -> int:
    """Absolute sample index of a record's first sample (a hypothetical sample at UTC 0): the
    grid every picker path (offline, block-wise, archive chunks, streaming, torch, ONNX, C)
    places samples and windows on. ``start``: a UTC timestamp in seconds, or an ObsPy
    ``UTCDateTime`` (then computed exactly, from its integer nanoseconds).

    The nearest grid sample, a near-tie rounding up (:data:`TIE_MARGIN`); a record start that
    already carries its mean sub-sample offset (``grid time + offset``, every offset in
    ``[-0.5 - TIE_MARGIN, 0.5 - TIE_MARGIN)`` samples) gives back its grid sample.

    >>> absolute_index(1706937268.005, 100.0), absolute_index(1706937268.004999, 100.0)
    (170693726801, 170693726801)
    """
    ns = getattr(start, "ns", None)
    if ns is not None:
        from fractions import Fraction

        exact = Fraction(int(ns), 10**9) * Fraction(float(sampling_rate))
        return math.floor(exact + Fraction(1, 2) + Fraction(TIE_MARGIN).limit_denominator(1000))
    return math.floor(float(start) * float(sampling_rate) + 0.5 + TIE_MARGIN)


def grid_time(index: int, sampling_rate: float):
    """The ``UTCDateTime`` of absolute sample ``index``, exact to the nanosecond (a float
    timestamp is not: differences of grid times would not be whole samples)."""
    from fractions import Fraction

    import obspy

    return obspy.UTCDateTime(ns=round(Fraction(int(index)) * 10**9 / Fraction(float(sampling_rate))))


def grid_window_offsets(n_samples: int, in_samples: int, overlap: int, first_index: int | None = None) -> np.ndarray:
    """Window starts on the ``absolute`` grid; ``first_index`` is the absolute sample index of
    the record's first sample (:func:`absolute_index`); None gives the ``record`` grid.

    >>> grid_window_offsets(10000, 3001, 750, first_index=1000).tolist()
    [0, 1251, 3502, 5753, 6999]
    >>> grid_window_offsets(10000, 3001, 750, first_index=2251 * 7).tolist()  # on the grid
    [0, 2251, 4502, 6753, 6999]
    """
    if first_index is None:
        return window_offsets(n_samples, in_samples, overlap)
    step = in_samples - overlap
    if step <= 0:
        raise ValueError(f"overlap {overlap} must be smaller than the window {in_samples}")
    if n_samples < in_samples:
        return np.zeros(0, dtype=np.int64)
    phase = (-int(first_index)) % step
    grid = np.arange(phase, n_samples - in_samples + 1, step)
    offsets = grid if phase == 0 else np.concatenate([[0], grid])
    if offsets[-1] + in_samples < n_samples:
        offsets = np.concatenate([offsets, [n_samples - in_samples]])
    return offsets.astype(np.int64)


def synthetic_windows(n_samples, rng: np.random.Generator, components: int = 3) -> list[np.ndarray]:
    """Random-walk-plus-noise windows of the given lengths (amplitudes over 12 decades)."""
    windows = []
    for n in n_samples:
        scale = 10.0 ** rng.uniform(-9, 3)
        walk = np.cumsum(rng.standard_normal((1, components, n)), axis=-1) * 0.05
        windows.append(((walk + rng.standard_normal((1, components, n))) * scale).astype(np.float32))
    return windows



STACKING_METHODS = ("avg", "max")


class WindowStack:
    """Average (SeisBench's ``avg``) or maximum (``max``, EQTransformer's default) of window
    predictions over one record.

    ``add(offset, prediction)`` adds a (channels, in_samples) prediction starting at sample
    ``offset``; ``result()`` is the per-sample average or maximum, NaN where no window
    counted. ``blinding`` = (samples at the start, samples at the end) of each window that
    are ignored. Float32: at most a handful of windows cover a sample.
    """

    def __init__(self, n_channels: int, n_samples: int, blinding: tuple[int, int] = (0, 0),
                 method: str = "avg"):
        if method not in STACKING_METHODS:
            raise ValueError(f"stacking '{method}' is not supported; choose one of {STACKING_METHODS}")
        self.method = method
        fill = 0.0 if method == "avg" else -np.inf
        self.values = np.full((n_channels, n_samples), fill, dtype=np.float32)
        self.count = np.zeros(n_samples, dtype=np.uint8)
        self.blinding = (int(blinding[0]), int(blinding[1]))

    def add(self, offset: int, prediction: np.ndarray) -> None:
        length = prediction.shape[-1]
        first, last = self.blinding[0], length - self.blinding[1]
        if last <= first:
            return
        target = self.values[:, offset + first : offset + last]
        if self.method == "avg":
            target += prediction[:, first:last]
        else:
            np.maximum(target, prediction[:, first:last], out=target)
        self.count[offset + first : offset + last] += 1

    def result(self) -> np.ndarray:
        """The stacked curves, computed in place (the stack is spent afterwards)."""
        if self.method == "avg":
            np.divide(self.values, np.maximum(self.count, 1), out=self.values)
        uncovered = self.count == 0
        if uncovered.any():
            self.values[:, uncovered] = np.nan
        return self.values


def covered_span(values: np.ndarray) -> tuple[int, int]:
    """First and one-past-last index where ``values`` (channels, samples) is not NaN."""
    finite = np.flatnonzero(np.isfinite(values).any(axis=0))
    if finite.size == 0:
        return 0, 0
    return int(finite[0]), int(finite[-1]) + 1


def stream_to_grid_array(stream, component_order: str, sampling_rate: float):
    """One instrument's contiguous stream on the absolute sample grid, as ``(start_time, data (components, samples), trace_id)``.

    Returns None when no trace has a component of ``component_order``.
    """
    from xiaonet.data.streams import component_index

    index = component_index(component_order)
    traces = [tr for tr in stream if tr.stats.channel[-1:] in index and tr.stats.npts > 0]
    if not traces:
        return None
    # Each start on the absolute grid by the one rule of every picker path (exact, from the
    # nanoseconds), its sub-sample offset kept: the rows are placed by whole sample indices
    firsts = [absolute_index(tr.stats.starttime, sampling_rate) for tr in traces]
    offsets = [tr.stats.starttime - grid_time(i, sampling_rate) for tr, i in zip(traces, firsts)]
    first_index = min(firsts)
    n_samples = max(i + tr.stats.npts for i, tr in zip(firsts, traces)) - first_index
    # float32: every window is cast to float32 for the model anyway (as SeisBench does).
    data = np.zeros((len(component_order), n_samples), dtype=np.float32)
    for first, trace in zip(firsts, traces):
        values = np.asarray(trace.data)
        data[index[trace.stats.channel[-1]], first - first_index : first - first_index + values.size] = values
    s = traces[0].stats
    trace_id = f"{s.network}.{s.station}.{s.location}"
    return grid_time(first_index, sampling_rate) + float(np.mean(offsets)), data, trace_id
