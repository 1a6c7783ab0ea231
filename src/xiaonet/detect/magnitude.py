"""Local magnitude (ML) of a located event from the horizontal records of its stations.

Each horizontal channel (a trace in counts with a response from StationXML, RESP, ...) is
made ground velocity (m/s) with its response removed, then the Wood-Anderson seismograph is
simulated on it with ObsPy's ``WOODANDERSON`` poles and zero (natural period 0.8 s, damping
0.8; one zero because its input is velocity) and static magnification 2080: the value
Uhrhammer & Collins (1990) measured on real Wood-Andersons, which the IASPEI standard (2013)
adopts (Richter's nominal 2800 overstates it, and Hutton & Boore 1987 fitted 2800-gain
records). The peak of the simulated record between the P arrival and ``S + max(3 s, S - P)``
(picks where the event has them, else times predicted by the velocity model) is the channel's
amplitude ``A`` (mm on the simulated drum), and

    ML = log10(A) + n log10(r / 100) + K (r - 100) + C          (r: hypocentral distance, km)

The default correction (``luckett``) is the IASPEI one with the short-distance term of Luckett
et al. (2019), ``- 1.16 exp(-0.2 r)``: below 10 km, where Hutton & Boore had no data, the
plain formula overestimates ML; beyond 20 km the term is under 0.02 units, so the default is
the IASPEI magnitude wherever that formula was calibrated. ``iaspei`` (n = 1.110, K = 0.00189,
C = 3.0) is Hutton & Boore's (1987) southern California correction, which the IASPEI standard writes in its equivalent form
``log10(A_nm) + 1.11 log10(r) + 0.00189 r - 2.09`` with ``A_nm`` the 2080 record divided by
2080, in nm. Every horizontal channel gives one station magnitude (as CISN and ANSS do: no
choice of how to combine two unrotated components); the event's ML is their median and its
spread 1.4826 times their median absolute deviation (a standard deviation robust to a few
bad channels).

Units are checked, not assumed: a channel is used only when its response runs from ground
motion (m, m/s or m/s**2) to counts, so a record without a response, or one already in m/s,
never becomes a magnitude in the wrong units. The response removal and the Wood-Anderson are
:mod:`xiaonet.detect.wood_anderson`'s (ObsPy's chain with what depends only on the channel
kept between calls). Everything here works on in-memory :class:`Record` s, so the same call
serves files (:func:`detection_magnitudes`) and a stream's buffers (``data_end``: an event
version's ML from the data that had arrived when it was declared, each window cut where that
record stops, so an early ML is a lower bound until S is in; ``measured``: amplitudes of
windows complete at an earlier version, not measured again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Mapping

import numpy as np
import obspy
from obspy.core.compatibility import round_away
from obspy.geodetics import gps2dist_azimuth

from xiaonet.detect.velocity import HomogeneousModel, LayeredModel, travel_time_table
from xiaonet.detect.wood_anderson import TAPER_FRACTION, TAPER_MAX_S, WOOD_ANDERSON_SENSITIVITY, ChannelResponses

PAD_S = 2 * TAPER_MAX_S  # record kept either side of the window, so the taper and filters settle before P
MIN_AFTER_S_S = 3.0  # the window runs to S + max(3 s, S - P): the S waves and their first coda
# a record cut by the stream's clock: under half the Wood-Anderson's natural period (0.8 s) after
# P there is no peak to measure yet
MIN_AFTER_P_S = 0.4
DEFAULT_MODEL = HomogeneousModel(6.0, 3.46)  # crustal average, for predicted times without a model


class MagnitudeError(ValueError):
    """A magnitude setting that cannot be used (the message says what was expected)."""


@dataclass(frozen=True)
class DistanceCorrection:
    """``-log10 A0(r) = n log10(r / 100) + k (r - 100) + c + near exp(-r / near_km)`` (r
    hypocentral, km; A in mm). The last term (Luckett et al. 2019) is zero unless set."""

    name: str
    n: float
    k: float
    c: float = 3.0
    near: float = 0.0
    near_km: float = 5.0
    source: str = ""

    def minus_log_a0(self, r_km):
        r_km = np.asarray(r_km, float)
        return (self.n * np.log10(r_km / 100.0) + self.k * (r_km - 100.0) + self.c
                + self.near * np.exp(-r_km / self.near_km))

    def describe(self) -> str:
        near = f", {self.near:+g} exp(-r/{self.near_km:g} km)" if self.near else ""
        source = f"; {self.source}" if self.source else ""
        return f"{self.name} (n={self.n:g}, K={self.k:g}, C={self.c:g}{near}{source})"


# Hutton & Boore fitted amplitudes at 10-700 km; nearer, the scale overestimates (up to a unit)
CALIBRATED_FROM_KM = 10.0
DISTANCE_CORRECTIONS = {
    "iaspei": DistanceCorrection("iaspei", 1.110, 0.00189, 3.0,
                                 source="IASPEI 2013 standard = Hutton & Boore 1987, southern California, 10-700 km"),
    # Luckett, Ottemoller, Butcher & Baptie (2019, GJI 216): IASPEI - 1.16 exp(-0.2 r), fitted in
    # the British Isles and checked in central Italy and Norway; the British Geological Survey's ML
    "luckett": DistanceCorrection("luckett", 1.110, 0.00189, 3.0, near=-1.16, near_km=5.0,
                                  source="IASPEI + Luckett et al. 2019 short-distance term"),
    # Bakun & Joyner (1984): log10 r + 0.00301 r + 0.7, written in the same form
    "bakun-joyner": DistanceCorrection("bakun-joyner", 1.0, 0.00301, 2.0 + 0.301 + 0.7,
                                       source="Bakun & Joyner 1984, central California"),
}


#: IASPEI with Luckett et al.'s short-distance term (equal to IASPEI beyond ~20 km).
DEFAULT_CORRECTION = "luckett"


def distance_correction(spec: str) -> DistanceCorrection:
    """A named correction (``iaspei``, ``luckett``, ``bakun-joyner``) or ``N,K[,C]`` for a regional one."""
    if spec in DISTANCE_CORRECTIONS:
        return DISTANCE_CORRECTIONS[spec]
    try:
        values = [float(v) for v in spec.split(",")]
        if len(values) not in (2, 3):
            raise ValueError
    except ValueError:
        raise MagnitudeError(f"--ml-correction {spec!r}: expected one of {', '.join(DISTANCE_CORRECTIONS)} "
                             "or N,K[,C] for -log A0 = N log10(r/100) + K (r-100) + C") from None
    return DistanceCorrection("custom", *values)


@dataclass
class StationMagnitude:
    """One horizontal channel's ML: its Wood-Anderson peak ``amplitude_mm`` (magnification
    2080) at ``peak_time``, measured in ``window``, at ``distance_km`` (hypocentral)."""

    seed_id: str
    amplitude_mm: float
    peak_time: obspy.UTCDateTime
    window: tuple[obspy.UTCDateTime, obspy.UTCDateTime]
    epicentral_km: float
    distance_km: float
    ml: float
    complete: bool = True  # the window reached S + coda (False: cut where a stream's record stopped)


@dataclass
class EventMagnitude:
    """The event's ML (median of the station magnitudes), ``spread`` (1.4826 MAD), the station
    magnitudes used, and why other channels gave none (``skipped``: reason -> seed ids)."""

    ml: float | None
    spread: float | None
    stations: list[StationMagnitude]
    correction: DistanceCorrection
    skipped: dict[str, list[str]] = field(default_factory=dict)

    @property
    def n_stations(self) -> int:
        return len({".".join(s.seed_id.split(".")[:2]) for s in self.stations})

    @property
    def n_complete_stations(self) -> int:
        """Stations with a channel whose window reached S + coda (all of them offline)."""
        return len({".".join(s.seed_id.split(".")[:2]) for s in self.stations if s.complete})

    @property
    def after_p_s(self) -> float | None:
        """Median seconds of data after P in the channels' windows (what an early ML stands on)."""
        if not self.stations:
            return None
        return float(np.median([s.window[1] - s.window[0] for s in self.stations]))

    def summary(self) -> str:
        skipped = "; ".join(f"{len(ids)} {why}" if ids else why for why, ids in self.skipped.items())
        if self.ml is None:
            return f"no ML: {skipped or 'no horizontal records of its stations'}"
        partial = self.n_stations - self.n_complete_stations
        cut = (f", {partial} of them before S + coda (median {self.after_p_s:.1f} s after P)" if partial else "")
        return (f"ML {self.ml:.2f} ± {self.spread:.2f} from {len(self.stations)} channels at {self.n_stations} "
                f"stations ({self.correction.name}){cut}" + (f"; not used: {skipped}" if skipped else ""))


