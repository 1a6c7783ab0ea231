"""The magnitude of each event version of ``xiaonet stream --detect``, from the stream's own data.

The streaming engine keeps only the seconds its picker needs (about 10 s); a local magnitude
needs each station's record from a few seconds before its P pick to the end of the S coda.
:class:`WaveformRing` therefore keeps the last ``seconds`` of raw samples (counts, as they
arrived) of every horizontal channel that has a usable instrument response, one fixed-size
ring per channel: appending a packet is a copy into it, nothing more, and its memory is
known in advance (:attr:`WaveformRing.nbytes`). :class:`StreamedMagnitude` is the online
associator's ``magnitude`` hook: at each event version it takes the records of the stations
with picks up to the version's ``declared_at`` and measures them with
:func:`xiaonet.detect.magnitude.station_magnitudes` (``data_end``), the offline code, so a
final version whose records reach past S + coda has the ML ``xiaonet detect`` gives on the
same data and picks, and an earlier one says how much data after P it stood on.

What keeps it cheap enough to run inside the packet loop: the responses are looked up and
evaluated once (:class:`xiaonet.detect.wood_anderson.ChannelResponses`); a window complete to
S + coda is measured once and its amplitude reused by later versions (``measured``); a new
or updated version measures only ``early_stations`` of its stations, spread over their
distances to its epicentre (default :data:`EARLY_STATIONS`), the final version all of them; and between versions
(:meth:`StreamedMagnitude.settle`, as the clock advances) the windows that have become
complete are measured a few stations at a time, so the final version finds them measured.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import obspy

from xiaonet.detect.magnitude import (DEFAULT_CORRECTION, PAD_S, EventMagnitude, Record, distance_correction,
                                      is_horizontal, station_magnitudes, window_end)
from xiaonet.detect.stations import StationTable, read_inventory, read_station_inventory, read_stations
from xiaonet.detect.wood_anderson import ChannelResponses

#: Ring length beyond ``--detect-delay``: a final version comes that long after an event's last
#: pick (S at the farthest station) and needs the records from PAD_S before its first P; 60 s
#: holds events whose picks span up to about 50 s (S at about 180 km).
RING_MARGIN_S = 60.0
#: Stations a new or updated version's magnitude is measured at: of the stations with picks
#: sorted by distance to its epicentre, this many at evenly spaced ranks, nearest and farthest
#: included, so that their median estimates all stations' (on LASSO 2.54-2.55 against 2.53-2.57
#: at 30 of 110-358 stations; the 30 nearest, all within 1.2 km of the epicentre, gave 2.38 at
#: every time, complete data included: their station magnitudes run low). The final version
#: measures every station.
EARLY_STATIONS = 30


class _Channel:
    """One channel's ring: ``data`` (fixed size), ``filled`` samples held, the newest at
    ``head - 1``; sample ``k`` since ``anchor`` was recorded at ``anchor + k / rate``."""

    __slots__ = ("data", "rate", "anchor", "written", "head", "filled")

    def __init__(self, capacity: int, dtype, rate: float, anchor: obspy.UTCDateTime):
        self.data = np.zeros(capacity, dtype)
        self.rate, self.anchor = rate, anchor
        self.written = self.head = self.filled = 0

    @property
    def next_start(self) -> float:
        return self.anchor.timestamp + self.written / self.rate

    def write(self, samples: np.ndarray) -> None:
        if not np.can_cast(samples.dtype, self.data.dtype, "safe"):
            self.data = self.data.astype(np.promote_types(samples.dtype, self.data.dtype))
        capacity = len(self.data)
        self.written += len(samples)
        samples = samples[-capacity:]
        first = min(len(samples), capacity - self.head)
        self.data[self.head:self.head + first] = samples[:first]
        self.data[:len(samples) - first] = samples[first:]
        self.head = (self.head + len(samples)) % capacity
        self.filled = min(capacity, self.filled + len(samples))

    def span(self, start: float, end: float) -> tuple[obspy.UTCDateTime, np.ndarray] | None:
        """The held samples recorded in [start, end] (timestamps), oldest first."""
        oldest = self.written - self.filled  # sample count since anchor of the oldest held sample
        first = max(oldest, math.ceil((start - self.anchor.timestamp) * self.rate - 1e-6))
        last = min(self.written - 1, math.floor((end - self.anchor.timestamp) * self.rate + 1e-6))
        if last < first:
            return None
        capacity, count = len(self.data), last - first + 1
        begin = (self.head - (self.written - first)) % capacity
        if begin + count <= capacity:
            return self.anchor + first / self.rate, self.data[begin:begin + count].copy()
        return self.anchor + first / self.rate, np.concatenate((self.data[begin:], self.data[:begin + count - capacity]))


class WaveformRing:
    """The last ``seconds`` of raw samples of each kept channel (see the module docstring).

    ``refuse(packet)`` decides, once per channel, whether it is kept: ``None`` keeps it, a
    reason leaves it out (a non-empty one is kept in ``refused``, channel id -> reason, so a
    magnitude can say why a station gave none). A packet that does not
    follow its channel's last one (a gap, or a new sampling rate) starts the ring again
    (``counters["restarts"]``); one that overlaps data already held (late or repeated) is
    dropped (``counters["dropped"]``): the ring holds only contiguous, time-ordered samples.
    """

    def __init__(self, seconds: float, refuse=None):
        if not seconds > 0:
            raise ValueError(f"a waveform ring needs a positive length in seconds, got {seconds}")
        self.seconds = float(seconds)
        self.refuse = refuse or (lambda packet: None)
        self.channels: dict[str, _Channel] = {}
        self._ignored: set[str] = set()
        self.refused: dict[str, str] = {}
        self.counters = {"packets": 0, "restarts": 0, "dropped": 0}

    def append(self, packets) -> None:
        for packet in packets:
            key = packet.id
            if key in self._ignored:
                continue
            ring = self.channels.get(key)
            if ring is None:
                why = self.refuse(packet)
                if why is not None:
                    self._ignored.add(key)
                    if why:
                        self.refused[key] = why
                    continue
            stats, data = packet.stats, np.asarray(packet.data)
            if ring is not None and ring.rate == stats.sampling_rate:
                shift = (stats.starttime.timestamp - ring.next_start) * ring.rate
                if shift < -0.5:  # overlaps what is held
                    self.counters["dropped"] += 1
                    continue
                if shift > 0.5:  # a gap: start again after it
                    self.counters["restarts"] += 1
                    ring = None
            elif ring is not None:
                self.counters["restarts"] += 1
                ring = None
            if ring is None:
                capacity = max(1, int(math.ceil(self.seconds * stats.sampling_rate)))
                ring = self.channels[key] = _Channel(capacity, data.dtype, stats.sampling_rate, stats.starttime)
            ring.write(data)
            self.counters["packets"] += 1

    def records(self, stations, start, end) -> list[Record]:
        """The held records of ``stations`` (``NET.STA``) between ``start`` and ``end``."""
        stations = set(stations)
        start, end = obspy.UTCDateTime(start).timestamp, obspy.UTCDateTime(end).timestamp
        records = []
        for key, ring in self.channels.items():
            if key.rsplit(".", 2)[0] not in stations:
                continue
            held = ring.span(start, end)
            if held is not None:
                records.append(Record(key, held[0], ring.rate, held[1]))
        return records

    @property
    def nbytes(self) -> int:
        """Memory of the rings' samples (fixed once every channel has arrived)."""
        return sum(ring.data.nbytes for ring in self.channels.values())

    @property
    def n_stations(self) -> int:
        return len({key.rsplit(".", 2)[0] for key in self.channels})


