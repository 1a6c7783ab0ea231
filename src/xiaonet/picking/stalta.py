"""The STA/LTA baseline behind the project's picker interface.

Defaults follow common practice for local networks (Trnkoczy, 2012, "Understanding and
parameter setting of STA/LTA trigger algorithm", NMSOP-2 IS 8.1: STA 0.5 s, LTA 5 s,
trigger on 3, off 1.5, 1-20 Hz band-pass); they are the settings measured in
``../shared/FINDINGS.md`` (P F1 0.684 on phasenet_ncedc2019). Picks are made on the vertical.

The ``peak_value`` of a STA/LTA pick is a pseudo-confidence ``1 - trigger_on / peak_ratio``
(0 at the trigger threshold, towards 1 for strong onsets), so that the same threshold sweeps
and CSV column work for every picker. It is not a probability.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import obspy

from xiaonet.edge.filters import bandpass
from xiaonet.edge.picks import EdgePick, instrument_channel, stalta_uncertainty, trigger_onset
from xiaonet.picking.pickers import Picker


def recursive_sta_lta(a: np.ndarray, nsta: int, nlta: int) -> np.ndarray:
    """ObsPy's ``recursive_sta_lta`` (its C loop: the recursion from the second sample, STA
    from 0 and LTA from 1e-99, the first ``nlta`` values zero) as two first-order filters.
    Here, not ObsPy's: ``obspy.signal`` imports matplotlib and its PPSD, 40 MB more for
    every STA/LTA run (tests hold the two equal)."""
    from scipy.signal import lfilter

    squared = np.square(np.asarray(a, dtype=np.float64)[1:])
    csta, clta = 1.0 / nsta, 1.0 / nlta
    sta = lfilter([csta], [1.0, -(1.0 - csta)], squared, zi=[0.0])[0]
    lta = lfilter([clta], [1.0, -(1.0 - clta)], squared, zi=[(1.0 - clta) * 1e-99])[0]
    cf = np.zeros(len(a))
    cf[1:] = sta / lta
    cf[:nlta] = 0.0
    return cf


def classic_sta_lta(a: np.ndarray, nsta: int, nlta: int) -> np.ndarray:
    """ObsPy's ``classic_sta_lta_py``: the mean square over the last ``nsta`` samples over that
    over the last ``nlta``, the first ``nlta - 1`` values zero."""
    sta = np.cumsum(np.square(np.asarray(a, dtype=np.float64)))
    lta = sta.copy()
    sta[nsta:] = sta[nsta:] - sta[:-nsta]
    sta /= nsta
    lta[nlta:] = lta[nlta:] - lta[:-nlta]
    lta /= nlta
    sta[:nlta - 1] = 0.0
    lta[lta < np.finfo(0.0).tiny] = np.finfo(0.0).tiny
    return sta / lta


STA_LTA_METHODS = {"recursive": recursive_sta_lta, "classic": classic_sta_lta}


@dataclass
class StaLtaConfig:
    method: str = "recursive"
    sta: float = 0.5
    lta: float = 5.0
    trigger_on: float = 3.0
    trigger_off: float = 1.5
    freqmin: float = 1.0
    freqmax: float = 20.0

    def __post_init__(self):
        if self.method not in STA_LTA_METHODS:
            raise ValueError(
                f"Unknown STA/LTA method '{self.method}'. Known: {', '.join(STA_LTA_METHODS)}."
            )
        if not 0 < self.sta < self.lta:
            raise ValueError(f"Need 0 < sta < lta, got sta={self.sta}, lta={self.lta}")
        if not 0 < self.trigger_off <= self.trigger_on:
            raise ValueError("Need 0 < trigger_off <= trigger_on")


def parse_stalta_options(pairs: list[str]) -> dict:
    """``KEY=VALUE`` pairs (``--stalta``) as :class:`StaLtaConfig` arguments.

    >>> parse_stalta_options(["sta=0.3", "method=classic"])
    {'sta': 0.3, 'method': 'classic'}
    """
    from dataclasses import fields

    known = [f.name for f in fields(StaLtaConfig)]
    options = {}
    for pair in pairs:
        key, sep, value = (part.strip() for part in pair.partition("="))
        if not sep:
            raise ValueError(f"--stalta '{pair}' is not KEY=VALUE")
        if key not in known:
            raise ValueError(f"Unknown STA/LTA option '{key}'. Known: {', '.join(known)}.")
        options[key] = value if key == "method" else float(value)
    return options


class StaLtaPicker(Picker):
    """P picks from ObsPy's STA/LTA on the band-passed vertical component."""

    name = "stalta"
    component_order = "Z"  # the vertical only

    def __init__(self, config: StaLtaConfig | None = None, **options):
        self.config = config or StaLtaConfig(**options)

    def __repr__(self) -> str:
        return f"StaLtaPicker({asdict(self.config)})"

    def characteristic_function(self, trace: obspy.Trace) -> np.ndarray:
        cfg = self.config
        trace = obspy.Trace(np.asarray(trace.data, dtype=np.float64), header=trace.stats.copy())
        trace.data -= trace.data.mean()
        trace.taper(0.01, max_length=1.0)
        rate = trace.stats.sampling_rate
        freqmax = min(cfg.freqmax, 0.45 * rate)
        data = bandpass(trace.data, cfg.freqmin, freqmax, rate, corners=4, zerophase=False)
        peak = np.abs(data).max()
        if peak > 0:
            data = data / peak  # STA/LTA is a ratio; this only keeps float range safe
        n_sta = max(1, int(round(cfg.sta * rate)))
        n_lta = max(n_sta + 1, int(round(cfg.lta * rate)))
        # ObsPy blanks the first n_lta samples (LTA warm-up). Warm the LTA up on the
        # time-reversed start of the record instead, so an onset in the first LTA window
        # (ObsPy's example event has its P 4.7 s into the record) can still trigger.
        pad = min(n_lta, len(data) - 1)
        padded = np.concatenate([data[1 : pad + 1][::-1], data])
        return STA_LTA_METHODS[cfg.method](padded, n_sta, n_lta)[pad:]

    def annotate(self, stream: obspy.Stream) -> obspy.Stream:
        out = obspy.Stream()
        for trace in stream:
            if not trace.stats.channel.endswith("Z") or trace.stats.npts < 2:
                continue
            cf = trace.copy()
            cf.data = self.characteristic_function(trace)
            cf.stats.channel = "StaLta_P"
            out.append(cf)
        return out

    def pick_block(self, stream: obspy.Stream) -> list[EdgePick]:
        cfg = self.config
        channel = instrument_channel(stream)
        picks = []
        for cf in self.annotate(stream):
            s = cf.stats
            trace_id = f"{s.network}.{s.station}.{s.location}"
            for on, off in trigger_onset(cf.data, cfg.trigger_on, cfg.trigger_off):
                off = max(on, min(off, s.npts - 1))
                peak = on + int(np.argmax(cf.data[on : off + 1]))
                peak_ratio = float(cf.data[peak])
                t_on = s.starttime + on * s.delta
                picks.append(
                    EdgePick(
                        trace_id=trace_id,
                        start_time=t_on,
                        end_time=s.starttime + off * s.delta,
                        peak_time=t_on,
                        peak_value=1.0 - cfg.trigger_on / max(peak_ratio, cfg.trigger_on),
                        phase="P",
                        channel=channel,
                        uncertainty_s=stalta_uncertainty(on, peak, s.sampling_rate),
                    )
                )
        return picks