def read_responses(path) -> "obspy.Inventory":
    """Instrument responses from anything ObsPy reads as an inventory (StationXML, RESP, dataless SEED)."""
    from pathlib import Path

    if not Path(path).is_file():
        raise MagnitudeError(f"{path}: response file not found")
    try:
        return obspy.read_inventory(str(path))
    except Exception as error:  # ObsPy raises many types for unreadable files
        raise MagnitudeError(f"{path}: expected instrument responses (StationXML, RESP, dataless SEED): "
                             f"{type(error).__name__}: {error}") from None


def is_horizontal(seed_id: str) -> bool:
    """Components N/E, 1/2 (unrotated) or R/T; Z and anything else is left out."""
    channel = seed_id.rsplit(".", 1)[-1]
    return channel[-1:].upper() in "NE12RT" and len(channel) == 3


@dataclass(frozen=True)
class Record:
    """One channel's samples (``data``, counts) from ``start`` at ``sampling_rate``: a trace
    without ObsPy's header, which costs more to copy than a window costs to filter."""

    seed_id: str
    start: obspy.UTCDateTime
    sampling_rate: float
    data: np.ndarray

    @classmethod
    def of(cls, trace: obspy.Trace) -> "Record":
        return cls(trace.id, trace.stats.starttime, trace.stats.sampling_rate, trace.data)

    @property
    def end(self) -> obspy.UTCDateTime:
        """The last sample's time (as ObsPy's ``Stats.endtime``)."""
        span = float(len(self.data) - 1) * (1.0 / self.sampling_rate) if len(self.data) else 0.0
        return obspy.UTCDateTime(ns=self.start.ns + int(round(span * 1e9)))

    def slice(self, start, end) -> "Record":
        """The samples nearest ``start`` to ``end``, as ``Trace.slice`` picks them."""
        first = max(0, round_away((start - self.start) * self.sampling_rate))
        begins = self.start + first * (1.0 / self.sampling_rate) if first else self.start
        if first >= len(self.data) or end < begins:
            return Record(self.seed_id, begins, self.sampling_rate, self.data[:0])
        count = 1 if end == begins else round_away((end - begins) * self.sampling_rate) + 1
        return Record(self.seed_id, begins, self.sampling_rate, self.data[first:first + count])


