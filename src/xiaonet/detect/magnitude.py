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
never becomes a magnitude in the wrong units. Everything here works on in-memory traces, so
the same call serves files (:func:`detection_magnitudes`) and a stream's buffers
(``data_end``: an event version's ML from the data that had arrived when it was declared,
each window cut where that record stops, so an early ML is a lower bound until S is in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import obspy
from obspy.geodetics import gps2dist_azimuth
from obspy.signal.invsim import WOODANDERSON

from xiaonet.detect.velocity import HomogeneousModel, LayeredModel, travel_time_table

GROUND_MOTION_UNITS = ("M", "M/S", "M/S**2", "M/S/S", "M/S2")
PRE_FILTER_LOW_HZ = (0.5, 1.0)  # below the Wood-Anderson's 1.25 Hz corner; deconvolving lower amplifies noise
PAD_S = 5.0  # record kept either side of the window, so the taper and filters settle before P
MIN_AFTER_S_S = 3.0  # the window runs to S + max(3 s, S - P): the S waves and their first coda
TAPER_FRACTION = 0.05  # of the record, at each end, at most PAD_S / 2
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


def is_horizontal(trace: obspy.Trace) -> bool:
    """Components N/E, 1/2 (unrotated) or R/T; Z and anything else is left out."""
    return trace.stats.channel[-1:].upper() in "NE12RT" and len(trace.stats.channel) == 3


def response_problem(inventory, seed_id: str, time) -> str | None:
    """Why the channel's response cannot make ground motion (None when it can)."""
    if inventory is None:
        return "without an instrument response"
    try:
        response = inventory.get_response(seed_id, time)
    except Exception:  # ObsPy raises a bare Exception when the channel is not in the inventory
        return "without an instrument response"
    sensitivity = response.instrument_sensitivity
    if sensitivity is None or not sensitivity.value or not response.response_stages:
        return "without an instrument response"
    units = (sensitivity.input_units or "").upper().replace(" ", "")
    if units not in GROUND_MOTION_UNITS:
        return f"with a response from {sensitivity.input_units or 'unknown units'}, not ground motion (m, m/s, m/s**2)"
    return None


def wood_anderson_mm(trace: obspy.Trace, inventory) -> obspy.Trace:
    """The trace (counts) as a Wood-Anderson record in mm (magnification 2080)."""
    trace = trace.copy()
    trace.detrend("demean")
    trace.taper(TAPER_FRACTION, max_length=PAD_S / 2)
    nyquist = 0.5 * trace.stats.sampling_rate
    pre_filt = (*PRE_FILTER_LOW_HZ, 0.8 * nyquist, 0.9 * nyquist)
    trace.remove_response(inventory=inventory, output="VEL", pre_filt=pre_filt, water_level=None)
    trace.simulate(paz_remove=None, paz_simulate=WOODANDERSON)  # m/s in, metres on the drum x 2080 out
    trace.data *= 1000.0
    return trace


def predicted_times(model, epicentral_km: np.ndarray, depth_km: float) -> tuple[np.ndarray, np.ndarray]:
    """First P and S travel times (s) to surface stations, from the model that located the event."""
    epicentral_km = np.asarray(epicentral_km, float)
    if isinstance(model, HomogeneousModel):
        hypocentral = np.hypot(epicentral_km, depth_km)
        return hypocentral / model.vp, hypocentral / model.vs
    if not isinstance(model, LayeredModel):
        raise MagnitudeError(f"predicted arrivals need a 0D or 1D velocity model, got {type(model).__name__}")
    delta = 0.25
    table = travel_time_table(model, delta, float(epicentral_km.max(initial=0.0)) + 2 * delta,
                              max(depth_km, 0.0) + 2 * delta)
    return table.time("P", epicentral_km, max(depth_km, 0.0)), table.time("S", epicentral_km, max(depth_km, 0.0))


def station_magnitudes(stream: obspy.Stream, inventory, origin,
                       arrivals: Mapping[str, Mapping[str, object]] | None = None, model=None,
                       correction: DistanceCorrection | str = DEFAULT_CORRECTION,
                       data_end=None) -> EventMagnitude:
    """ML of ``origin`` (anything with ``time``, ``latitude``, ``longitude``, ``depth_km``) from
    the horizontal traces in ``stream`` (counts; in memory: files or a stream's buffers).

    ``arrivals`` maps ``NET.STA`` to ``{"P": time, "S": time}`` (either may be missing: it is
    predicted with ``model``); stations absent from it are used with predicted times.
    ``inventory`` (ObsPy ``Inventory``) gives the responses and station coordinates.

    ``data_end`` (a stream's clock when an event version is declared): only data up to then
    is used, and a window that the record does not reach yet ends where the record's taper
    begins (``complete`` False; at least :data:`MIN_AFTER_P_S` after P). A record that
    reaches ``S + coda + PAD_S`` gives what it gives without ``data_end``.
    """
    correction = distance_correction(correction) if isinstance(correction, str) else correction
    arrivals = arrivals or {}
    skipped: dict[str, list[str]] = {}
    channels = []
    for trace in stream:
        if not is_horizontal(trace):
            continue
        problem = response_problem(inventory, trace.id, trace.stats.starttime)
        if problem is None:
            try:
                coordinates = inventory.get_coordinates(trace.id, trace.stats.starttime)
            except Exception:  # same bare Exception as get_response
                problem = "without station coordinates"
        if problem:
            skipped.setdefault(problem, []).append(trace.id)
            continue
        channels.append((trace, coordinates))
    if not channels:
        return EventMagnitude(None, None, [], correction, skipped)
    epicentral = np.array([gps2dist_azimuth(origin.latitude, origin.longitude, c["latitude"], c["longitude"])[0]
                           for _, c in channels]) / 1000.0
    p_travel, s_travel = predicted_times(model or DEFAULT_MODEL, epicentral, origin.depth_km)
    results = []
    for (trace, coordinates), epi, tp, ts in zip(channels, epicentral, p_travel, s_travel):
        key = f"{trace.stats.network}.{trace.stats.station}"
        picked = arrivals.get(key, {})
        p = obspy.UTCDateTime(picked["P"]) if picked.get("P") is not None else origin.time + float(tp)
        s = obspy.UTCDateTime(picked["S"]) if picked.get("S") is not None else origin.time + float(ts)
        full_end = end = s + max(MIN_AFTER_S_S, s - p)
        stop = end + PAD_S
        if data_end is not None:
            stop = min(stop, obspy.UTCDateTime(data_end), trace.stats.endtime)
            if stop - p < MIN_AFTER_P_S:
                skipped.setdefault(f"with under {MIN_AFTER_P_S:g} s of data after P yet", []).append(trace.id)
                continue
        if trace.stats.starttime > p - PAD_S / 2 or (data_end is None and trace.stats.endtime < end):
            skipped.setdefault("whose record does not cover P to S + coda", []).append(trace.id)
            continue
        piece = trace.slice(p - PAD_S, stop)
        if data_end is not None:  # the amplitude is never read where the taper scales the record down
            taper_s = min(TAPER_FRACTION * (piece.stats.endtime - piece.stats.starttime), PAD_S / 2)
            end = min(end, piece.stats.endtime - taper_s - piece.stats.delta)
            if end - p < MIN_AFTER_P_S:
                skipped.setdefault(f"with under {MIN_AFTER_P_S:g} s of data after P yet", []).append(trace.id)
                continue
        if np.ma.is_masked(piece.data) or not np.all(np.isfinite(piece.data)):
            skipped.setdefault("with gaps in the window", []).append(trace.id)
            continue
        record = wood_anderson_mm(piece, inventory).slice(p, end)
        peak = int(np.argmax(np.abs(record.data)))
        amplitude = float(abs(record.data[peak]))
        if not amplitude > 0:
            skipped.setdefault("with a flat record", []).append(trace.id)
            continue
        distance = float(np.hypot(epi, origin.depth_km + coordinates.get("elevation", 0.0) / 1000.0))
        distance = max(distance, 1e-3)
        ml = float(np.log10(amplitude) + correction.minus_log_a0(distance))
        results.append(StationMagnitude(trace.id, amplitude, record.stats.starttime + peak * record.stats.delta,
                                        (p, end), float(epi), distance, ml, complete=end >= full_end))
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


def read_event_waveforms(files: Iterable, stations: set[str], start, end, note=None) -> obspy.Stream:
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
            if f"{trace.stats.network}.{trace.stats.station}" in stations and is_horizontal(trace):
                stream.append(trace)
    stream.merge(method=0)  # overlapping records at the same channel become gaps, never summed
    return stream


def detection_magnitudes(detection, files: list, inventory, model,
                         correction: DistanceCorrection | str = DEFAULT_CORRECTION, note=None) -> dict[int, EventMagnitude]:
    """ML of every event of a detection from waveform files: the stations with associated picks."""
    results = {}
    for event in detection.events:
        arrivals = event_arrivals(detection.picks, event)
        times = [t for phases in arrivals.values() for t in phases.values()]
        start = min([event.time, *times]) - 2 * PAD_S
        end = max(times, default=event.time) + 4 * PAD_S + 2 * (max(times, default=event.time) - event.time)
        stream = read_event_waveforms(files, set(arrivals), start, end, note)
        results[event.number] = station_magnitudes(stream, inventory, event, arrivals, model, correction)
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
            generic_amplitude=station.amplitude_mm / 1000.0 / WOODANDERSON["sensitivity"], type="IAML", unit="m",
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
