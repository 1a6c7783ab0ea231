"""STA/LTA behind the streaming interface: the same picks as the offline STA/LTA picker."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import obspy

from xiaonet.stream.consumer import PacketConsumer
from xiaonet.stream.settings import COUNTER_NAMES, EmittedPick, StreamingConfig
from xiaonet.edge.picks import EdgePick, TriggerState, advance_trigger, stalta_uncertainty

logger = logging.getLogger(__name__)

# --- STA/LTA, streamed ---------------------------------------------------------------------


@dataclass
class _StaLtaChannel:
    """Causal STA/LTA state of one vertical channel (one contiguous record)."""

    trace_id: str
    sampling_rate: float
    start: obspy.UTCDateTime  # time of the record's first sample
    next_index: int = 0  # samples received in this record
    warmup: list = field(default_factory=list)  # raw samples until the LTA can be warmed up
    mean: float = 0.0
    sos_state: np.ndarray | None = None
    sta: float = 0.0
    lta: float = 0.0
    trigger: TriggerState | None = None
    recent_starts: list = field(default_factory=list)
    last_arrival: float = 0.0


class StreamingStaLta(PacketConsumer):
    """:class:`xiaonet.picking.stalta.StaLtaPicker` run causally on packets.

    What streaming means for STA/LTA: the band-pass keeps its filter state across packets,
    the recursive STA and LTA keep theirs, and the trigger (on at ``trigger_on``, off below
    ``trigger_off``) is a state machine, so a pick is emitted once, when its trigger
    switches off. The LTA is warmed up on the time-reversed first ``lta`` seconds of each
    record, as offline. How close to offline: the offline picker removes the mean of the
    whole record and tapers both of its ends; streaming removes the mean of the first
    ``lta`` seconds and tapers only the start. The difference is a constant offset through
    a 1 Hz high-pass, which dies out within seconds, so picks after the first ~30 s of a
    record and before its last second are the offline ones (a test checks this).
    Gaps and sampling-rate changes end the record, as offline.
    """

    def __init__(self, picker, config: StreamingConfig | None = None,
                 note: Callable[[str], None] | None = None):
        self.config = config or StreamingConfig()
        self.note = note or logger.warning
        self.stalta = picker
        self.picker_name = picker.name
        self.channels: dict[str, _StaLtaChannel] = {}
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        self._taper_cache: dict[float, np.ndarray] = {}
        self._sos_cache: dict[float, np.ndarray] = {}
        self.model_seconds = 0.0

    @property
    def stations(self) -> dict[str, _StaLtaChannel]:
        return self.channels


    def process(self, flush: bool = False) -> list[EmittedPick]:
        return self.flush() if flush else []

    def flush(self, station_keys: Iterable[str] | None = None) -> list[EmittedPick]:
        keys = list(self.channels) if station_keys is None else list(station_keys)
        emitted: list[EmittedPick] = []
        for key in keys:
            if key in self.channels:
                emitted += self._end_record(self.channels.pop(key))
        return emitted

    def flush_idle(self, idle_seconds: float, now: float | None = None) -> list[EmittedPick]:
        now = time.time() if now is None else now
        return self.flush([k for k, c in self.channels.items() if now - c.last_arrival > idle_seconds])

    def memory_bytes(self) -> int:
        return sum(8 * (len(c.warmup) + (c.sos_state.size if c.sos_state is not None else 0)) + 256
                   for c in self.channels.values())

    # --- internals ---------------------------------------------------------------------

    def _accept(self, packet: obspy.Trace) -> list[EmittedPick]:
        stats = packet.stats
        self.counters["packets"] += 1
        if not stats.channel.endswith("Z"):
            return []  # the offline picker uses the vertical only
        if stats.npts == 0:
            self.counters["empty_packets"] += 1
            return []
        data = np.asarray(np.ma.filled(packet.data, np.nan) if np.ma.isMaskedArray(packet.data)
                          else packet.data, dtype=np.float64)
        self.counters["samples"] += data.size
        key = packet.id
        rate = float(stats.sampling_rate)
        emitted: list[EmittedPick] = []
        channel = self.channels.get(key)
        if channel is not None and abs(channel.sampling_rate - rate) > 1e-6 * rate:
            self.counters["rate_changes"] += 1
            self.note(f"{key}: sampling rate changed from {channel.sampling_rate:g} to {rate:g} Hz; "
                      "record ended")
            emitted += self.flush([key])
            channel = None
        start_ns = stats.starttime.ns
        if channel is not None:
            index = int(round((start_ns - channel.start.ns) * 1e-9 * rate))
            if index < channel.next_index:
                skip = channel.next_index - index
                if skip >= data.size:
                    duplicate = start_ns in channel.recent_starts
                    self.counters["duplicate_packets" if duplicate else "late_packets"] += 1
                    return emitted
                self.counters["overlapping_packets"] += 1
                data = data[skip:]
            elif index > channel.next_index:
                self.counters["gaps"] += 1
                emitted += self.flush([key])
                channel = None
            if channel is not None:
                channel.recent_starts.append(start_ns)
        if channel is None:
            channel = _StaLtaChannel(key, rate, obspy.UTCDateTime(stats.starttime))
            channel.recent_starts.append(start_ns)
            self.channels[key] = channel
        del channel.recent_starts[:-16]
        channel.last_arrival = time.time()
        bad = ~np.isfinite(data)
        if bad.any():  # NaN runs are gaps, as offline
            first_bad = int(np.flatnonzero(bad)[0])
            emitted += self._push(channel, data[:first_bad])
            self.counters["gaps"] += 1
            emitted += self.flush([key])
            rest = np.flatnonzero(~bad[first_bad:])
            if rest.size:
                tail = packet.copy()
                tail.data = data[first_bad + int(rest[0]):]
                tail.stats.starttime = stats.starttime + (first_bad + int(rest[0])) / rate
                emitted += self._accept(tail)
                self.counters["packets"] -= 1
            return emitted
        return emitted + self._push(channel, data)

    def _filters(self, rate: float) -> tuple[np.ndarray, np.ndarray]:
        if rate not in self._sos_cache:
            from scipy.signal import iirfilter

            cfg = self.stalta.config
            nyquist = 0.5 * rate
            freqmax = min(cfg.freqmax, 0.45 * rate)
            self._sos_cache[rate] = iirfilter(4, [cfg.freqmin / nyquist, freqmax / nyquist],
                                              btype="band", ftype="butter", output="sos")
            ones = obspy.Trace(np.ones(int(200 * rate)), header={"sampling_rate": rate})
            ones.taper(0.01, max_length=1.0)
            self._taper_cache[rate] = ones.data[: int(1.0 * rate)].copy()
        return self._sos_cache[rate], self._taper_cache[rate]

    def _lengths(self, rate: float) -> tuple[int, int]:
        cfg = self.stalta.config
        n_sta = max(1, int(round(cfg.sta * rate)))
        n_lta = max(n_sta + 1, int(round(cfg.lta * rate)))
        return n_sta, n_lta

    def _push(self, channel: _StaLtaChannel, data: np.ndarray) -> list[EmittedPick]:
        from scipy.signal import lfilter, sosfilt

        if data.size == 0:
            return []
        sos, taper = self._filters(channel.sampling_rate)
        n_sta, n_lta = self._lengths(channel.sampling_rate)
        first = channel.next_index
        channel.next_index += data.size
        if channel.trigger is None:
            channel.warmup.extend(data.tolist())
            if len(channel.warmup) < n_lta + 1:
                return []
            raw = np.asarray(channel.warmup)
            channel.warmup = []
            first = 0
            channel.mean = float(raw[: n_lta + 1].mean())
            x = raw - channel.mean
            x[: taper.size] *= taper[: x.size]
            channel.sos_state = np.zeros((sos.shape[0], 2))
            filtered, channel.sos_state = sosfilt(sos, x, zi=channel.sos_state)
            pad = filtered[1 : n_lta + 1][::-1]
            cfg = self.stalta.config
            channel.trigger = TriggerState("P", cfg.trigger_on)
            channel.lta = np.finfo(0.0).tiny
            # Warm-up on the reversed start, as offline (its first sample is never used).
            self._stalta(channel, pad[1:] if pad.size else pad, lfilter, n_sta, n_lta)
        else:
            x = data - channel.mean
            if first < taper.size:
                x[: max(0, taper.size - first)] *= taper[first : first + x.size]
            filtered, channel.sos_state = sosfilt(sos, x, zi=channel.sos_state)
        cf = self._stalta(channel, filtered, lfilter, n_sta, n_lta)
        return self._trigger(channel, cf, first)

    @staticmethod
    def _stalta(channel: _StaLtaChannel, x: np.ndarray, lfilter, n_sta: int, n_lta: int) -> np.ndarray:
        if x.size == 0:
            return x
        sq = np.square(x)
        csta, clta = 1.0 / n_sta, 1.0 / n_lta
        sta, zs = lfilter([csta], [1.0, -(1 - csta)], sq, zi=[(1 - csta) * channel.sta])
        lta, zl = lfilter([clta], [1.0, -(1 - clta)], sq, zi=[(1 - clta) * channel.lta])
        channel.sta, channel.lta = float(sta[-1]), float(lta[-1])
        with np.errstate(divide="ignore", invalid="ignore"):
            return sta / lta

    def _trigger(self, channel: _StaLtaChannel, cf: np.ndarray, first: int) -> list[EmittedPick]:
        cfg = self.stalta.config
        trig = channel.trigger
        out = []
        for on, off, peak, value, _ in advance_trigger(trig, cf, first, off_level=cfg.trigger_off):
            out += self._emit(channel, on, off, value, peak)
        return out

    def _emit(self, channel: _StaLtaChannel, on: int, off: int, peak_ratio: float, peak: int) -> list[EmittedPick]:
        cfg = self.stalta.config
        t_on = channel.start + on / channel.sampling_rate
        pick = EdgePick(
            trace_id=channel.trace_id.rsplit(".", 1)[0],
            start_time=t_on,
            end_time=channel.start + off / channel.sampling_rate,
            peak_time=t_on,
            peak_value=1.0 - cfg.trigger_on / max(peak_ratio, cfg.trigger_on),
            phase="P",
            channel=channel.trace_id.rsplit(".", 1)[-1][:-1] + "?",
            uncertainty_s=stalta_uncertainty(on, peak, channel.sampling_rate),
        )
        self.counters["picks"] += 1
        newest = channel.start + (channel.next_index - 1) / channel.sampling_rate
        return [EmittedPick(pick, self.picker_name, obspy.UTCDateTime(), newest)]

    def _end_record(self, channel: _StaLtaChannel) -> list[EmittedPick]:
        trig = channel.trigger
        if trig is None or trig.on is None:
            return []
        return self._emit(channel, trig.on, channel.next_index - 1, trig.peak_value, trig.peak)