def predicted_times(model, epicentral_km: np.ndarray, depth_km: float) -> tuple[np.ndarray, np.ndarray]:
    """First P and S travel times (s) to surface stations, from the model that located the event."""
    epicentral_km = np.asarray(epicentral_km, float)
    if isinstance(model, HomogeneousModel):
        hypocentral = np.hypot(epicentral_km, depth_km)
        return hypocentral / model.vp, hypocentral / model.vs
    if not isinstance(model, LayeredModel):
        raise MagnitudeError(f"predicted arrivals need a 0D or 1D velocity model, got {type(model).__name__}")
    if not len(epicentral_km):  # every arrival picked: no table to build
        return epicentral_km, epicentral_km
    delta = 0.25
    table = travel_time_table(model, delta, float(epicentral_km.max(initial=0.0)) + 2 * delta,
                              max(depth_km, 0.0) + 2 * delta)
    return table.time("P", epicentral_km, max(depth_km, 0.0)), table.time("S", epicentral_km, max(depth_km, 0.0))


def window_end(p: obspy.UTCDateTime, s: obspy.UTCDateTime) -> obspy.UTCDateTime:
    """Where a channel's amplitude window ends: ``S + max(MIN_AFTER_S_S, S - P)``, the S waves
    and their first coda (its record runs PAD_S beyond)."""
    return s + max(MIN_AFTER_S_S, s - p)


