"""Seeded synthetic networks, events and pick tables: the association benchmark's input and
the tests' fixtures (picks at the travel times of known events, with jitter, missed picks
and false picks at random times).

>>> net = synthetic_network(12, extent_km=40.0, seed=1)
>>> events = random_events(3, duration_s=600.0, extent_km=40.0, seed=1)
>>> rows = synthetic_picks(net, events, HomogeneousModel(6.0, 3.5), seed=1)
>>> len(rows), sorted(rows[0])[:3]
(72, ['location', 'network', 'phase'])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import obspy

from xiaonet.detect.catalog import KM_PER_DEGREE
from xiaonet.detect.stations import StationTable
from xiaonet.detect.uncertainty import TravelTimes
from xiaonet.detect.velocity import HomogeneousModel, LayeredModel, travel_time_table

CENTRE = (36.6, -97.7)
START = obspy.UTCDateTime("2020-01-01T00:00:00")


@dataclass(frozen=True)
class SyntheticEvent:
    time: obspy.UTCDateTime
    x_km: float
    y_km: float
    depth_km: float

    @property
    def latitude(self) -> float:
        return CENTRE[0] + self.y_km / KM_PER_DEGREE

    @property
    def longitude(self) -> float:
        return CENTRE[1] + self.x_km / (KM_PER_DEGREE * np.cos(np.radians(CENTRE[0])))


def synthetic_network(n_stations: int, extent_km: float = 50.0, seed: int = 0, network: str = "XX") -> StationTable:
    """``n_stations`` at random places in a square of ``extent_km`` centred on ``CENTRE``."""
    rng = np.random.default_rng(seed)
    x, y = (rng.uniform(-extent_km / 2, extent_km / 2, n_stations) for _ in range(2))
    ids = [f"{network}.S{i:03d}" for i in range(n_stations)]
    latitude = CENTRE[0] + y / KM_PER_DEGREE
    longitude = CENTRE[1] + x / (KM_PER_DEGREE * np.cos(np.radians(CENTRE[0])))
    return StationTable(ids, latitude, longitude, rng.uniform(0.0, 500.0, n_stations))


def random_events(n_events: int, duration_s: float, extent_km: float = 50.0, seed: int = 0,
                  depth_km: tuple[float, float] = (2.0, 15.0)) -> list[SyntheticEvent]:
    """Events at random times (at least 10 s apart) and places inside the network."""
    rng = np.random.default_rng(seed + 1000)
    slots = np.sort(rng.choice(int(duration_s // 10), size=n_events, replace=False)) * 10.0
    return [SyntheticEvent(START + float(t + rng.uniform(0, 2)), float(rng.uniform(-extent_km / 3, extent_km / 3)),
                           float(rng.uniform(-extent_km / 3, extent_km / 3)), float(rng.uniform(*depth_km)))
            for t in slots]


def _local_xy(stations: StationTable) -> tuple[np.ndarray, np.ndarray]:
    y = (stations.latitude - CENTRE[0]) * KM_PER_DEGREE
    x = (stations.longitude - CENTRE[1]) * KM_PER_DEGREE * np.cos(np.radians(CENTRE[0]))
    return x, y


def _row(sid: str, phase: str, time, picker: str) -> dict:
    network, station = sid.split(".")
    return {"network": network, "station": station, "location": "", "phase": phase,
            "time": obspy.UTCDateTime(time).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "probability": "0.9000",
            "picker": picker}


def synthetic_picks(stations: StationTable, events: list[SyntheticEvent], model: HomogeneousModel | LayeredModel,
                    seed: int = 0, jitter_s: float = 0.05, miss: float = 0.0, false_picks: int = 0,
                    duration_s: float | None = None, picker: str = "synthetic") -> list[dict]:
    """P and S pick rows at the travel times of ``events`` (Gaussian jitter, a fraction ``miss``
    dropped), plus ``false_picks`` at random stations, phases and times."""
    rng = np.random.default_rng(seed + 2000)
    table = None
    if isinstance(model, LayeredModel):
        table = travel_time_table(model, 0.5, 2.0 * float(np.ptp(stations.latitude)) * KM_PER_DEGREE + 50.0, 40.0)
    times = TravelTimes(model, table)
    sx, sy = _local_xy(stations)
    sz = -stations.elevation / 1000.0
    rows = []
    for event in events:
        for phase in "PS":
            travel = times(phase, event.x_km, event.y_km, event.depth_km, sx, sy, sz)
            keep = rng.random(len(stations)) >= miss
            noise = rng.normal(0.0, jitter_s, len(stations))
            rows += [_row(sid, phase, event.time + float(t + n), picker)
                     for sid, t, n, k in zip(stations.ids, travel, noise, keep) if k]
    if false_picks:
        span = duration_s or (max(e.time for e in events) - START + 60.0 if events else 600.0)
        for _ in range(false_picks):
            rows.append(_row(stations.ids[rng.integers(len(stations))], "PS"[rng.integers(2)],
                             START + float(rng.uniform(0, span)), picker))
    rows.sort(key=lambda r: r["time"])
    return rows


def random_times(rows: list[dict], start, end, seed: int = 0) -> list[dict]:
    """The same picks (stations, phases, pickers) at uniformly random times in [start, end):
    a pick table without an earthquake in it."""
    rng = np.random.default_rng(seed)
    start, span = obspy.UTCDateTime(start), float(obspy.UTCDateTime(end) - obspy.UTCDateTime(start))
    return [dict(row, time=(start + float(t)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            for row, t in zip(rows, rng.uniform(0.0, span, len(rows)))]
