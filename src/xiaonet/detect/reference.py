"""A reference (catalog) event to compare detections with: ``--reference``.

Accepted: ``LAT,LON[,DEPTH_KM[,TIME]]``; a JSON object with ``latitude, longitude[, depth_km,
time]`` or SeisScan's ``evla, evlo[, evdp, evt0]``; or any catalog ObsPy reads (QuakeML, ...),
whose events' preferred (or first) origins are used.

>>> ref, = parse_reference("36.617,-97.6889,3.0,2016-07-11T05:55:16.388")
>>> ref.depth_km, str(ref.time)
(3.0, '2016-07-11T05:55:16.388000Z')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import obspy


class ReferenceEventError(ValueError):
    """A ``--reference`` that cannot be read (the message says what was expected)."""


@dataclass(frozen=True)
class ReferenceEvent:
    latitude: float
    longitude: float
    depth_km: float | None = None
    time: obspy.UTCDateTime | None = None


def _from_json(data: dict, name: str) -> ReferenceEvent:
    keys = [("latitude", "longitude", "depth_km", "time"), ("evla", "evlo", "evdp", "evt0")]
    for lat, lon, depth, time in keys:
        if lat in data and lon in data:
            return ReferenceEvent(float(data[lat]), float(data[lon]),
                                  float(data[depth]) if data.get(depth) is not None else None,
                                  obspy.UTCDateTime(data[time]) if data.get(time) else None)
    raise ReferenceEventError(f"{name}: expected JSON with latitude/longitude (or evla/evlo) keys")


def parse_reference(spec: str) -> list[ReferenceEvent]:
    path = Path(spec)
    if not path.is_file():
        parts = [p.strip() for p in spec.split(",")]
        try:
            if not 2 <= len(parts) <= 4:
                raise ValueError
            return [ReferenceEvent(float(parts[0]), float(parts[1]),
                                   float(parts[2]) if len(parts) > 2 and parts[2] else None,
                                   obspy.UTCDateTime(parts[3]) if len(parts) > 3 else None)]
        except (ValueError, TypeError):
            raise ReferenceEventError(f"--reference {spec!r}: not a file, and not LAT,LON[,DEPTH_KM[,TIME]]") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ReferenceEventError(f"{path}: not readable JSON: {error}") from None
        items = data if isinstance(data, list) else [data]
        return [_from_json(item, str(path)) for item in items]
    try:
        catalog = obspy.read_events(str(path))
    except Exception as error:  # ObsPy raises many types for unreadable files
        raise ReferenceEventError(f"{path}: expected a JSON event or a catalog ObsPy reads (QuakeML, ...): "
                             f"{type(error).__name__}: {error}") from None
    events = []
    for event in catalog:
        origin = event.preferred_origin() or (event.origins[0] if event.origins else None)
        if origin is not None:
            depth = origin.depth / 1000.0 if origin.depth is not None else None
            events.append(ReferenceEvent(origin.latitude, origin.longitude, depth, origin.time))
    if not events:
        raise ReferenceEventError(f"{path}: the catalog has no origins")
    return events


def compare(event, references: list[ReferenceEvent]) -> tuple[ReferenceEvent, float, float | None]:
    """The nearest reference (in time where known, else in space), its epicentral distance (km)
    and origin-time difference (detected minus reference, s; None without a reference time)."""
    from obspy.geodetics import gps2dist_azimuth

    def distance(ref):
        return gps2dist_azimuth(event.latitude, event.longitude, ref.latitude, ref.longitude)[0] / 1000.0

    timed = [r for r in references if r.time is not None]
    best = min(timed, key=lambda r: abs(event.time - r.time)) if timed else min(references, key=distance)
    return best, distance(best), (float(event.time - best.time) if best.time is not None else None)
