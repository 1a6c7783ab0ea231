"""Picks to located events with PyOcto (Münchmeyer 2024), the one call the command makes.

:func:`associate` takes pick-table rows (:mod:`xiaonet.data.picktable`), stations and a
velocity model, and returns a :class:`Detection`: the events (origin, one-sigma errors,
quality), every pick with the event it was assigned to (or none) and its residual, and the
picks at stations the station file does not have (left out, counted, named).

The search volume is the box around the stations that have picks, ``margin_km`` wider on
each side, from the surface to ``max_depth_km``; coordinates are a transverse Mercator
projection centred on it (PyOcto's own).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import obspy

from xiaonet.detect.location import choose_location_phases, relocate
from xiaonet.detect.stations import StationTable, station_id
from xiaonet.detect.uncertainty import LocationErrors, TravelTimes, arrival_sigma, location_errors
from xiaonet.detect.velocity import HomogeneousModel, LayeredModel, travel_time_table

if TYPE_CHECKING:
    import pandas


class PickTableError(ValueError):
    """A pick row that cannot be read (the message names the source and row)."""


@dataclass
class AssociationConfig:
    """PyOcto's settings that matter for a network, with defaults for local networks (tens of km).

    ``tolerance``: travel-time error the model allows during association (s);
    ``pick_match_tolerance``: largest residual of a pick assigned to a located event (s);
    ``n_picks`` / ``n_p_picks`` / ``n_s_picks`` / ``n_p_and_s_picks``: what an event needs.
    """

    margin_km: float = 10.0
    max_depth_km: float = 30.0
    tolerance: float = 0.5
    pick_match_tolerance: float = 0.5
    n_picks: int = 10
    n_p_picks: int = 4
    n_s_picks: int = 2
    n_p_and_s_picks: int = 2
    min_interevent_time: float = 3.0
    # an event needs picks at this fraction of the live stations (those with any pick in the
    # input) within the epicentral distance of its farthest pick (chance coincidences on dense
    # networks pick a few of many stations)
    min_station_fraction: float = 0.25
    min_node_size_km: float | None = None  # default: a quarter of the area's shorter side, 1-10 km
    table_step_km: float = 0.25
    n_threads: int = 1
    relocate: bool = True  # least-squares refinement of PyOcto's grid location (xiaonet.detect.location)
    locate_phases: str = "auto"  # "P", "PS" or "auto" (xiaonet.detect.location.choose_location_phases)


@dataclass
class DetectedEvent:
    number: int
    time: obspy.UTCDateTime
    latitude: float
    longitude: float
    depth_km: float
    x_km: float
    y_km: float
    errors: LocationErrors
    pick_rows: list[int]
    n_p: int
    n_s: int
    n_stations: int
    azimuthal_gap: float
    min_distance_km: float
    max_distance_km: float
    station_fraction: float = 1.0
    located_with: str = "PS"  # the phases of the picks that located it (all assigned picks keep residuals)
    location_reason: str = ""
    last_pick: float | None = None  # timestamp of its latest pick (set while streaming)

    @property
    def poorly_constrained(self) -> bool:
        """Stations on one side (gap over 180 degrees) or an ellipse larger than the distance to
        the farthest station: the location trades off along a direction the stations cannot
        resolve, and the linearised ellipse is only a rough guide."""
        return self.azimuthal_gap > 180.0 or not self.errors.major_km <= self.max_distance_km


@dataclass
class Detection:
    """What :func:`associate` found. ``picks`` has every input pick (column ``event``: the
    event number or -1, ``residual``: observed minus predicted time, NaN when unassigned)."""

    events: list[DetectedEvent]
    picks: "pandas.DataFrame"
    stations: StationTable
    missing: dict[str, int] = field(default_factory=dict)
    model: str = ""
    rejected: list[DetectedEvent] = field(default_factory=list)  # below the station fraction

    @property
    def n_missing_picks(self) -> int:
        return sum(self.missing.values())


def picks_frame(rows: list[dict], source: str = "picks"):
    """Pick-table rows as a data frame with ``id`` (NET.STA) and ``timestamp`` (float s)."""
    import pandas as pd

    from xiaonet.data.picktable import PICK_COLUMNS

    frame = pd.DataFrame(list(rows), columns=list(PICK_COLUMNS))
    frame["channel"] = frame["channel"].fillna("").astype(str)
    # uncertainty_s empty: the phase's default (xiaonet.detect.uncertainty)
    given = frame["uncertainty_s"].fillna("").astype(str).str.strip().replace("nan", "")
    values = pd.to_numeric(given.replace("", np.nan), errors="coerce")
    bad = ((given != "") & values.isna()) | (values <= 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise PickTableError(f"{source}, pick {row + 1}: uncertainty_s must be seconds > 0 or empty, "
                             f"got {given[row]!r}")
    frame["uncertainty_s"] = values
    frame["phase"] = frame["phase"].astype(str).str.upper()
    bad = ~frame["phase"].isin(["P", "S"])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise PickTableError(f"{source}, pick {row + 1}: phase must be P or S, got {frame['phase'][row]!r}")
    times = pd.to_datetime(frame["time"], utc=True, errors="coerce", format="ISO8601")
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise PickTableError(f"{source}, pick {row + 1}: time must be ISO 8601, got {frame['time'][row]!r}")
    frame["timestamp"] = (times - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy()
    frame["id"] = [station_id(n, s) for n, s in zip(frame["network"].fillna(""), frame["station"].fillna(""))]
    frame["location"] = frame["location"].fillna("")
    return frame


#: Rank of an instrument code (the channel's second letter), lower preferred: high-gain
#: seismometer, low-gain seismometer, anything else (2), strong-motion accelerometer last.
INSTRUMENT_RANK = {"H": 0, "L": 1, "N": 3}
#: Band codes from most to least preferred among instruments of one kind.
BAND_PREFERENCE = "HBESCDMLV"


def instrument_rank(channel: str) -> tuple:
    """Sort key of a pick's ``channel`` (``HH?``): lower is preferred (see :func:`preferred_instrument`)."""
    band, instrument = (channel + "  ")[:2]
    band_rank = BAND_PREFERENCE.find(band) if band in BAND_PREFERENCE else len(BAND_PREFERENCE)
    return INSTRUMENT_RANK.get(instrument, 2), band_rank, channel