@lru_cache(maxsize=4096)
def _epicentral_m(latitude: float, longitude: float, station_latitude: float, station_longitude: float) -> float:
    """Metres on the ellipsoid (each channel of a station, each call of a stream's versions: once)."""
    return gps2dist_azimuth(latitude, longitude, station_latitude, station_longitude)[0]


def station_magnitudes(records: Iterable[Record], responses: ChannelResponses, origin,
                       arrivals: Mapping[str, Mapping[str, object]] | None = None, model=None,
                       correction: DistanceCorrection | str = DEFAULT_CORRECTION,
                       data_end=None, measured: dict | None = None) -> EventMagnitude:
    """ML of ``origin`` (anything with ``time``, ``latitude``, ``longitude``, ``depth_km``) from
    the horizontal ``records`` (counts; in memory: files or a stream's buffers).

    ``arrivals`` maps ``NET.STA`` to ``{"P": time, "S": time}`` (either may be missing: it is
    predicted with ``model``); stations absent from it are used with predicted times.
    ``responses`` (:class:`ChannelResponses` of the inventory) gives the responses and station
    coordinates.

    ``data_end`` (a stream's clock when an event version is declared): only data up to then
    is used, and a window that the record does not reach yet ends where the record's taper
    begins (``complete`` False; at least :data:`MIN_AFTER_P_S` after P). A record that
    reaches ``S + coda + PAD_S`` gives what it gives without ``data_end``; with ``measured``
    (a dict kept between the calls of one stream) such a window's amplitude is kept there
    under (seed id, P, window end) and not measured again by a later call.
    """
    correction = distance_correction(correction) if isinstance(correction, str) else correction
    arrivals = arrivals or {}
    skipped: dict[str, list[str]] = {}
    channels = []
    for record in records:
        if not is_horizontal(record.seed_id):
            continue
        problem = responses.problem(record.seed_id, record.start)
        if problem:
            skipped.setdefault(problem, []).append(record.seed_id)
            continue
        channels.append((record, responses.channel(record.seed_id, record.start)))
    if not channels:
        return EventMagnitude(None, None, [], correction, skipped)
    epicentral = np.array([_epicentral_m(origin.latitude, origin.longitude, c.latitude, c.longitude)
                           for _, c in channels]) / 1000.0
    picks = [arrivals.get(record.seed_id.rsplit(".", 2)[0], {}) for record, _ in channels]
    unpicked = [i for i, picked in enumerate(picks) if picked.get("P") is None or picked.get("S") is None]
    travel = dict(zip(unpicked, zip(*predicted_times(model or DEFAULT_MODEL, epicentral[unpicked], origin.depth_km))))
    data_end = None if data_end is None else obspy.UTCDateTime(data_end)
    results = []
    for i, ((record, channel), epi, picked) in enumerate(zip(channels, epicentral, picks)):
        p = obspy.UTCDateTime(picked["P"]) if picked.get("P") is not None else origin.time + float(travel[i][0])
        s = obspy.UTCDateTime(picked["S"]) if picked.get("S") is not None else origin.time + float(travel[i][1])
        full_end = end = window_end(p, s)
        stop = end + PAD_S
        if data_end is not None:
            stop = min(stop, data_end, record.end)
            if stop - p < MIN_AFTER_P_S:
                skipped.setdefault(f"with under {MIN_AFTER_P_S:g} s of data after P yet", []).append(record.seed_id)
                continue
        if record.start > p - PAD_S / 2 or (data_end is None and record.end < end):
            skipped.setdefault("whose record does not cover P to S + coda", []).append(record.seed_id)
            continue
        # the whole window is there (S + coda + PAD_S): a later call measures the same samples
        whole = measured is not None and min(stop, record.end) == full_end + PAD_S
        known = (record.seed_id, p.ns, full_end.ns)
        if whole and known in measured:
            amplitude, peak_time = measured[known]
        else:
            piece = record.slice(p - PAD_S, stop)
            if data_end is not None:  # the amplitude is never read where the taper scales the record down
                taper_s = min(TAPER_FRACTION * (piece.end - piece.start), TAPER_MAX_S)
                end = min(end, piece.end - taper_s - 1.0 / piece.sampling_rate)
                if end - p < MIN_AFTER_P_S:
                    skipped.setdefault(f"with under {MIN_AFTER_P_S:g} s of data after P yet", []).append(record.seed_id)
                    continue
            if np.ma.is_masked(piece.data) or not np.all(np.isfinite(piece.data)):
                skipped.setdefault("with gaps in the window", []).append(record.seed_id)
                continue
            simulated = responses.wood_anderson_mm(record.seed_id, record.start, piece.data, piece.sampling_rate)
            window = Record(record.seed_id, piece.start, piece.sampling_rate, simulated).slice(p, end)
            peak = int(np.argmax(np.abs(window.data)))
            amplitude = float(abs(window.data[peak]))
            peak_time = window.start + peak * (1.0 / window.sampling_rate)
            if whole:
                measured[known] = (amplitude, peak_time)
        if not amplitude > 0:
            skipped.setdefault("with a flat record", []).append(record.seed_id)
            continue
        distance = float(np.hypot(epi, origin.depth_km + (channel.elevation or 0.0) / 1000.0))
        distance = max(distance, 1e-3)
        ml = float(np.log10(amplitude) + correction.minus_log_a0(distance))
        results.append(StationMagnitude(record.seed_id, amplitude, peak_time, (p, end), float(epi), distance, ml,
                                        complete=end >= full_end))
    return event_magnitude(results, correction, skipped)


