"""The streaming engine: real-time picking from packets, per-station ring buffers, sliding
windows, final picks.

:class:`StreamingPicker` is fed ObsPy ``Trace`` packets (miniSEED records of any size, the
channels of a station in any interleaving) and returns each pick once, as soon as it can no
longer change, with the time it was emitted.

How it works, per station (``NET.STA.LOC`` + band/instrument code, as offline):

1. **Ring buffer.** Each packet is written into a station buffer (components x samples, on
   a sample grid anchored at the station's first packet), with a mask of which samples were
   received. Duplicates, overlaps, reordered and late packets are sorted out here.
2. **Frontier.** The station is processed up to the *frontier*: the first sample not yet
   received on every live channel. A channel that lags the others by more than
   ``channel_timeout`` seconds is declared stopped (and treated as missing, i.e. zeros, as
   the offline path does for a missing component) until it sends data again.
3. **Segments.** Where no channel has data (a gap), the current record ends, exactly as the
   offline path splits a station into contiguous blocks; with ``gap_policy="zero-fill"``
   gaps up to ``max_fill`` seconds are filled with zeros instead, and picks touching the
   filled span are suppressed (no pick is invented across a gap).
4. **Windows.** In ``mode="offline"`` windows start every ``in_samples - overlap`` samples
   from the record start and one more window is aligned to the record end when the record
   ends (SeisBench's ``_cut_fragments_array``), or, for a model with the ``absolute`` window
   grid (the students), on that grid after one window at the record start; window predictions are averaged where they
   overlap (SeisBench's ``avg`` stacking, in float32 and in window order). A sample is
   final once no future window can cover it; the end-of-record window means the last
   ``in_samples`` samples of a record are final only when the record ends (a gap, a rate
   change, :meth:`StreamingPicker.flush`). Picks are then identical to
   ``ModelPicker.pick`` on the whole record, at the price of latency (up to one window).
   In ``mode="low-latency"`` a window ending at the newest data is predicted every ``hop``
   seconds and each sample takes its probability from the one window in which it lies
   ``lookahead`` seconds before the window end: final ``lookahead`` + ``hop`` seconds after
   it arrived, at the price of less context after an onset than offline picking sees.
5. **Triggers.** Final probabilities go through the same trigger as SeisBench's
   ``picks_from_annotations`` (on at the threshold, off below half of it, peak inside),
   kept as a state machine so a trigger may span many packets.

Windows from all stations that are ready are predicted in one batch per call of
:meth:`StreamingPicker.feed_many` (or :meth:`StreamingPicker.process`), so a thousand
stations cost one model call per batch, not one per station.

This module holds steps 1-2 (packets in, the frontier); steps 3-4 are
:class:`xiaonet.stream.segments.SegmentWindows` and step 5
:class:`xiaonet.stream.emission.PickEmission`, parts of the one engine class that share its
state. The buffers, the trigger, the predictors and the settings live in their own modules.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterable

import numpy as np
import obspy

from xiaonet.data.streams import component_index
from xiaonet.stream.consumer import PacketConsumer
from xiaonet.stream.emission import PickEmission
from xiaonet.stream.segments import SegmentWindows
from xiaonet.stream.settings import COUNTER_NAMES, EmittedPick, StreamingConfig
from xiaonet.stream.predictors import predictor_from_edge_model
from xiaonet.data.waveforms import LOW_RATE_FACTOR, MAX_SAMPLING_RATE, MIN_SAMPLING_RATE
from xiaonet.edge.pick_quality import signal_seconds, snr_components, snr_span
from xiaonet.stream.resampling import LOW_LATENCY_MARGIN_S, ChannelResampler
from xiaonet.stream.station import PendingWindow, StationBuffer
from xiaonet.edge.windowing import STACKING_METHODS

logger = logging.getLogger(__name__)

# --- The engine --------------------------------------------------------------------------


class StreamingPicker(SegmentWindows, PickEmission, PacketConsumer):
    """Per-station streaming picking with any picker of the project's interface.

    :param picker: a :class:`xiaonet.picking.pickers.ModelPicker` (student or teacher), an ONNX
        ``xiaonet.edge.onnx_model.EdgeModel``, or any :class:`WindowPredictor`. For STA/LTA use
        :class:`StreamingStaLta` (or :func:`make_streaming_picker`, which picks the engine).
    :param config: :class:`StreamingConfig`.
    :param note: called with a message for every fault worth telling a person about.
    """

    def __init__(self, picker, config: StreamingConfig | None = None,
                 note: Callable[[str], None] | None = None):
        self.config = config or StreamingConfig()
        self.note = note or logger.warning
        if hasattr(picker, "predict") and hasattr(picker, "in_samples"):
            self.predictor = picker
        elif hasattr(picker, "predict") and hasattr(picker, "metadata"):
            self.predictor = predictor_from_edge_model(picker)
        elif hasattr(getattr(picker, "model", None), "metadata"):  # an EdgePicker: its model, its thresholds
            self.predictor = predictor_from_edge_model(picker.model)
            self.predictor.name = picker.name
            self.predictor.thresholds.update(picker.thresholds)
        elif hasattr(picker, "window_predictor"):  # a torch model picker brings its own (torch stays out)
            self.predictor = picker.window_predictor()
        else:
            raise TypeError(
                f"{picker!r}: StreamingPicker needs a model picker or a WindowPredictor; "
                "for STA/LTA use xiaonet.stream.streaming_stalta.StreamingStaLta"
            )
        p = self.predictor
        if p.stacking not in STACKING_METHODS:
            raise ValueError(f"{p.name}: stacking '{p.stacking}' is not supported ({STACKING_METHODS})")
        self.picker_name = p.name
        self.labels = tuple(p.labels)
        phases = [ph for ph in ("P", "S") if ph in self.labels]
        # Only the P and S probabilities are stacked and kept (row i = phases[i]).
        self.phase_rows = [self.labels.index(ph) for ph in phases]
        self.phase_channels = {ph: i for i, ph in enumerate(phases)}
        self.component_index = component_index(p.component_order)
        self._snr_rows = {ph: snr_components(ph, p.component_order) for ph in phases}
        self.signal_s = signal_seconds(self.config.lookahead if self.config.mode == "low-latency" else None)
        self.in_samples = int(p.in_samples)
        if self.config.mode == "offline":
            self.step = self.in_samples - int(p.overlap)
            self.lookahead = 0
        else:
            if self.config.window is not None:
                if not p.dynamic_length:
                    raise ValueError(f"{p.name}: window= needs a fully convolutional model (the "
                                     f"student); this model takes exactly {p.in_samples} samples")
                self.in_samples = int(round(self.config.window * p.sampling_rate))
            self.step = max(1, int(round(self.config.hop * p.sampling_rate)))
            self.lookahead = int(round(self.config.lookahead * p.sampling_rate))
            if self.lookahead + self.step > self.in_samples:
                raise ValueError(
                    f"lookahead + hop ({self.config.lookahead} + {self.config.hop} s) must fit "
                    f"in one {self.in_samples}-sample window"
                )
        if self.step <= 0:
            raise ValueError(f"{p.name}: overlap {p.overlap} leaves no step between windows")
        self.stations: dict[str, StationBuffer] = {}
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        self._dirty: set[str] = set()
        self._channel_keys: dict[tuple, tuple[str, int | None]] = {}
        self._warned: set[tuple[str, str]] = set()
        self._channel_rates: dict[tuple, float] = {}  # raw rate of every channel seen
        self._resamplers: dict[tuple, ChannelResampler] = {}  # channels at another rate
        self.model_seconds = 0.0

    # --- feeding -----------------------------------------------------------------------

    # feed / feed_many come from PacketConsumer: every batch of packets ends with one
    # batched prediction of all ready windows (process)

    def _after_packets(self) -> list[EmittedPick]:
        return self.process()

    def _drop(self, packet, error: Exception) -> None:
        self._warn_once(getattr(packet, "id", "?"), "bad packet",
                        f"{getattr(packet, 'id', '?')}: packet dropped: {type(error).__name__}: {error}")

    def process(self, flush: bool = False) -> list[EmittedPick]:
        """Advance every station with new data; ``flush=True`` ends every record."""
        if flush and self._resamplers:
            self._end_resampled_records({self._channel_keys[ids][0] for ids in self._resamplers})
        keys = list(self.stations) if flush else sorted(self._dirty)
        self._dirty.clear()
        windows: list[PendingWindow] = []
        touched: list[StationBuffer] = []
        for key in keys:
            station = self.stations[key]
            windows += self._advance(station, flush=flush)
            touched.append(station)
        self._predict(windows)
        emitted: list[EmittedPick] = []
        for station in touched:
            emitted += self._finalize(station)
        return sorted(emitted, key=lambda e: (e.pick.peak_time, e.pick.trace_id, e.pick.phase))

    def flush(self, station_keys: Iterable[str] | None = None) -> list[EmittedPick]:
        """End the records of all (or the given) stations: the end of data."""
        if station_keys is None:
            return self.process(flush=True)
        station_keys = list(station_keys)
        self._end_resampled_records(station_keys)
        windows: list[PendingWindow] = []
        stations = [self.stations[k] for k in station_keys if k in self.stations]
        for station in stations:
            windows += self._advance(station, flush=True)
        self._predict(windows)
        emitted = []
        for station in stations:
            emitted += self._finalize(station)
        return emitted

    def flush_idle(self, idle_seconds: float, now: float | None = None) -> list[EmittedPick]:
        """End the records of stations silent for ``idle_seconds`` (wall clock), free them.

        A station that sends again later starts afresh, as after a gap.
        """
        now = time.time() if now is None else now
        idle = [k for k, s in self.stations.items() if now - s.last_arrival > idle_seconds]
        if not idle:
            return []
        emitted = self.flush(idle)
        for key in idle:
            del self.stations[key]
            self._dirty.discard(key)
        for ids in [i for i in self._resamplers if self._channel_keys[i][0] in idle]:
            del self._resamplers[ids]
        return emitted

    def memory_bytes(self) -> int:
        """Bytes held in station buffers (the per-station state that grows with stations)."""
        return sum(s.nbytes() for s in self.stations.values())

    # --- packet intake -----------------------------------------------------------------

    def _warn_once(self, key: str, kind: str, message: str) -> None:
        if (key, kind) not in self._warned:
            self._warned.add((key, kind))
            self.note(message)

    def _accept(self, packet: obspy.Trace) -> list[EmittedPick]:
        stats = packet.stats
        self.counters["packets"] += 1
        if stats.npts == 0:
            self.counters["empty_packets"] += 1
            return []
        channel = stats.channel
        ids = (stats.network, stats.station, stats.location, channel)
        cached = self._channel_keys.get(ids)
        if cached is None:
            key = f"{stats.network}.{stats.station}.{stats.location}.{channel[:-1]}"
            cached = self._channel_keys[ids] = (key, self.component_index.get(channel[-1:]))
        key, component = cached
        if component is None:
            self.counters["unknown_component_packets"] += 1
            self._warn_once(key, f"component {channel}", f"{packet.id}: component '{channel[-1:]}' is "
                            f"not one of {self.predictor.component_order} (or 1/2); ignored")
            return []
        data = np.asarray(packet.data)
        if not np.issubdtype(data.dtype, np.number):
            raise ValueError(f"non-numeric samples ({data.dtype})")
        rate = float(stats.sampling_rate)
        model_rate = float(self.predictor.sampling_rate)
        emitted: list[EmittedPick] = []
        previous = self._channel_rates.get(ids)
        if previous is not None and abs(previous - rate) > 1e-6 * rate:
            # The channel goes on at another rate: its samples at the old rate are handed over
            # (a resampled record ends there), the new ones are resampled, as offline picking
            # resamples each trace of a record to the model's rate.
            self.counters["rate_changes"] += 1
            self.note(f"{packet.id}: sampling rate changed from {previous:g} to {rate:g} Hz")
            old = self._resamplers.pop(ids, None)
            if old is not None:
                for piece in old.end_record():
                    emitted += self._accept_samples(piece, key, component, np.asarray(piece.data))
        self._channel_rates[ids] = rate
        if abs(rate - model_rate) <= 1e-6 * rate:
            return emitted + self._accept_samples(packet, key, component, data)
        if not (MIN_SAMPLING_RATE <= rate <= MAX_SAMPLING_RATE):
            self.counters["unsupported_rate_packets"] += 1
            self._warn_once(key, f"rate {rate}", f"{packet.id}: {rate:g} Hz is outside the supported "
                            f"{MIN_SAMPLING_RATE:g}-{MAX_SAMPLING_RATE:g} Hz; packets dropped")
            return emitted
        # Another rate: resampled to the model's as it arrives, as offline picking resamples
        resampler = self._resamplers.get(ids)
        if resampler is None:
            # offline mode: the offline result's context; low-latency: a short one (latency)
            margin = None if self.config.mode == "offline" else LOW_LATENCY_MARGIN_S
            resampler = self._resamplers[ids] = ChannelResampler(rate, model_rate, self.config.reorder_window,
                                                                 margin_s=margin)
            low = " (little of the model's band survives: expect fewer picks)" if (
                rate * LOW_RATE_FACTOR <= model_rate) else ""
            how = "as offline" if margin is None else f"with {margin:g} s of context"
            self._warn_once(key, f"resample {rate}", f"{packet.id}: {rate:g} Hz resampled to "
                            f"{model_rate:g} Hz for {self.picker_name}, {how}{low}")
        self.counters["resampled_packets"] += 1
        duplicates = resampler.duplicates
        for piece in resampler.feed(packet):
            emitted += self._accept_samples(piece, key, component, np.asarray(piece.data))
        self.counters["duplicate_packets"] += resampler.duplicates - duplicates
        return emitted

    def _end_resampled_records(self, keys) -> None:
        """Hand the last samples of every resampled channel of these stations to their buffers."""
        keys = set(keys)
        for ids, resampler in list(self._resamplers.items()):
            key, component = self._channel_keys[ids]
            if key in keys:
                for piece in resampler.end_record():
                    self._accept_samples(piece, key, component, np.asarray(piece.data))

    def _accept_samples(self, packet: obspy.Trace, key: str, component: int,
                        data: np.ndarray) -> list[EmittedPick]:
        """Samples at the model's rate into the station buffer."""
        stats = packet.stats
        rate = float(stats.sampling_rate)
        emitted: list[EmittedPick] = []
        station = self.stations.get(key)
        if station is None:
            station = self._new_station(key, stats, rate)
        start = station.index_of(stats.starttime, component)
        if start - station.processed > int(self.config.max_ahead * rate) and station.seen.any():
            self.counters["resyncs"] += 1
            self.note(f"{key}: packet at {stats.starttime} is more than {self.config.max_ahead:g} s "
                      "ahead of the station's data; record ended and station restarted there")
            emitted += self.flush([key])
            station = self._new_station(key, stats, rate)
            start = station.index_of(stats.starttime, component)
        self._write(station, component, start, data)
        station.last_arrival = time.time()
        self._dirty.add(key)
        return emitted

    def _new_station(self, key: str, stats, rate: float) -> StationBuffer:
        # One window, one step and a few packets; grows (doubling) only while a channel lags.
        capacity = self.in_samples + self.step + 1024
        station = StationBuffer(key, f"{stats.network}.{stats.station}.{stats.location}", rate,
                           obspy.UTCDateTime(stats.starttime), len(self.predictor.component_order),
                           len(self.phase_rows), capacity, start_margin=int(round(rate)),
                           history=snr_span(rate)[0])
        self.stations[key] = station
        return station

    def _write(self, station: StationBuffer, component: int, start: int, data: np.ndarray) -> None:
        n = data.size
        stop = start + n
        self.counters["samples"] += n
        if (station.seen[component] and start == station.end[component] and start >= station.processed
                and not np.ma.isMaskedArray(data)):
            # Fast path, the usual case: the channel's next packet, in order, all finite.
            values = data.astype(np.float32, copy=False)
            if np.isfinite(values).all():
                station.ensure(stop, self._window_start)
                lo, hi = start - station.base, stop - station.base
                station.data[component, lo:hi] = values
                station.present[component, lo:hi] = True
                station.end[component] = stop
                if station.contiguous[component] == start:
                    station.contiguous[component] = stop
                station.recent_packets[station.recent_next % station.recent_packets.size] = hash(
                    (component, start, n))
                station.recent_next += 1
                if station.stopped[component]:
                    self._resume(station, component)
                return
        end = int(station.end[component]) if station.seen[component] else None
        base = station.base
        # Samples before the processed frontier can no longer be used: duplicates or late.
        first = max(start, station.processed)
        old_all_present = True
        if first > start:
            lo = max(start, base)
            hi = min(stop, station.processed)
            old_all_present = start >= base and bool(station.present[component, lo - base:hi - base].all())
        signature = hash((component, start, n))
        if (station.recent_packets == signature).any():
            old_all_present = True  # the same record again, even if older than the buffer
        else:
            station.recent_packets[station.recent_next % station.recent_packets.size] = signature
            station.recent_next += 1
        if first >= stop:
            self.counters["duplicate_packets" if old_all_present else "late_packets"] += 1
            return
        station.ensure(stop, self._window_start)
        lo, hi = first - station.base, stop - station.base
        have = station.present[component, lo:hi]
        if np.ma.isMaskedArray(data):
            valid = ~np.ma.getmaskarray(data)[first - start:]
            values = np.asarray(data.filled(0)[first - start:], dtype=np.float32)
        else:
            values = np.asarray(data[first - start:], dtype=np.float32)
            valid = np.ones(values.size, dtype=bool)
        valid &= np.isfinite(values)  # NaN / inf samples are a gap, as offline
        if have.all() and old_all_present:
            self.counters["duplicate_packets"] += 1
            return
        if not old_all_present:
            self.counters["late_packets"] += 1
        elif end is not None and start < end:
            self.counters["overlapping_packets" if stop > end else "reordered_packets"] += 1
        write = valid & ~have
        np.copyto(station.data[component, lo:hi], values, where=write)
        station.present[component, lo:hi] |= write
        if not station.seen[component]:
            station.seen[component] = True
            station.end[component] = stop
            if self.config.mode != "offline":
                # Low latency first: the start margin before a component's first packet is no
                # hole to wait reorder_window for (a packet older than the first one is late);
                # offline mode waits, so shuffled first packets are used (its window costs more)
                station.contiguous[component] = max(int(station.contiguous[component]), first)
        else:
            station.end[component] = max(int(station.end[component]), stop)
        if station.stopped[component]:
            self._resume(station, component)

    def _resume(self, station: StationBuffer, component: int) -> None:
        station.stopped[component] = False
        self.note(f"{station.key}: component {self.predictor.component_order[component]} "
                  "sends data again")
