"""How good a pick is: its timing uncertainty and its signal-to-noise ratio, in numpy only.

Both are computed from what every picking path holds identically when a pick is made (plain
``xiaonet pick``, archive chunks and the streaming engine), so one file gives the same values
in each:

``uncertainty_s``
    From the width of the probability peak: the number of contiguous samples around the
    pick whose probability is at least half the peak's (the full width at half maximum,
    FWHM, counted in samples), turned into the standard deviation of a Gaussian of that
    width: ``FWHM / (2 sqrt(2 ln 2)) / sampling_rate``. The students are trained on Gaussian
    labels, so a sharp, confident onset gives a narrow peak and an emergent one a wide peak.
    Half the peak is at least half the trigger threshold, where the trigger switches off, so
    the width lies inside the trigger's own samples: the trigger measures it as samples
    arrive (:func:`xiaonet.edge.picks.advance_trigger`), with no look back at the curve.

``snr_db``
    ``10 log10(P_signal / P_noise)``: mean power in the signal window ``[0, 0.5) s`` after
    the pick over the noise window ``[-2, -0.1) s`` before it, on the component the phase is
    picked on (P: the vertical; S: both horizontals, their powers added). The samples are the
    ones the model sees (its rate, its stream filter), first-differenced: a difference removes
    the offset and any linear drift without filter state (identical on a snippet, a block or
    a ring buffer) and damps microseism (0.2 Hz) by ~28 dB against a 5 Hz onset. Why these
    windows: 2 s of noise is a stable level at local distances and ends 0.1 s before the pick,
    so an onset picked a few samples late does not leak into it; the signal window is short
    (0.5 s) so a P pick's is not reached by the S at epicentral distances over ~4 km, and so
    that it is inside the data the streaming engine already holds when a pick becomes final
    (offline mode: a window of data; low-latency mode: ``lookahead`` seconds, 1 s by default).
    A low-latency run with a shorter lookahead (an early-warning student's 0.2 s) measures
    the signal over its lookahead instead, as its offline picking does (it runs through the
    engine too): holding its picks for 0.5 s of signal (a prototype did) added 0.2 s to a
    median emission delay of 0.38 s (docs/streaming.md). A pick whose windows are not wholly inside
    its record (within 2.1 s of a record start, or 0.5 s of its end), or whose noise is exactly
    zero (a missing component), has no SNR (NaN).
"""

from __future__ import annotations

import math

import numpy as np

#: FWHM of a Gaussian in units of its standard deviation.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: Seconds relative to the pick: the noise window ``[start, end)`` before it.
NOISE_WINDOW_S = (-2.0, -0.1)
#: The signal window ``[0, SIGNAL_S)`` after the pick (shorter only in low-latency streaming
#: with a shorter ``lookahead``: :func:`signal_seconds`).
SIGNAL_S = 0.5


def half_maximum_width(values: np.ndarray, peak: int) -> int:
    """Contiguous samples around ``values[peak]`` that are at least half of it (>= 1).

    >>> half_maximum_width(np.array([0.0, 0.3, 0.6, 1.0, 0.7, 0.4, 0.0]), 3)
    3
    """
    values = np.asarray(values)
    half = values[peak] / 2.0
    below = values < half  # NaN counts as not below: it is never inside a trigger
    left = np.flatnonzero(below[:peak])
    right = np.flatnonzero(below[peak + 1:])
    first = int(left[-1]) + 1 if left.size else 0
    last = peak + int(right[0]) if right.size else values.size - 1
    return last - first + 1


def uncertainty_from_width(width_samples: int, sampling_rate: float) -> float:
    """Seconds: the standard deviation of a Gaussian whose FWHM is ``width_samples``."""
    return float(width_samples) / FWHM_PER_SIGMA / float(sampling_rate)


def snr_components(phase: str, component_order: str) -> list[int]:
    """Rows of ``component_order`` the phase's SNR is measured on: P the vertical, S the rest."""
    if phase == "P":
        return [i for i, c in enumerate(component_order) if c == "Z"]
    return [i for i, c in enumerate(component_order) if c != "Z"]


def signal_seconds(lookahead_s: float | None = None) -> float:
    """The signal window's length: :data:`SIGNAL_S`, or a low-latency run's ``lookahead_s``
    where that is shorter (the data it holds after a final sample), so that no pick waits."""
    return SIGNAL_S if lookahead_s is None else min(SIGNAL_S, float(lookahead_s))


def snr_span(sampling_rate: float, signal_s: float = SIGNAL_S) -> tuple[int, int]:
    """Samples needed before the pick (the noise window and the one its difference takes)
    and after it (the signal window)."""
    return 1 - int(round(NOISE_WINDOW_S[0] * sampling_rate)), int(round(signal_s * sampling_rate))


def snr_db(data: np.ndarray, index: int, sampling_rate: float, signal_s: float = SIGNAL_S) -> float:
    """SNR (dB) of a pick at sample ``index`` of ``data`` (rows: the phase's components, see
    :func:`snr_components`; columns: one record's samples); NaN where the windows do not fit.

    A 10 Hz wave ten times larger from sample 500 on, on an offset and a drift: 20 dB
    (19.8: the first difference after the onset spans the jump).

    >>> t = np.arange(1000); trace = np.sin(2 * np.pi * t / 10)[None] + 5.0 + 0.01 * t
    >>> trace[:, 500:] += 9 * np.sin(2 * np.pi * t[500:] / 10)
    >>> round(snr_db(trace, 500, 100.0), 1)
    19.8
    """
    before, after = snr_span(sampling_rate, signal_s)
    data = np.asarray(data)
    if (data.ndim != 2 or data.shape[0] == 0 or after < 1 or index - before < 0
            or index + after > data.shape[1]):
        return float("nan")
    noise_start, noise_end = (int(round(s * sampling_rate)) for s in NOISE_WINDOW_S)
    signal_start, signal_end = 0, after
    snippet = np.diff(np.asarray(data[:, index - before: index + after], dtype=np.float64), axis=1)
    # snippet[:, j] is the difference ending at sample index - before + 1 + j
    offset = before - 1
    noise = snippet[:, offset + noise_start: offset + noise_end]
    signal = snippet[:, offset + signal_start: offset + signal_end]
    noise_power = float(np.mean(np.square(noise), axis=1).sum())
    signal_power = float(np.mean(np.square(signal), axis=1).sum())
    if not (noise_power > 0 and np.isfinite(noise_power) and np.isfinite(signal_power)) or signal_power <= 0:
        return float("nan")
    return 10.0 * math.log10(signal_power / noise_power)
