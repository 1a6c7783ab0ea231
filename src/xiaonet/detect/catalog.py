"""A :class:`~xiaonet.detect.association.Detection` written out: a QuakeML catalog (through
ObsPy), an events CSV (one row per event) and an assignment CSV (every input pick, with
the event it belongs to, empty when none, and its residual).

QuakeML: one ``Event`` per detection holding its picks (phase hint, the picker as
``method_id``, as :func:`xiaonet.data.picktable.quakeml_pick` makes them), one ``Origin``
(time, latitude, longitude, depth with one-sigma errors, the 90 % epicentre error ellipse,
quality: phase and station counts, RMS, azimuthal gap, distances) and one ``Arrival`` per
pick referring to it (phase, residual, distance, azimuth). Where a local magnitude was measured
(:mod:`xiaonet.detect.magnitude`) the event also holds its ``Amplitude``, ``StationMagnitude``
and ``Magnitude`` objects, and the events CSV its ``ml``, ``ml_spread`` and ``ml_channels``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TextIO

import numpy as np
import obspy

from xiaonet.data.picktable import PICK_COLUMNS, quakeml_pick
from xiaonet.detect.uncertainty import CONFIDENCE

EVENT_COLUMNS = ("event", "time", "latitude", "longitude", "depth_km", "time_error_s", "latitude_error_km",
                 "longitude_error_km", "depth_error_km", "horizontal_error_km", "rms_s", "n_picks", "n_p",
                 "n_s", "located_with", "n_stations", "station_fraction", "azimuthal_gap", "min_distance_km",
                 "max_distance_km", "ml", "ml_spread", "ml_channels")
ASSIGNMENT_COLUMNS = (*PICK_COLUMNS, "event", "residual_s")
KM_PER_DEGREE = 111.195


def _iso(time) -> str:
    return obspy.UTCDateTime(time).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fmt(value, digits: int) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def event_rows(detection, magnitudes: dict | None = None) -> list[dict]:
    """One row per event; ``magnitudes`` (event number -> :class:`~xiaonet.detect.magnitude.EventMagnitude`)
    fills ``ml``, ``ml_spread`` and ``ml_channels`` (empty without a magnitude)."""
    rows = []
    for event in detection.events:
        magnitude = (magnitudes or {}).get(event.number)
        has_ml = magnitude is not None and magnitude.ml is not None
        e = event.errors
        rows.append({
            "event": event.number, "time": _iso(event.time), "latitude": f"{event.latitude:.5f}",
            "longitude": f"{event.longitude:.5f}", "depth_km": f"{event.depth_km:.3f}",
            "time_error_s": _fmt(e.time_s, 3), "latitude_error_km": _fmt(e.y_km, 3),
            "longitude_error_km": _fmt(e.x_km, 3), "depth_error_km": _fmt(e.depth_km, 3),
            "horizontal_error_km": _fmt(e.major_km, 3), "rms_s": _fmt(e.rms_s, 3),
            "n_picks": len(event.pick_rows), "n_p": event.n_p, "n_s": event.n_s,
            "located_with": event.located_with, "n_stations": event.n_stations,
            "station_fraction": f"{event.station_fraction:.3f}",
            "azimuthal_gap": f"{event.azimuthal_gap:.1f}", "min_distance_km": f"{event.min_distance_km:.3f}",
            "max_distance_km": f"{event.max_distance_km:.3f}",
            "ml": f"{magnitude.ml:.2f}" if has_ml else "", "ml_spread": f"{magnitude.spread:.2f}" if has_ml else "",
            "ml_channels": len(magnitude.stations) if has_ml else "",
        })
    return rows


def assignment_rows(detection) -> list[dict]:
    rows = []
    for pick in detection.picks.itertuples(index=False):
        row = {column: ("" if _missing(getattr(pick, column)) else getattr(pick, column)) for column in PICK_COLUMNS}
        row["event"] = "" if pick.event < 0 else int(pick.event)
        row["residual_s"] = _fmt(pick.residual, 4)
        rows.append(row)
    return rows


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def write_rows(rows: list[dict], columns, destination: str | Path | TextIO) -> None:
    if isinstance(destination, (str, Path)):
        Path(destination).parent.mkdir(parents=True, exist_ok=True)
        with open(destination, "w", newline="") as handle:
            write_rows(rows, columns, handle)
        return
    writer = csv.DictWriter(destination, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def to_catalog(detection, method: str = "pyocto", magnitudes: dict | None = None) -> obspy.core.event.Catalog:
    from obspy.core.event import (Arrival, Catalog, Comment, CreationInfo, Event, Origin, OriginQuality,
                                  OriginUncertainty, ResourceIdentifier)
    from obspy.geodetics import gps2dist_azimuth

    coordinates = {sid: (la, lo) for sid, la, lo in
                   zip(detection.stations.ids, detection.stations.latitude, detection.stations.longitude)}
    info = CreationInfo(author="xiaonet", creation_time=obspy.UTCDateTime())
    catalog = Catalog(creation_info=info, description="xiaonet detect")
    for event in detection.events:
        e = event.errors
        picks = detection.picks.loc[event.pick_rows]
        out = Event(event_type="earthquake", event_type_certainty="suspected", creation_info=info)
        origin = Origin(
            time=event.time, latitude=event.latitude, longitude=event.longitude, depth=event.depth_km * 1000.0,
            time_errors=_error(e.time_s, 1.0), latitude_errors=_error(e.y_km, 1 / KM_PER_DEGREE),
            longitude_errors=_error(e.x_km, 1 / (KM_PER_DEGREE * np.cos(np.radians(event.latitude)))),
            depth_errors=_error(e.depth_km, 1000.0), depth_type="from location",
            method_id=ResourceIdentifier(f"smi:xiaonet/associator/{method}"),
            earth_model_id=ResourceIdentifier("smi:xiaonet/velocity/" + detection.model.split(" ")[0]),
            evaluation_mode="automatic", creation_info=info,
            comments=[Comment(text=f"velocity model: {detection.model}"),
                      Comment(text=f"located with {event.located_with} picks: {event.location_reason}")],
        )
        if np.isfinite(e.major_km):
            origin.origin_uncertainty = OriginUncertainty(
                max_horizontal_uncertainty=e.major_km * 1000.0, min_horizontal_uncertainty=e.minor_km * 1000.0,
                azimuth_max_horizontal_uncertainty=e.major_azimuth, preferred_description="uncertainty ellipse",
                confidence_level=100 * CONFIDENCE)
        for pick in picks.itertuples():
            qpick = quakeml_pick(pick.network, pick.station, pick.location, pick.phase, pick.time,
                                 None if _missing(pick.probability) else pick.probability, pick.picker,
                                 pick.channel, pick.uncertainty_s, pick.snr_db)
            out.picks.append(qpick)
            lat, lon = coordinates[pick.id]
            metres, azimuth, _ = gps2dist_azimuth(event.latitude, event.longitude, lat, lon)
            origin.arrivals.append(Arrival(pick_id=qpick.resource_id, phase=pick.phase,
                                           time_residual=float(pick.residual), distance=metres / 1000.0 / KM_PER_DEGREE,
                                           azimuth=azimuth,
                                           time_weight=float(pick.phase in event.located_with)))
        origin.quality = OriginQuality(
            associated_phase_count=len(picks),
            used_phase_count=int(picks["phase"].isin(list(event.located_with)).sum()),
            associated_station_count=event.n_stations, used_station_count=event.n_stations,
            standard_error=e.rms_s if np.isfinite(e.rms_s) else None, azimuthal_gap=event.azimuthal_gap,
            minimum_distance=event.min_distance_km / KM_PER_DEGREE, maximum_distance=event.max_distance_km / KM_PER_DEGREE)
        out.origins.append(origin)
        out.preferred_origin_id = origin.resource_id
        if magnitudes and event.number in magnitudes:
            from xiaonet.detect.magnitude import add_to_quakeml

            add_to_quakeml(out, origin, magnitudes[event.number], info)
        catalog.events.append(out)
    return catalog


def _error(value: float, scale: float):
    from obspy.core.event import QuantityError

    return QuantityError(uncertainty=float(value) * scale) if np.isfinite(value) else QuantityError()


def write_quakeml(detection, path: str | Path, magnitudes: dict | None = None) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    to_catalog(detection, magnitudes=magnitudes).write(str(path), format="QUAKEML")
