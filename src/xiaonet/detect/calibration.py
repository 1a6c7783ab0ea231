"""Do the stated location errors hold? The confidence ellipse checked against known epicentres.

:func:`inside_ellipse` says whether a true (catalog) epicentre lies in an event's stated
ellipse; :func:`ellipse_coverage` locates many synthetic events whose arrival times carry
errors of the size :mod:`xiaonet.detect.uncertainty` states (pick errors, and model errors
correlated between nearby stations, or a wrong velocity model) and counts how often the
truth falls inside: about ``CONFIDENCE`` (90 %) when the linearised errors, the relocation
and the chi-square scaling are right. Synthetic events check the arithmetic; whether the
stated error sizes are realistic is checked on real events (docs/detection.md: LASSO).

>>> result = ellipse_coverage(40, seed=1)
>>> 0.7 <= result.coverage <= 1.0
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xiaonet.detect.location import relocate
from xiaonet.detect.uncertainty import (LocationErrors, TravelTimes, arrival_errors, arrival_sigma,
                                        data_covariance, location_errors)
from xiaonet.detect.velocity import HomogeneousModel


def inside_ellipse(errors: LocationErrors, east_km: float, north_km: float) -> bool:
    """Whether the offset (east, north, km) of a true epicentre from the located one lies in
    the stated confidence ellipse (False when the event has none)."""
    if not (np.isfinite(errors.major_km) and errors.minor_km > 0):
        return False
    azimuth = np.radians(errors.major_azimuth)
    along = east_km * np.sin(azimuth) + north_km * np.cos(azimuth)
    across = east_km * np.cos(azimuth) - north_km * np.sin(azimuth)
    return bool((along / errors.major_km) ** 2 + (across / errors.minor_km) ** 2 <= 1.0)


def epicentre_offset_km(event, latitude: float, longitude: float) -> tuple[float, float]:
    """East and north (km) from a located event's epicentre to the point (a catalog's)."""
    from obspy.geodetics import gps2dist_azimuth

    metres, azimuth, _ = gps2dist_azimuth(event.latitude, event.longitude, latitude, longitude)
    return metres / 1000 * float(np.sin(np.radians(azimuth))), metres / 1000 * float(np.cos(np.radians(azimuth)))


@dataclass(frozen=True)
class Coverage:
    n_events: int
    n_inside: int
    median_offset_km: float
    median_major_km: float

    @property
    def coverage(self) -> float:
        return self.n_inside / self.n_events


def ellipse_coverage(n_events: int, seed: int = 0, phases: str = "PS", n_stations: int = 20,
                     extent_km: float = 40.0, model_error: str = "correlated",
                     model: HomogeneousModel | None = None) -> Coverage:
    """Locate ``n_events`` synthetic events (random networks of ``n_stations`` in a square of
    ``extent_km``, events inside it at 2-15 km depth) from picks of ``phases`` and count the
    true epicentres inside the stated ellipse. Arrival errors: the default pick errors, plus
    ``model_error`` ``"correlated"`` (drawn from the stated model-error covariance) or
    ``"velocity"`` (picks from a model whose P and S velocities are off by 2 % and 4 %, one
    sigma, per event: the error is then the same fraction of every travel time)."""
    if model_error not in ("correlated", "velocity"):
        raise ValueError(f"model_error must be correlated or velocity, got {model_error!r}")
    model = model or HomogeneousModel(6.0, 3.5)
    times = TravelTimes(model)
    rng = np.random.default_rng(seed)
    bounds = ((-extent_km, extent_km), (-extent_km, extent_km), (0.0, 30.0))
    inside, offsets, majors = 0, [], []
    for _ in range(n_events):
        sx, sy = (rng.uniform(-extent_km / 2, extent_km / 2, n_stations) for _ in range(2))
        sz = np.zeros(n_stations)
        x, y, z = rng.uniform(-extent_km / 3, extent_km / 3), rng.uniform(-extent_km / 3, extent_km / 3), \
            rng.uniform(2.0, 15.0)
        arrivals = np.array([p for p in phases for _ in range(n_stations)])
        ax, ay, az = (np.tile(v, len(phases)) for v in (sx, sy, sz))
        if model_error == "velocity":
            wrong = HomogeneousModel(model.vp * (1 + 0.02 * rng.normal()), model.vs * (1 + 0.04 * rng.normal()))
            travel = TravelTimes(wrong).many(arrivals, x, y, z, ax, ay, az)
            pick, _ = arrival_errors(arrivals, travel)
            noise = rng.normal(0.0, pick)
        else:
            travel = times.many(arrivals, x, y, z, ax, ay, az)
            pick, modelled = arrival_errors(arrivals, travel)
            noise = rng.multivariate_normal(np.zeros(len(arrivals)), data_covariance(arrivals, pick, modelled, ax, ay))
        observed = 10.0 + travel + noise
        start = (x + rng.normal(0, 2.0), y + rng.normal(0, 2.0), float(np.clip(z + rng.normal(0, 2.0), 0.5, 29.5)),
                 9.5)
        sigma = arrival_sigma(times, *start[:3], ax, ay, az, arrivals)
        fit = relocate(times, start, ax, ay, az, arrivals, observed, bounds, sigma)
        ex, ey, ez, _ = fit.solution
        errors = location_errors(times, ex, ey, ez, ax, ay, az, arrivals, fit.residuals)
        inside += inside_ellipse(errors, x - ex, y - ey)
        offsets.append(float(np.hypot(x - ex, y - ey)))
        majors.append(errors.major_km)
    return Coverage(n_events, inside, float(np.median(offsets)), float(np.median(majors)))
