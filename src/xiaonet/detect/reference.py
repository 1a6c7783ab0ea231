"""A reference catalog to compare detections with: ``--reference``.

Accepted: ``LAT,LON[,DEPTH_KM[,TIME]]``; a JSON object (or list of them) with ``latitude,
longitude[, depth_km, time, magnitude]`` or SeisScan's ``evla, evlo[, evdp, evt0, mag]``; a CSV
with a header naming time, latitude, longitude[, depth, magnitude] columns (ComCat's CSV:
``time, latitude, longitude, depth, mag, magType``; depth in km); or any catalog ObsPy reads
(QuakeML, ...), whose events' preferred (or first) origins and magnitudes are used.

:func:`match_catalog` pairs detected and reference events one to one within a time and a
distance window (closest first) and lists the differences, the reference events missed and the
detections that are new.

>>> ref, = parse_reference("36.617,-97.6889,3.0,2016-07-11T05:55:16.388")
>>> ref.depth_km, str(ref.time)
(3.0, '2016-07-11T05:55:16.388000Z')
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import obspy

# header names accepted in a CSV catalog (lower case), first match wins
CSV_NAMES = {
    "time": ("time", "origin_time", "datetime", "evt0"),
    "latitude": ("latitude", "lat", "evla"),
    "longitude": ("longitude", "lon", "evlo"),
    "depth_km": ("depth_km", "depth", "evdp"),
    "magnitude": ("magnitude", "mag", "ml"),
    "magnitude_type": ("magnitude_type", "magtype", "mag_type"),
}


class ReferenceEventError(ValueError):
    """A ``--reference`` that cannot be read (the message says what was expected)."""


@dataclass(frozen=True)
class ReferenceEvent:
    latitude: float
    longitude: float
    depth_km: float | None = None
    time: obspy.UTCDateTime | None = None
    magnitude: float | None = None
    magnitude_type: str | None = None


def _from_json(data: dict, name: str) -> ReferenceEvent:
    keys = [("latitude", "longitude", "depth_km", "time", "magnitude"), ("evla", "evlo", "evdp", "evt0", "mag")]
    for lat, lon, depth, time, magnitude in keys:
        if lat in data and lon in data:
            magnitude = data.get(magnitude, data.get("mag"))
            return ReferenceEvent(float(data[lat]), float(data[lon]),
                                  float(data[depth]) if data.get(depth) is not None else None,
                                  obspy.UTCDateTime(data[time]) if data.get(time) else None,
                                  float(magnitude) if magnitude not in (None, "") else None,
                                  data.get("magnitude_type", data.get("magType")))
    raise ReferenceEventError(f"{name}: expected JSON with latitude/longitude (or evla/evlo) keys")


def _from_csv(path: Path) -> list[ReferenceEvent]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = {name.strip().lower(): name for name in reader.fieldnames or []}
        column = {key: next((fields[n] for n in names if n in fields), None) for key, names in CSV_NAMES.items()}
        missing = [key for key in ("time", "latitude", "longitude") if column[key] is None]
        if missing:
            raise ReferenceEventError(f"{path}: expected a CSV catalog with columns time, latitude, longitude"
                                      f"[, depth, magnitude]; no column for {', '.join(missing)}")
        events = []
        for line, row in enumerate(reader, start=2):
            def value(key, convert=float):
                text = (row.get(column[key]) or "").strip() if column[key] else ""
                return convert(text) if text else None
            try:
                events.append(ReferenceEvent(value("latitude"), value("longitude"), value("depth_km"),
                                             value("time", obspy.UTCDateTime), value("magnitude"),
                                             value("magnitude_type", str)))
            except (ValueError, TypeError):
                raise ReferenceEventError(f"{path}, line {line}: expected time (ISO 8601), latitude, longitude"
                                          f"[, depth km, magnitude]; got {dict(row)}") from None
            if events[-1].latitude is None or events[-1].longitude is None:
                raise ReferenceEventError(f"{path}, line {line}: latitude and longitude are empty")
    return events


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
    if path.suffix.lower() == ".csv":
        events = _from_csv(path)
        if not events:
            raise ReferenceEventError(f"{path}: the CSV catalog has no events")
        return events
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
        raise ReferenceEventError(f"{path}: expected a JSON event, a CSV catalog or a catalog ObsPy reads "
                                  f"(QuakeML, ...): {type(error).__name__}: {error}") from None
    events = []
    for event in catalog:
        origin = event.preferred_origin() or (event.origins[0] if event.origins else None)
        if origin is not None:
            depth = origin.depth / 1000.0 if origin.depth is not None else None
            magnitude = event.preferred_magnitude() or (event.magnitudes[0] if event.magnitudes else None)
            events.append(ReferenceEvent(origin.latitude, origin.longitude, depth, origin.time,
                                         magnitude.mag if magnitude is not None else None,
                                         magnitude.magnitude_type if magnitude is not None else None))
    if not events:
        raise ReferenceEventError(f"{path}: the catalog has no origins")
    return events


@dataclass
class Match:
    """A detected event and its reference: differences are detected minus reference."""

    event: object
    reference: ReferenceEvent
    time_s: float | None
    epicentre_km: float
    depth_km: float | None
    magnitude: float | None
    ml: float | None


@dataclass
class CatalogComparison:
    matches: list[Match]
    missed: list[ReferenceEvent]
    new: list = field(default_factory=list)
    max_time_s: float = 0.0
    max_distance_km: float = 0.0

    def match_of(self, event) -> Match | None:
        return next((m for m in self.matches if m.event is event), None)

    def summary(self) -> str:
        parts = [f"{len(self.matches)} matched, {len(self.missed)} missed, {len(self.new)} new "
                 f"(within {self.max_time_s:g} s and {self.max_distance_km:g} km)"]
        for label, values, unit in [("origin time", [m.time_s for m in self.matches], "s"),
                                    ("epicentre", [m.epicentre_km for m in self.matches], "km"),
                                    ("depth", [m.depth_km for m in self.matches], "km"),
                                    ("magnitude", [m.magnitude for m in self.matches], "")]:
            known = np.array([v for v in values if v is not None], float)
            if len(known):
                sign = "" if label == "epicentre" else "+"
                parts.append(f"{label} {np.median(known):{sign}.2f} {unit} median".replace("  ", " ")
                             + (f" (|max| {np.abs(known).max():.2f})" if len(known) > 1 else ""))
        return "; ".join(parts)

    def rows(self) -> list[dict]:
        """The table: one row per matched, missed and new event."""
        def fmt(value, digits):
            return "" if value is None else f"{value:.{digits}f}"

        rows = []
        for m in self.matches:
            e, r = m.event, m.reference
            rows.append({"status": "matched", "time": str(e.time), "latitude": f"{e.latitude:.4f}",
                         "longitude": f"{e.longitude:.4f}", "depth_km": f"{e.depth_km:.2f}", "ml": fmt(m.ml, 2),
                         "reference_time": str(r.time or ""), "reference_magnitude": fmt(r.magnitude, 2),
                         "reference_magnitude_type": r.magnitude_type or "", "dt_s": fmt(m.time_s, 3),
                         "epicentre_km": fmt(m.epicentre_km, 3), "ddepth_km": fmt(m.depth_km, 2),
                         "dmag": fmt(m.magnitude, 2)})
        for r in self.missed:
            rows.append({"status": "missed", "reference_time": str(r.time or ""),
                         "latitude": f"{r.latitude:.4f}", "longitude": f"{r.longitude:.4f}",
                         "depth_km": fmt(r.depth_km, 2), "reference_magnitude": fmt(r.magnitude, 2),
                         "reference_magnitude_type": r.magnitude_type or ""})
        for e, ml in self.new:
            rows.append({"status": "new", "time": str(e.time), "latitude": f"{e.latitude:.4f}",
                         "longitude": f"{e.longitude:.4f}", "depth_km": f"{e.depth_km:.2f}", "ml": fmt(ml, 2)})
        return rows


COMPARISON_COLUMNS = ("status", "time", "latitude", "longitude", "depth_km", "ml", "reference_time",
                      "reference_magnitude", "reference_magnitude_type", "dt_s", "epicentre_km", "ddepth_km", "dmag")


def epicentral_km(a, b) -> float:
    from obspy.geodetics import gps2dist_azimuth

    return gps2dist_azimuth(a.latitude, a.longitude, b.latitude, b.longitude)[0] / 1000.0


def match_catalog(events, references: list[ReferenceEvent], magnitudes: dict | None = None,
                  max_time_s: float = 5.0, max_distance_km: float = 25.0) -> CatalogComparison:
    """Pair ``events`` (with ``time, latitude, longitude, depth_km``, and ``number`` for
    ``magnitudes``: number -> ML or None) and ``references`` one to one: candidate pairs are
    within ``max_time_s`` (skipped for a reference without a time) and ``max_distance_km``,
    and the closest pairs (time and distance, each relative to its window) are taken first."""
    magnitudes = magnitudes or {}
    candidates = []
    for i, event in enumerate(events):
        for j, reference in enumerate(references):
            km = epicentral_km(event, reference)
            dt = float(event.time - reference.time) if reference.time is not None else None
            if km <= max_distance_km and (dt is None or abs(dt) <= max_time_s):
                cost = km / max_distance_km + (abs(dt) / max_time_s if dt is not None else 1.0)
                candidates.append((cost, i, j, km, dt))
    taken_events, taken_references, matches = set(), set(), []
    for _, i, j, km, dt in sorted(candidates, key=lambda c: c[0]):
        if i in taken_events or j in taken_references:
            continue
        taken_events.add(i)
        taken_references.add(j)
        event, reference = events[i], references[j]
        ml = magnitudes.get(getattr(event, "number", i))
        matches.append(Match(event, reference, dt, km,
                             event.depth_km - reference.depth_km if reference.depth_km is not None else None,
                             ml - reference.magnitude if ml is not None and reference.magnitude is not None else None,
                             ml))
    matches.sort(key=lambda m: m.event.time)
    missed = [r for j, r in enumerate(references) if j not in taken_references]
    new = [(e, magnitudes.get(getattr(e, "number", i))) for i, e in enumerate(events) if i not in taken_events]
    return CatalogComparison(matches, missed, new, max_time_s, max_distance_km)
