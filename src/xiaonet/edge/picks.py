"""Picks from probability curves, in numpy only (no ObsPy, no SeisBench, no torch).

:class:`TriggerState` / :func:`advance_trigger` are the project's one trigger (used by the
streaming engine chunk by chunk); :func:`trigger_onset` runs it over a whole curve, equal to
ObsPy's ``obspy.signal.trigger.trigger_onset`` for ``thres1 >= thres2`` and no maximum length
(how SeisBench calls it), and
:func:`picks_from_curve` follows SeisBench's ``WaveformModel.picks_from_annotations``:
trigger on at the threshold, off at half of it, the pick at the highest probability inside
the trigger. :class:`EdgePick` has the attribute names of ``seisbench.util.Pick`` so the
pick table writers and :mod:`xiaonet.scoring.matching` accept it unchanged, plus the pick's
instrument and quality (:mod:`xiaonet.edge.pick_quality`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xiaonet.edge.pick_quality import half_maximum_width, snr_db, uncertainty_from_width


@dataclass(frozen=True)
class EdgePick:
    """One P or S pick; times are whatever the record's start time was (UTCDateTime or seconds).

    ``channel``: the instrument it was picked on (band + instrument code and ``?``, e.g.
    ``HH?``), so picks of a station's HH and HN instruments stay apart; ``uncertainty_s`` and
    ``snr_db`` as :mod:`xiaonet.edge.pick_quality` defines them (NaN: not measured).
    """

    trace_id: str
    start_time: Any
    end_time: Any
    peak_time: Any
    peak_value: float
    phase: str
    channel: str = ""
    uncertainty_s: float = float("nan")
    snr_db: float = float("nan")

    def __lt__(self, other: "EdgePick") -> bool:
        # seisbench.util.Pick's order: start time, then end time, then trace id.
        return (self.start_time, self.end_time, self.trace_id) < (
            other.start_time,
            other.end_time,
            other.trace_id,
        )


@dataclass
class TriggerState:
    """The one trigger of the project (SeisBench's rule: on at ``threshold``, off below
    ``threshold / 2`` or ``off_level``), as a state machine so that samples can arrive in
    chunks (streaming) or all at once (:func:`trigger_onset`)."""

    phase: str
    threshold: float
    run_start: int | None = None  # first sample of the current run >= off threshold
    on: int | None = None  # first sample >= on threshold in the run
    peak: int = -1
    peak_value: float = -np.inf
    #: The trigger's pick was already given out by the ``confirm`` rule (see advance_trigger).
    confirmed: bool = False
    #: The current run's values (pieces), for the peak's half-maximum width.
    run_values: list = field(default_factory=list)


def advance_trigger(trig: TriggerState, values: np.ndarray, first: int, off_level: float | None = None,
                    confirm: float | None = None):
    """Feed final values to a trigger; yield (on, off, peak, value, width) of closed triggers.

    Same result as ``obspy.signal.trigger.trigger_onset(values, on, off)`` (``off`` defaults
    to half the threshold, SeisBench's rule) followed by SeisBench's peak search inside the
    trigger, over any split of the samples into chunks; ``width`` is the peak's half-maximum
    width in samples (:func:`xiaonet.edge.pick_quality.half_maximum_width`) over the run's
    values up to ``off``. ``first`` is the absolute index of
    ``values[0]``. NaN never triggers. A trigger still on after the last value stays open in
    ``trig`` (the caller closes it at the end of the record).

    ``confirm`` (early-warning picking): once the trigger is on and a value falls below
    ``confirm`` x the highest value so far, that highest value is the pick and it is yielded
    at once (``off`` = the confirming sample) instead of when the trigger closes; higher
    values later in the same trigger make no second pick. The result does not depend on how
    the values are split into chunks either.
    """
    on_level = trig.threshold
    off_level = trig.threshold / 2 if off_level is None else off_level
    values = np.asarray(values)
    above_off = values >= off_level
    if not above_off.any() and trig.run_start is None:
        return
    change = np.flatnonzero(np.diff(above_off.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [values.size]])
    for a, b in zip(bounds[:-1], bounds[1:]):
        a, b = int(a), int(b)
        if above_off[a]:
            if trig.run_start is None:
                trig.run_start, trig.on, trig.peak, trig.peak_value = first + a, None, -1, -np.inf
                trig.confirmed = False
                trig.run_values = []
            chunk = values[a:b]
            if not trig.confirmed:
                trig.run_values.append(np.array(chunk))
            if trig.on is None:
                hits = np.flatnonzero(chunk >= on_level)
                if hits.size:
                    trig.on = first + a + int(hits[0])
            if confirm is not None and trig.on is not None and not trig.confirmed:
                yield from _confirm(trig, chunk, first + a, confirm)
            elif not trig.confirmed:
                i = int(np.argmax(chunk))
                if chunk[i] > trig.peak_value:
                    trig.peak, trig.peak_value = first + a + i, float(chunk[i])
        elif trig.run_start is not None:
            if trig.on is not None and not trig.confirmed:
                yield trig.on, first + a - 1, trig.peak, trig.peak_value, run_width(trig, first + a - 1)
            trig.run_start, trig.on, trig.confirmed = None, None, False
            trig.run_values = []


def run_width(trig: TriggerState, last: int) -> int:
    """Half-maximum width (samples) of the trigger's peak over its run up to sample ``last``."""
    values = np.concatenate(trig.run_values)[: last - trig.run_start + 1]
    return half_maximum_width(values, trig.peak - trig.run_start)


def _confirm(trig: TriggerState, chunk: np.ndarray, start: int, ratio: float):
    """The ``confirm`` rule over one chunk of a run whose trigger is on (see advance_trigger)."""
    begin = max(0, trig.on - start)  # samples before the on sample cannot confirm
    head = chunk[:begin]
    if head.size:
        i = int(np.argmax(head))
        if head[i] > trig.peak_value:
            trig.peak, trig.peak_value = start + i, float(head[i])
    tail = chunk[begin:]
    if not tail.size:
        return
    running = np.maximum.accumulate(np.concatenate([[trig.peak_value], tail]))[1:]
    below = np.flatnonzero(tail < ratio * running)
    stop = int(below[0]) if below.size else tail.size
    if stop:
        i = int(np.argmax(tail[:stop]))
        if tail[i] > trig.peak_value:
            trig.peak, trig.peak_value = start + begin + i, float(tail[i])
    if below.size:
        trig.confirmed = True
        yield trig.on, start + begin + stop, trig.peak, trig.peak_value, run_width(trig, start + begin + stop)


def trigger_onset(charfct: np.ndarray, thres1: float, thres2: float) -> np.ndarray:
    """Trigger on / off sample indices, shape (k, 2), as ObsPy's ``trigger_onset``: the
    whole curve through :func:`advance_trigger`, a trigger still on at the end closing at
    the last sample.

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
    trig = TriggerState("", thres1)
    pairs = [(on, off) for on, off, _, _, _ in advance_trigger(trig, charfct, 0, off_level=thres2)]
    if trig.on is not None:
        pairs.append((trig.on, charfct.size - 1))
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def picks_from_curve(
    probability: np.ndarray,
    start_time: Any,
    sampling_rate: float,
    threshold: float,
    phase: str,
    trace_id: str,
    channel: str = "",
    waveform: np.ndarray | None = None,
    waveform_first: int = 0,
) -> list[EdgePick]:
    """Picks of one phase from its probability curve that starts at ``start_time``, with their
    uncertainty and, given ``waveform`` (the record's rows of the phase's components, see
    :func:`xiaonet.edge.pick_quality.snr_components`; curve sample ``i`` is its sample
    ``waveform_first + i``), their SNR."""
    picks = []
    for s0, s1 in trigger_onset(probability, threshold, threshold / 2):
        segment = probability[s0 : s1 + 1]
        s_peak = s0 + int(np.argmax(segment))
        snr = float("nan") if waveform is None else snr_db(waveform, waveform_first + s_peak, sampling_rate)
        picks.append(
            EdgePick(
                trace_id=trace_id,
                start_time=start_time + float(s0) / sampling_rate,
                end_time=start_time + float(s1) / sampling_rate,
                peak_time=start_time + float(s_peak) / sampling_rate,
                peak_value=float(segment.max()),
                phase=phase,
                channel=channel,
                uncertainty_s=uncertainty_from_width(half_maximum_width(probability, s_peak), sampling_rate),
                snr_db=snr,
            )
        )
    return picks


def stalta_uncertainty(on: int, peak: int, sampling_rate: float) -> float:
    """An STA/LTA pick's ``uncertainty_s``: the rise time of its ratio from trigger on (the
    pick) to its maximum, at least one sample. Its ratio has no probability peak to measure a
    half-maximum width on; a sharp onset rises in a few samples, an emergent one over seconds."""
    return max(int(peak) - int(on), 1) / float(sampling_rate)


def instrument_channel(traces) -> str:
    """The instrument of one instrument's traces as a pick's ``channel``: band + instrument
    code and ``?`` (``HH?`` for HHZ/HHN/HHE), "" when there are no traces."""
    codes = sorted({trace.stats.channel[:-1] for trace in traces})
    return f"{codes[0]}?" if codes else ""


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