def event_magnitude(stations: list[StationMagnitude], correction: DistanceCorrection | str = DEFAULT_CORRECTION,
                    skipped: dict[str, list[str]] | None = None) -> EventMagnitude:
    """The median of the station magnitudes and 1.4826 x their median absolute deviation."""
    correction = distance_correction(correction) if isinstance(correction, str) else correction
    if not stations:
        return EventMagnitude(None, None, [], correction, skipped or {})
    values = np.array([s.ml for s in stations])
    median = float(np.median(values))
    spread = float(1.4826 * np.median(np.abs(values - median)))
    return EventMagnitude(median, spread, list(stations), correction, skipped or {})


def event_arrivals(picks, event) -> dict[str, dict[str, obspy.UTCDateTime]]:
    """``NET.STA -> {phase: time}`` of the picks associated with ``event`` (the first per phase);
    ``picks``: the associated pick frame (``Detection.picks``)."""
    arrivals: dict[str, dict[str, obspy.UTCDateTime]] = {}
    for pick in picks.loc[event.pick_rows].sort_values("timestamp").itertuples():
        arrivals.setdefault(pick.id, {}).setdefault(pick.phase, obspy.UTCDateTime(pick.timestamp))
    return arrivals


def read_event_waveforms(files: Iterable, stations: set[str], start, end, note=None) -> list[Record]:
    """The horizontal records of ``stations`` (``NET.STA``) between ``start`` and ``end`` from
    waveform files; a file ObsPy cannot read is passed to ``note`` (raised without one)."""
    from xiaonet.data.waveforms import WaveformInputError, read_waveform_file

    stream = obspy.Stream()
    for path in files:
        try:
            traces = read_waveform_file(path, note=note, starttime=start, endtime=end)
        except WaveformInputError as error:  # one unreadable file costs its channels, said in a note
            if note is None:
                raise
            note(str(error))
            continue
        for trace in traces:
            if f"{trace.stats.network}.{trace.stats.station}" in stations and is_horizontal(trace.id):
                stream.append(trace)
    stream.merge(method=0)  # overlapping records at the same channel become gaps, never summed
    return [Record.of(trace) for trace in stream]


