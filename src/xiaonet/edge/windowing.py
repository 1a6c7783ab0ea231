"""Sliding windows over a record and averaging of the window predictions, in numpy only.

The same cutting and stacking as SeisBench's ``WaveformModel.annotate`` for array models
(``_cut_fragments_array`` + ``avg`` stacking): windows of ``in_samples`` every
``in_samples - overlap`` samples, one more window aligned to the end of the record, and the
mean of all windows covering a sample (samples blinded at window edges do not count).
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


class WindowStack:
    """Running average of window predictions over one record.

    ``add(offset, prediction)`` adds a (channels, in_samples) prediction starting at sample
    ``offset``; ``mean()`` is the per-sample average, NaN where no window counted.
    ``blinding`` = (samples at the start, samples at the end) of each window that are ignored.
    Sums are float32: at most a handful of windows cover a sample.
    """

    def __init__(self, n_channels: int, n_samples: int, blinding: tuple[int, int] = (0, 0)):
        self.sum = np.zeros((n_channels, n_samples), dtype=np.float32)
        self.count = np.zeros(n_samples, dtype=np.uint8)
        self.blinding = (int(blinding[0]), int(blinding[1]))

    def add(self, offset: int, prediction: np.ndarray) -> None:
        length = prediction.shape[-1]
        first, last = self.blinding[0], length - self.blinding[1]
        if last <= first:
            return
        self.sum[:, offset + first : offset + last] += prediction[:, first:last]
        self.count[offset + first : offset + last] += 1

    def mean(self) -> np.ndarray:
        """The average, computed in place (the stack is spent afterwards)."""
        np.divide(self.sum, np.maximum(self.count, 1), out=self.sum)
        uncovered = self.count == 0
        if uncovered.any():
            self.sum[:, uncovered] = np.nan
        return self.sum


def covered_span(values: np.ndarray) -> tuple[int, int]:
    """First and one-past-last index where ``values`` (channels, samples) is not NaN."""
    finite = np.flatnonzero(np.isfinite(values).any(axis=0))
    if finite.size == 0:
        return 0, 0
    return int(finite[0]), int(finite[-1]) + 1
