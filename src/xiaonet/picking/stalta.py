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
from obspy.signal.trigger import classic_sta_lta, recursive_sta_lta

from xiaonet.edge.picks import EdgePick, trigger_onset

from xiaonet.picking.pickers import Picker

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
        trace = trace.copy()
        trace.detrend("demean")
        trace.taper(0.01, max_length=1.0)
        rate = trace.stats.sampling_rate
        freqmax = min(cfg.freqmax, 0.45 * rate)
        trace.filter("bandpass", freqmin=cfg.freqmin, freqmax=freqmax, corners=4, zerophase=False)
        data = trace.data.astype(np.float64)
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
        picks = []
        for cf in self.annotate(stream):
            s = cf.stats
            trace_id = f"{s.network}.{s.station}.{s.location}"
            for on, off in trigger_onset(cf.data, cfg.trigger_on, cfg.trigger_off):
                off = max(on, min(off, s.npts - 1))
                peak_ratio = float(cf.data[on : off + 1].max())
                t_on = s.starttime + on * s.delta
                picks.append(
                    EdgePick(
                        trace_id=trace_id,
                        start_time=t_on,
                        end_time=s.starttime + off * s.delta,
                        peak_time=t_on,
                        peak_value=1.0 - cfg.trigger_on / max(peak_ratio, cfg.trigger_on),
                        phase="P",
                    )
                )
        return picks