class StreamedMagnitude:
    """The :class:`xiaonet.detect.online.OnlineAssociator` ``magnitude`` hook: the ML of an
    event version from ``ring``'s records of its stations up to ``declared_at``, measured as
    ``xiaonet detect`` measures it (``responses``: :class:`ChannelResponses` of the inventory;
    arrivals not picked predicted by ``model``; ``correction``). A version that is not final
    is measured at ``early_stations`` stations with picks spread over their distances to the
    epicentre (``stations``: their coordinates; None or 0: all). ``seconds``: the wall time
    of each call; ``settle_seconds``: of each :meth:`settle` that measured something."""

    def __init__(self, ring: WaveformRing, responses: ChannelResponses, model, correction=DEFAULT_CORRECTION,
                 stations: StationTable | None = None, early_stations: int | None = EARLY_STATIONS):
        if early_stations is not None and early_stations < 0:
            raise ValueError(f"--ml-stations {early_stations}: expected a number of stations (0: all)")
        self.ring, self.responses, self.model = ring, responses, model
        self.correction = distance_correction(correction) if isinstance(correction, str) else correction
        self.stations, self.early_stations = stations, early_stations
        self.measured: dict = {}  # (seed id, P, window end) -> amplitude, peak time: complete windows
        self._settling: dict = {}  # id(arrivals) -> (arrivals, clock seen, [(complete at, station)] still to do)
        self.seconds: list[float] = []
        self.settle_seconds: list[float] = []

    def _spread(self, event, arrivals: dict) -> dict:
        """``early_stations`` of the stations of ``arrivals`` that the ring holds, at evenly spaced
        ranks of their distance to the epicentre (the nearest and the farthest included)."""
        from obspy.geodetics import locations2degrees

        held = {key.rsplit(".", 2)[0] for key in self.ring.channels}
        where = self.stations.index()
        keys = sorted(k for k in arrivals if k in held and k in where)
        if len(keys) <= self.early_stations:
            return arrivals
        rows = [where[k] for k in keys]
        degrees = locations2degrees(event.latitude, event.longitude, self.stations.latitude[rows],
                                    self.stations.longitude[rows])
        by_distance = np.argsort(degrees, kind="stable")
        ranks = np.round(np.linspace(0, len(keys) - 1, self.early_stations)).astype(int)  # distinct: n > k
        return {keys[i]: arrivals[keys[i]] for i in sorted(by_distance[ranks])}

    def __call__(self, event, arrivals: dict, declared_at, final: bool = False) -> EventMagnitude:
        started = time.perf_counter()
        declared_at = obspy.UTCDateTime(declared_at)
        if not final and self.early_stations and self.stations is not None:
            arrivals = self._spread(event, arrivals)
        result = self._measure(event, arrivals, declared_at)
        for channel, why in self.ring.refused.items():  # channels never kept say why, as offline
            if channel.rsplit(".", 2)[0] in arrivals:
                result.skipped.setdefault(why, []).append(channel)
        self.seconds.append(time.perf_counter() - started)
        return result

    def settle(self, event, arrivals: dict, clock) -> None:
        """Between versions (called as the clock advances, with each open event's latest
        version): measure the windows of ``arrivals`` that have become complete (S + coda +
        PAD_S in the ring), at most ``early_stations`` stations a call, so that the final version finds
        them measured instead of measuring every station at once. Only stations with a P and an
        S pick: a predicted window waits for the final version."""
        clock = obspy.UTCDateTime(clock)
        if id(arrivals) not in self._settling:
            due = sorted(((window_end(obspy.UTCDateTime(phases["P"]), obspy.UTCDateTime(phases["S"])) + PAD_S).ns,
                          station) for station, phases in arrivals.items() if "P" in phases and "S" in phases)
            self._settling[id(arrivals)] = (arrivals, clock.ns, due)
        due = self._settling[id(arrivals)][2]
        ready = []
        while due and due[0][0] <= clock.ns and len(ready) < (self.early_stations or len(due)):
            ready.append(due.pop(0)[1])
        if ready:
            started = time.perf_counter()
            self._measure(event, {station: arrivals[station] for station in ready}, clock)
            self.settle_seconds.append(time.perf_counter() - started)
        oldest = (clock - self.ring.seconds).ns  # versions whose records the ring no longer holds
        self._settling = {k: v for k, v in self._settling.items() if v[1] >= oldest}

    def _measure(self, event, arrivals: dict, clock: obspy.UTCDateTime) -> EventMagnitude:
        """station_magnitudes of the ring's records of ``arrivals`` up to ``clock``."""
        times = [obspy.UTCDateTime(t) for phases in arrivals.values() for t in phases.values()]
        start = min([event.time, *times]) - 2 * PAD_S
        records = self.ring.records(arrivals, start, clock)
        result = station_magnitudes(records, self.responses, event, arrivals, self.model, self.correction,
                                    data_end=clock, measured=self.measured)
        oldest = (clock - self.ring.seconds).ns  # what the ring no longer holds is never measured again
        self.measured = {k: v for k, v in self.measured.items() if k[1] >= oldest}
        return result


