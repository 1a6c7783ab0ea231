"""Picks from probability curves, in numpy only (no ObsPy, no SeisBench, no torch).

:func:`trigger_onset` is a vectorised equivalent of ObsPy's ``obspy.signal.trigger.trigger_onset``
for ``thres1 >= thres2`` and no maximum length (how SeisBench calls it), and
:func:`picks_from_probabilities` follows SeisBench's ``WaveformModel.picks_from_annotations``:
trigger on at the threshold, off at half of it, the pick at the highest probability inside
the trigger. :class:`EdgePick` has the attribute names of ``seisbench.util.Pick`` so the
pick table writers and :mod:`xiaonet.evaluate.scoring` accept it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class EdgePick:
    """One P or S pick; times are whatever the record's start time was (UTCDateTime or seconds)."""

    trace_id: str
    start_time: Any
    end_time: Any
    peak_time: Any
    peak_value: float
    phase: str

    def __lt__(self, other: "EdgePick") -> bool:
        # seisbench.util.Pick's order: start time, then end time, then trace id.
        return (self.start_time, self.end_time, self.trace_id) < (
            other.start_time,
            other.end_time,
            other.trace_id,
        )


def trigger_onset(charfct: np.ndarray, thres1: float, thres2: float) -> np.ndarray:
    """Trigger on / off sample indices, shape (k, 2), as ObsPy's ``trigger_onset``.

    A trigger switches on at the first sample ``>= thres1`` and stays on while the function
    is ``>= thres2``; the off index is the last sample still ``>= thres2``. NaN never
    triggers.

    >>> trigger_onset(np.array([0.0, 0.5, 0.9, 0.4, 0.1, 0.8, 0.7]), 0.6, 0.3).tolist()
    [[2, 3], [5, 6]]
    """
    if thres1 < thres2:
        raise ValueError(f"need thres1 >= thres2, got thres1={thres1}, thres2={thres2}")
    charfct = np.asarray(charfct)
    if charfct.size == 0 or not np.nanmax(charfct, initial=-np.inf) >= thres1:
        return np.empty((0, 2), dtype=np.int64)  # the usual case for an hour of noise
    with np.errstate(invalid="ignore"):
        above_off = charfct >= thres2
        on_indices = np.flatnonzero(charfct >= thres1)
    if on_indices.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    # Runs of samples >= thres2: boundaries where the state changes.
    boundaries = np.concatenate(([0], np.flatnonzero(above_off[1:] != above_off[:-1]) + 1, [above_off.size]))
    inside = above_off[boundaries[:-1]]
    run_starts = boundaries[:-1][inside]
    run_ends = boundaries[1:][inside] - 1
    first_on = np.searchsorted(on_indices, run_starts)
    has_on = first_on < on_indices.size
    has_on[has_on] &= on_indices[first_on[has_on]] <= run_ends[has_on]
    return np.stack([on_indices[first_on[has_on]], run_ends[has_on]], axis=1).astype(np.int64)


def picks_from_probabilities(
    probability: np.ndarray,
    start_time: Any,
    sampling_rate: float,
    threshold: float,
    phase: str,
    trace_id: str,
) -> list[EdgePick]:
    """Picks of one phase from its probability curve that starts at ``start_time``."""
    picks = []
    for s0, s1 in trigger_onset(probability, threshold, threshold / 2):
        segment = probability[s0 : s1 + 1]
        s_peak = s0 + int(np.argmax(segment))
        picks.append(
            EdgePick(
                trace_id=trace_id,
                start_time=start_time + float(s0) / sampling_rate,
                end_time=start_time + float(s1) / sampling_rate,
                peak_time=start_time + float(s_peak) / sampling_rate,
                peak_value=float(segment.max()),
                phase=phase,
            )
        )
    return picks


def parse_thresholds(pairs: list[str], flag: str = "--threshold") -> dict[str, float]:
    """``["P=0.3", "s=0.4"]`` -> ``{"P": 0.3, "S": 0.4}``: the one parser of every command's
    threshold flag; a malformed pair, an unknown phase or a value outside (0, 1) is refused.

    >>> parse_thresholds(["P=0.3", "s=0.4"])
    {'P': 0.3, 'S': 0.4}
    """
    thresholds: dict[str, float] = {}
    for pair in pairs:
        phase, sep, text = pair.partition("=")
        phase = phase.strip().upper()
        try:
            value = float(text) if sep else None
        except ValueError:
            value = None
        if value is None:
            raise ValueError(f"{flag} '{pair}' is not PHASE=VALUE (e.g. {flag} P=0.3)")
        if phase not in ("P", "S"):
            raise ValueError(f"{flag} '{pair}': unknown phase '{phase}' (P or S)")
        if not 0.0 < value < 1.0:
            raise ValueError(f"{flag} '{pair}': a probability threshold lies between 0 and 1")
        thresholds[phase] = value
    return thresholds