def preferred_instrument(picks) -> "pandas.Series":
    """True for the picks of each station's preferred instrument, so a station with a broadband
    (HH/BH) or short-period (EH) seismometer and a strong-motion accelerometer (HN) beside it
    gives one pick per arrival, not one per instrument (PyOcto then takes whichever came
    first, an accelerometer's among a seismometer's picks): the high-gain
    seismometer is preferred (it resolves small onsets), the accelerometer is kept only where
    it is the station's one instrument. The other picks stay in the table, unassigned. A table
    without channels (older CSVs) keeps every pick."""
    best = picks.groupby("id")["channel"].transform(lambda codes: min(set(codes), key=instrument_rank))
    return picks["channel"] == best


def associate(rows_or_frame, stations: StationTable, model: HomogeneousModel | LayeredModel,
              config: AssociationConfig | None = None, source: str = "picks",
              tables: dict | None = None) -> Detection:
    """Associate and locate; picks at unknown stations are left out and counted.

    ``tables``: a dict the caller keeps between calls (the online associator runs every
    second) to reuse the travel-time table of a 1D model, which takes about a second to
    build; it is rebuilt only when a larger search volume needs a larger one. Its
    ``at_least_km`` sizes the first table (e.g. for the whole network's search volume)."""
    import pandas as pd
    import pyocto

    config = config or AssociationConfig()
    picks = rows_or_frame if isinstance(rows_or_frame, pd.DataFrame) else picks_frame(rows_or_frame, source)
    picks = picks.reset_index(drop=True).copy()
    picks["event"] = -1
    picks["residual"] = np.nan
    known = picks["id"].isin(set(stations.ids))
    missing = picks.loc[~known, "id"].value_counts().sort_index().to_dict()
    used = picks[known & preferred_instrument(picks)]
    if used.empty:
        return Detection([], picks, stations, missing, model.describe())

    picked = stations.subset(sorted(set(used["id"])))
    station_frame = pd.DataFrame({"id": picked.ids, "latitude": picked.latitude,
                                  "longitude": picked.longitude, "elevation": picked.elevation})
    crs = pyocto.OctoAssociator.get_crs(station_frame)
    transformer = _transformer(crs)
    sx, sy = transformer.transform(station_frame["latitude"].to_numpy(), station_frame["longitude"].to_numpy())
    station_frame["x"], station_frame["y"] = np.asarray(sx), np.asarray(sy)
    station_frame["z"] = -station_frame["elevation"] / 1e3
    xlim = (float(station_frame["x"].min()) - config.margin_km, float(station_frame["x"].max()) + config.margin_km)
    ylim = (float(station_frame["y"].min()) - config.margin_km, float(station_frame["y"].max()) + config.margin_km)
    zlim = (0.0, float(config.max_depth_km))
    diagonal = float(np.hypot(xlim[1] - xlim[0], ylim[1] - ylim[0]))
    node = config.min_node_size_km or float(np.clip(min(xlim[1] - xlim[0], ylim[1] - ylim[0]) / 4, 1.0, 10.0))

    with tempfile.TemporaryDirectory(prefix="xiaonet-detect-") as scratch:
        if tables is not None and tables.get("diagonal_km", -1.0) >= diagonal:
            octo_model, times = tables["model"]
        else:
            # a kept table's file lives as long as the caller's dict: PyOcto reads it when it associates
            folder = scratch if tables is None else tables.setdefault(
                "folder", tempfile.TemporaryDirectory(prefix="xiaonet-detect-")).name
            size = max(diagonal, tables.get("at_least_km", 0.0)) if tables is not None else diagonal
            octo_model, times = _pyocto_model(model, config, size, Path(folder))
            if tables is not None:
                tables.update(diagonal_km=size, model=(octo_model, times))
        slowest = model.vs if isinstance(model, HomogeneousModel) else float(model.vs.min())
        associator = pyocto.OctoAssociator(
            xlim=xlim, ylim=ylim, zlim=zlim, velocity_model=octo_model,
            time_before=float(np.hypot(diagonal, zlim[1]) / slowest),
            min_node_size=node, min_node_size_location=min(node / 10, 1.5),
            pick_match_tolerance=config.pick_match_tolerance,
            min_interevent_time=config.min_interevent_time,
            n_picks=config.n_picks, n_p_picks=config.n_p_picks, n_s_picks=config.n_s_picks,
            n_p_and_s_picks=config.n_p_and_s_picks, n_threads=config.n_threads, crs=crs,
        )
        octo_picks = pd.DataFrame({"station": used["id"].to_numpy(), "time": used["timestamp"].to_numpy(),
                                   "phase": used["phase"].to_numpy()})
        found, assignments = associator.associate(octo_picks, station_frame)

    events, rejected = [], []
    if len(found):
        used_rows = used.index.to_numpy()
        where = {sid: i for i, sid in enumerate(station_frame["id"])}
        found = found.sort_values("time").reset_index(drop=True)
        for event in found.itertuples():
            mine = assignments[assignments["event_idx"] == event.idx]
            rows = used_rows[mine["pick_idx"].to_numpy()]
            picks.loc[rows, "residual"] = mine["residual"].to_numpy()
            bounds = (xlim, ylim, zlim) if config.relocate else None
            located = _event(len(events), event, rows, picks, station_frame, where, times, transformer, bounds,
                             config.locate_phases)
            if located.station_fraction < config.min_station_fraction:
                picks.loc[rows, "residual"] = np.nan
                rejected.append(located)
                continue
            picks.loc[rows, "event"] = located.number
            events.append(located)
    return Detection(events, picks, stations, missing, model.describe(), rejected)