class UnmeasuredMagnitude:
    """The hook when no magnitude can be measured: every version says why (``reason``)."""

    def __init__(self, reason: str, correction=DEFAULT_CORRECTION):
        self.reason = reason
        self.correction = distance_correction(correction) if isinstance(correction, str) else correction

    def __call__(self, event, arrivals: dict, declared_at, final: bool = False) -> EventMagnitude:
        return EventMagnitude(None, None, [], self.correction, {self.reason: []})

    def settle(self, event, arrivals: dict, clock) -> None:
        """Nothing to measure between versions."""


def detection_magnitude(station_file: str | Path, model, delay_s: float, correction=DEFAULT_CORRECTION,
                        seconds: float | None = None, early_stations: int | None = EARLY_STATIONS
                        ) -> tuple[StationTable, object, WaveformRing | None]:
    """What ``--detect STATION_FILE`` needs, from one reading of the file: the stations, the
    magnitude hook, and the ring to feed every packet (``None`` when nothing is measured).

    A CSV has no responses: every version says so. From StationXML (or any inventory ObsPy
    reads), the ring keeps the horizontal channels with a response from ground motion, for
    ``seconds`` (default ``delay_s`` + :data:`RING_MARGIN_S`); versions before the final one are
    measured at ``early_stations`` stations spread over distance (0 or None: all).
    """
    path = Path(station_file)
    if path.suffix.lower() == ".csv":
        return (read_stations(path),
                UnmeasuredMagnitude(f"{path} has no instrument responses (give StationXML)", correction), None)
    inventory = read_station_inventory(path)
    stations = read_inventory(inventory, name=str(path))
    responses = ChannelResponses(inventory)
    known = set(stations.ids)

    def refuse(packet) -> str | None:
        if f"{packet.stats.network}.{packet.stats.station}" not in known or not is_horizontal(packet.id):
            return ""  # no magnitude is measured there: nothing to say
        return responses.problem(packet.id, packet.stats.starttime)

    ring = WaveformRing(seconds if seconds is not None else delay_s + RING_MARGIN_S, refuse)
    return stations, StreamedMagnitude(ring, responses, model, correction, stations, early_stations), ring
