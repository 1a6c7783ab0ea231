"""Offline windowing rules of the streaming engine, pure numpy: where windows start and how
their predictions are averaged (SeisBench's ``_cut_fragments_array`` and ``avg`` stacking).

The window grid and the stacking methods are those of :mod:`xiaonet.edge.windowing` (one
implementation); :func:`stack_windows_average` is the bit-for-bit reference of SeisBench's
C stacking.
"""

from __future__ import annotations


import numpy as np


# --- Offline windowing rules, pure numpy -------------------------------------------------


def stack_windows_average(predictions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Average (labels, samples) window predictions where they overlap, NaN where none.

    ``predictions`` is (windows, labels, samples); NaN samples (blinded window edges) do not
    count. Sums are float32 in window order, as SeisBench's C ``stack_windows`` does, so the
    result matches it bit for bit.
    """
    predictions = np.asarray(predictions, dtype=np.float32)
    n_windows, n_labels, length = predictions.shape
    total = int(np.max(offsets)) + length if n_windows else 0
    summed = np.zeros((n_labels, total), dtype=np.float32)
    count = np.zeros((n_labels, total), dtype=np.float32)
    for prediction, offset in zip(predictions, offsets):
        valid = ~np.isnan(prediction)
        summed[:, offset : offset + length] += np.where(valid, prediction, np.float32(0))
        count[:, offset : offset + length] += valid
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, summed / np.maximum(count, 1), np.float32(np.nan))