def _transformer(crs):
    from pyproj import CRS, Transformer

    return Transformer.from_crs(CRS.from_epsg(4326), crs)


def _pyocto_model(model, config: AssociationConfig, diagonal_km: float, folder: Path):
    import pyocto

    if isinstance(model, HomogeneousModel):
        return pyocto.VelocityModel0D(model.vp, model.vs, config.tolerance), TravelTimes(model)
    # PyOcto wants the table larger than the search volume's diagonal
    table = travel_time_table(model, config.table_step_km, xdist=1.2 * diagonal_km + 5.0,
                              zdist=config.max_depth_km + 5.0)
    path = folder / "model.bin"
    table.write_pyocto(path)
    octo = pyocto.VelocityModel1D(path, config.tolerance, surface_p_velocity=float(model.vp[0]),
                                  surface_s_velocity=float(model.vs[0]))
    return octo, TravelTimes(model, table)


def _event(number, event, rows, picks, station_frame, where, times, transformer, bounds,
           locate_phases="auto") -> DetectedEvent:
    mine = picks.loc[rows]
    index = [where[sid] for sid in mine["id"]]
    sx = station_frame["x"].to_numpy()[index]
    sy = station_frame["y"].to_numpy()[index]
    sz = station_frame["z"].to_numpy()[index]
    phases, observed = mine["phase"].to_numpy(), mine["timestamp"].to_numpy()
    x, y, z, t0 = float(event.x), float(event.y), float(event.z), float(event.time)
    located_with, reason = choose_location_phases(phases, sx, sy, x, y, locate_phases)
    use = np.isin(phases, list(located_with))
    uncertainty = mine["uncertainty_s"].to_numpy()[use] if "uncertainty_s" in mine else None
    if bounds is not None:
        sigma = arrival_sigma(times, x, y, z, sx[use], sy[use], sz[use], phases[use], uncertainty)
        fit = relocate(times, (x, y, z, t0), sx[use], sy[use], sz[use], phases[use], observed[use], bounds, sigma)
        x, y, z, t0 = fit.solution
        picks.loc[rows, "residual"] = observed - t0 - times.many(phases, x, y, z, sx, sy, sz)
        mine = picks.loc[rows]
    lat, lon = transformer.transform(x, y, direction="INVERSE")
    errors = location_errors(times, x, y, z, sx[use], sy[use], sz[use], phases[use],
                             mine["residual"].to_numpy()[use], uncertainty, weighted=bounds is not None)
    azimuths = np.sort(np.degrees(np.arctan2(sx - x, sy - y)) % 360.0)
    gap = float(np.max(np.diff(np.append(azimuths, azimuths[0] + 360.0)))) if len(azimuths) else 360.0
    distances = np.hypot(sx - x, sy - y)
    # live stations: every station with a pick in the input (station_frame holds exactly those)
    live = np.hypot(station_frame["x"].to_numpy() - x, station_frame["y"].to_numpy() - y)
    fraction = mine["id"].nunique() / max(1, int((live <= distances.max() + 1e-6).sum()))
    return DetectedEvent(
        number=number, time=obspy.UTCDateTime(t0), latitude=float(lat), longitude=float(lon),
        depth_km=z, x_km=x, y_km=y, errors=errors,
        pick_rows=[int(r) for r in rows], n_p=int((mine["phase"] == "P").sum()),
        n_s=int((mine["phase"] == "S").sum()), n_stations=int(mine["id"].nunique()), azimuthal_gap=gap,
        min_distance_km=float(distances.min()), max_distance_km=float(distances.max()),
        station_fraction=float(fraction), located_with=located_with, location_reason=reason,
    )