def detection_magnitudes(detection, files: list, inventory, model,
                         correction: DistanceCorrection | str = DEFAULT_CORRECTION, note=None) -> dict[int, EventMagnitude]:
    """ML of every event of a detection from waveform files: the stations with associated picks
    (``inventory``: ObsPy's, for the responses and coordinates)."""
    responses = ChannelResponses(inventory)
    results = {}
    for event in detection.events:
        arrivals = event_arrivals(detection.picks, event)
        times = [t for phases in arrivals.values() for t in phases.values()]
        start = min([event.time, *times]) - 2 * PAD_S
        end = max(times, default=event.time) + 4 * PAD_S + 2 * (max(times, default=event.time) - event.time)
        records = read_event_waveforms(files, set(arrivals), start, end, note)
        results[event.number] = station_magnitudes(records, responses, event, arrivals, model, correction)
    return results


def add_to_quakeml(event, origin, result: EventMagnitude, creation_info=None) -> None:
    """Append the ``Amplitude`` (IASPEI's IAML: the Wood-Anderson peak at magnification 1, in
    m), ``StationMagnitude`` and ``Magnitude`` objects of ``result`` to the ObsPy ``event``, and
    make the magnitude its preferred one. Nothing is added without a magnitude."""
    from obspy.core.event import (Amplitude, Comment, Magnitude, QuantityError, ResourceIdentifier,
                                  StationMagnitude as QuakeMLStationMagnitude, StationMagnitudeContribution,
                                  TimeWindow, WaveformStreamID)

    if result.ml is None:
        return
    method = ResourceIdentifier(f"smi:xiaonet/magnitude/ML/{result.correction.name}")
    wood_anderson = ResourceIdentifier("smi:xiaonet/filter/wood-anderson-2080")
    contributions = []
    for station in result.stations:
        waveform = WaveformStreamID(seed_string=station.seed_id)
        amplitude = Amplitude(
            generic_amplitude=station.amplitude_mm / 1000.0 / WOOD_ANDERSON_SENSITIVITY, type="IAML", unit="m",
            category="point", magnitude_hint="ML", waveform_id=waveform, filter_id=wood_anderson,
            time_window=TimeWindow(begin=float(station.peak_time - station.window[0]),
                                   end=float(station.window[1] - station.peak_time), reference=station.peak_time),
            evaluation_mode="automatic", creation_info=creation_info)
        magnitude = QuakeMLStationMagnitude(
            origin_id=origin.resource_id, mag=round(station.ml, 3), station_magnitude_type="ML",
            amplitude_id=amplitude.resource_id, method_id=method, waveform_id=waveform, creation_info=creation_info)
        event.amplitudes.append(amplitude)
        event.station_magnitudes.append(magnitude)
        contributions.append(StationMagnitudeContribution(station_magnitude_id=magnitude.resource_id, weight=1.0))
    magnitude = Magnitude(
        mag=round(result.ml, 3), mag_errors=QuantityError(uncertainty=round(result.spread, 3)), magnitude_type="ML",
        origin_id=origin.resource_id, method_id=method, station_count=result.n_stations,
        station_magnitude_contributions=contributions, evaluation_mode="automatic", creation_info=creation_info,
        comments=[Comment(text=f"median of {len(result.stations)} horizontal-channel magnitudes, uncertainty "
                               f"1.4826 x their median absolute deviation; Wood-Anderson (T0 0.8 s, h 0.8, "
                               f"magnification 2080) simulated after removing the response; distance correction "
                               f"{result.correction.describe()}")])
    event.magnitudes.append(magnitude)
    event.preferred_magnitude_id = magnitude.resource_id


def near_source_note(result: EventMagnitude) -> str | None:
    """A warning when most station magnitudes lie nearer than the correction was fitted."""
    if result.ml is None or result.correction.near or not result.stations:
        return None
    near = sum(s.distance_km < CALIBRATED_FROM_KM for s in result.stations)
    if near * 2 <= len(result.stations):
        return None
    return (f"{near} of {len(result.stations)} station magnitudes are within {CALIBRATED_FROM_KM:g} km, where a "
            f"correction without a short-distance term ({result.correction.name}) overestimates ML; "
            "--ml-correction luckett adds the term of Luckett et al. (2019)")
