"""Sliding windows over a record and stacking of the window predictions, in numpy only.

The same cutting and stacking as SeisBench's ``WaveformModel.annotate`` for array models
(``_cut_fragments_array`` + ``avg`` / ``max`` stacking): windows of ``in_samples`` every
``in_samples - overlap`` samples, one more window aligned to the end of the record, and the
mean (or maximum) of all windows covering a sample (samples blinded at window edges do not
count).
"""

from __future__ import annotations

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
