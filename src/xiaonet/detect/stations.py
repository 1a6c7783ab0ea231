"""Station coordinates for association: StationXML (any ObsPy inventory) or a CSV.

Stations are keyed ``NET.STA`` (the pick table's network and station); a CSV may name them
``NET.STA`` or ``NET.STA.LOC`` in its ``id`` column, with ``latitude, longitude, elevation``
(degrees, metres above sea level).

>>> import io
>>> table = read_stations_csv(io.StringIO("id,latitude,longitude,elevation\\nXX.A,36.6,-97.7,320\\n"))
>>> table.ids, table.latitude[0]
(['XX.A'], 36.6)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CSV_COLUMNS = ("id", "latitude", "longitude", "elevation")


class StationError(ValueError):
    """A station file that cannot be used (the message names it and what was expected)."""


@dataclass
class StationTable:
    """Station ids (``NET.STA``) with latitude, longitude (degrees) and elevation (m)."""

    ids: list[str]
    latitude: np.ndarray
    longitude: np.ndarray
    elevation: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def index(self) -> dict[str, int]:
        return {sid: i for i, sid in enumerate(self.ids)}

    def subset(self, ids) -> "StationTable":
        where = self.index()
        rows = [where[i] for i in ids if i in where]
        return StationTable([self.ids[i] for i in rows], self.latitude[rows], self.longitude[rows],
                            self.elevation[rows])


def station_id(network: str, station: str) -> str:
    return f"{network}.{station}"


def _table(rows: list[tuple[str, float, float, float]], name: str) -> StationTable:
    seen: dict[str, tuple] = {}
    for row in rows:
        seen.setdefault(row[0], row)  # the first entry of a station wins (epochs, channels)
    if not seen:
        raise StationError(f"{name}: no stations found")
    values = list(seen.values())
    return StationTable([v[0] for v in values], np.array([v[1] for v in values], float),
                        np.array([v[2] for v in values], float), np.array([v[3] for v in values], float))


def read_stations_csv(source, name: str | None = None) -> StationTable:
    """Stations from a CSV with columns id, latitude, longitude, elevation."""
    name = name or str(getattr(source, "name", source))
    if isinstance(source, (str, Path)):
        with open(source, newline="") as handle:
            return read_stations_csv(handle, name=name)
    reader = csv.DictReader(source)
    missing = set(CSV_COLUMNS) - set(reader.fieldnames or [])
    if missing:
        raise StationError(f"{name}: expected a station CSV with columns {', '.join(CSV_COLUMNS)}; "
                           f"missing {', '.join(sorted(missing))}")
    rows = []
    for line, row in enumerate(reader, start=2):
        try:
            parts = row["id"].strip().split(".")
            rows.append((station_id(parts[0], parts[1]), float(row["latitude"]), float(row["longitude"]),
                         float(row["elevation"] or 0.0)))
        except (IndexError, ValueError, TypeError, AttributeError):
            raise StationError(f"{name}, line {line}: expected NET.STA, latitude, longitude, elevation; "
                               f"got {dict(row)}") from None
    return _table(rows, name)


def read_inventory(inventory, name: str = "inventory") -> StationTable:
    """Stations from an ObsPy ``Inventory`` (coordinates of each station's first epoch)."""
    rows = [(station_id(net.code, sta.code), sta.latitude, sta.longitude, sta.elevation or 0.0)
            for net in inventory for sta in net]
    return _table(rows, name)


def read_stations(path: str | Path) -> StationTable:
    """Stations from a CSV (``.csv``) or anything ObsPy reads as an inventory (StationXML, ...)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        if not path.is_file():
            raise StationError(f"{path}: station file not found")
        return read_stations_csv(path)
    return read_inventory(read_station_inventory(path), name=str(path))


def read_station_inventory(path: str | Path):
    """The ObsPy ``Inventory`` of a station file that is not a CSV (its responses too)."""
    path = Path(path)
    if not path.is_file():
        raise StationError(f"{path}: station file not found")
    import obspy

    try:
        return obspy.read_inventory(str(path))
    except Exception as error:  # ObsPy raises many types for unreadable files
        raise StationError(f"{path}: expected StationXML (or a CSV with columns "
                           f"{', '.join(CSV_COLUMNS)}): {type(error).__name__}: {error}") from None
