"""Velocity models for association and location: homogeneous (0D) or layered (1D).

A 1D model is read from a ``.tvel`` file (TauP's format: two header lines, then
``depth vp vs [density]``) or a CSV with the columns ``depth, vp, vs`` (km, km/s). PyOcto
needs a first-arrival travel-time table on a (distance, depth) grid for a 1D model; PyOcto
builds it with pyrocko's eikonal solver, which is not a XiaoNet dependency, so
:func:`travel_time_table` computes it here exactly for flat layers: the direct (up-going)
ray by a sweep over ray parameters, and every head wave, keeping the earliest. Gradients
in the file are split into sub-layers of at most ``GRADIENT_STEP_KM``.

>>> model = LayeredModel(depth=np.array([0.0, 2.0]), vp=np.array([4.0, 6.0]), vs=np.array([2.3, 3.5]))
>>> table = travel_time_table(model, delta=0.5, xdist=20.0, zdist=5.0)
>>> round(float(table.time("P", 4.0, 0.0)), 3)   # at the surface: straight line in the top layer
1.0
>>> round(float(table.time("P", 20.0, 0.0)), 3)  # head wave along 2 km: 20/6 + 2 * 2 * sqrt(1/16 - 1/36) / 1
4.079
"""

from __future__ import annotations

import csv
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GRADIENT_STEP_KM = 0.5


class VelocityModelError(ValueError):
    """A velocity model file or argument that cannot be used (the message names it)."""


@dataclass(frozen=True)
class HomogeneousModel:
    """A 0D model: constant P and S velocities (km/s)."""

    vp: float
    vs: float

    def describe(self) -> str:
        return f"0D vp={self.vp:g} km/s vs={self.vs:g} km/s"


@dataclass(frozen=True)
class LayeredModel:
    """A 1D model of flat constant-velocity layers: ``depth[i]`` is the top of layer i (km)."""

    depth: np.ndarray
    vp: np.ndarray
    vs: np.ndarray
    source: str = "layers"

    def describe(self) -> str:
        return f"1D {self.source} ({len(self.depth)} layers, vp {self.vp[0]:g}-{self.vp.max():g} km/s)"

    def velocity(self, phase: str) -> np.ndarray:
        return self.vp if phase.upper() == "P" else self.vs


def read_velocity_model(path: str | Path, max_depth: float = 200.0) -> LayeredModel:
    """A layered model from a ``.tvel`` file or a ``depth,vp,vs`` CSV (down to ``max_depth`` km)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise VelocityModelError(f"{path}: cannot read velocity model: {error.strerror or error}") from None
    try:
        if path.suffix.lower() == ".csv":
            rows = list(csv.DictReader(text.splitlines()))
            points = [(float(r["depth"]), float(r["vp"]), float(r["vs"])) for r in rows]
        else:
            lines = [line.split() for line in text.splitlines()[2:] if line.strip()]
            points = [(float(p[0]), float(p[1]), float(p[2])) for p in lines]
    except (KeyError, ValueError, IndexError, TypeError):
        raise VelocityModelError(
            f"{path}: expected a .tvel file (two header lines, then 'depth vp vs [density]') "
            "or a CSV with columns depth, vp, vs (km, km/s)"
        ) from None
    return layers_from_points(points, source=path.name, max_depth=max_depth, name=str(path))


def layers_from_points(points, source: str = "layers", max_depth: float = 200.0,
                       name: str = "velocity model") -> LayeredModel:
    """Constant-velocity layers from (depth, vp, vs) points as in a .tvel: a repeated depth is
    a discontinuity, a change between two depths a gradient (split into sub-layers)."""
    points = [p for p in points if p[0] <= max_depth + GRADIENT_STEP_KM] or points[:1]
    if not points or points[0][0] != 0.0:
        raise VelocityModelError(f"{name}: the model must start at depth 0")
    if any(b[0] < a[0] for a, b in zip(points, points[1:])):
        raise VelocityModelError(f"{name}: depths must not decrease")
    if any(vp <= 0 or vs <= 0 or vs >= vp for _, vp, vs in points):
        raise VelocityModelError(f"{name}: velocities must be positive with vs < vp")
    tops, vps, vss = [], [], []
    for (d0, p0, s0), (d1, p1, s1) in zip(points, points[1:]):
        if d1 == d0:
            continue
        n = 1 if (p0 == p1 and s0 == s1) else max(1, int(np.ceil((d1 - d0) / GRADIENT_STEP_KM)))
        for k in range(n):
            f = (k + 0.5) / n
            tops.append(d0 + (d1 - d0) * k / n)
            vps.append(p0 + (p1 - p0) * f)
            vss.append(s0 + (s1 - s0) * f)
    last = points[-1]
    tops.append(last[0])
    vps.append(last[1])
    vss.append(last[2])
    return LayeredModel(np.array(tops), np.array(vps), np.array(vss), source=source)


def _first_arrivals(depth: np.ndarray, velocity: np.ndarray, z: float, x: np.ndarray) -> np.ndarray:
    """First-arrival times from a source at depth ``z`` to surface receivers at offsets ``x``."""
    bottoms = np.append(depth[1:], np.inf)
    # segments between the surface and the source
    above = np.clip(np.minimum(bottoms, z) - depth, 0.0, None)
    h, v = above[above > 0], velocity[above > 0]
    if len(h) == 0:  # source at the surface: straight line in the top layer, or a head wave below
        h, v = np.array([0.0]), velocity[:1]
    # direct ray: sweep the ray parameter up to grazing in the fastest segment above the source
    pmax = 1.0 / v.max()
    s = 1.0 - np.geomspace(1.0, 1e-7, 4000)  # dense near grazing, where x grows without bound
    p = pmax * s
    cos = np.sqrt(1.0 - (p[:, None] * v[None, :]) ** 2)
    xs = (h[None, :] * p[:, None] * v[None, :] / cos).sum(axis=1)
    ts = (h[None, :] / (v[None, :] * cos)).sum(axis=1)
    best = np.interp(x, xs, ts, right=np.nan)
    beyond = x > xs[-1]
    best[beyond] = ts[-1] + (x[beyond] - xs[-1]) * p[-1]
    # head waves along the top of every faster layer at or below the source (all refractors at once)
    faster = np.maximum.accumulate(velocity)
    refractors = np.flatnonzero((depth >= z) & (velocity > np.append(-np.inf, faster[:-1])))
    if len(refractors):
        top = depth[refractors][:, None]
        thick = np.clip(np.minimum(bottoms[None, :], top) - depth[None, :], 0.0, None)  # surface -> refractor
        down = np.clip(np.minimum(bottoms[None, :], top) - np.maximum(depth[None, :], z), 0.0, None)  # source ->
        legs = thick + down
        pm = 1.0 / velocity[refractors][:, None]
        ratio = np.clip(pm * velocity[None, :], 0.0, 1.0 - 1e-12) * (legs > 0)
        intercept = (legs * np.sqrt(1.0 - ratio ** 2) / velocity[None, :]).sum(axis=1)
        critical = (legs * ratio / np.sqrt(1.0 - ratio ** 2)).sum(axis=1)
        head = x[None, :] * pm + intercept[:, None]
        head[x[None, :] < critical[:, None]] = np.inf
        best = np.minimum(best, head.min(axis=0))
    return best


@dataclass
class TravelTimeTable:
    """First-arrival P and S times (s) on a grid: ``times[phase][i_distance, i_depth]``."""

    delta: float
    p_times: np.ndarray
    s_times: np.ndarray

    def time(self, phase: str, distance_km, depth_km):
        """Bilinear interpolation in the table (distance and depth in km; clipped to the grid)."""
        table = self.p_times if phase.upper() == "P" else self.s_times
        nx, nz = table.shape
        fx = np.clip(np.asarray(distance_km, float) / self.delta, 0, nx - 1.000001)
        fz = np.clip(np.asarray(depth_km, float) / self.delta, 0, nz - 1.000001)
        ix, iz = fx.astype(int), fz.astype(int)
        wx, wz = fx - ix, fz - iz
        return ((1 - wx) * (1 - wz) * table[ix, iz] + wx * (1 - wz) * table[ix + 1, iz]
                + (1 - wx) * wz * table[ix, iz + 1] + wx * wz * table[ix + 1, iz + 1])

    def write_pyocto(self, path: str | Path) -> None:
        """The binary layout PyOcto's ``VelocityModel1D`` reads (``nx, nz, delta`` then P, S)."""
        nx, nz = self.p_times.shape
        with open(path, "wb") as handle:
            handle.write(struct.pack("iid", nx, nz, self.delta))
            handle.write(np.ascontiguousarray(self.p_times, dtype=np.float64).tobytes())
            handle.write(np.ascontiguousarray(self.s_times, dtype=np.float64).tobytes())


def travel_time_table(model: LayeredModel, delta: float, xdist: float, zdist: float) -> TravelTimeTable:
    """First-arrival P and S tables for sources at depth 0..``zdist`` and surface receivers at
    0..``xdist`` km, every ``delta`` km."""
    x = np.arange(int(xdist / delta) + 1) * delta
    z = np.arange(int(zdist / delta) + 1) * delta
    # a refractor deeper than zdist + xdist / 2 is never first (crossover beyond twice its depth)
    keep = max(1, int(np.searchsorted(model.depth, zdist + xdist / 2, side="right")))
    tables = []
    for phase in "PS":
        depth, velocity = model.depth[:keep], model.velocity(phase)[:keep]
        tables.append(np.stack([_first_arrivals(depth, velocity, zi, x) for zi in z], axis=1))
    return TravelTimeTable(delta, tables[0], tables[1])


#: The 0D model every command uses without ``--velocity`` (km/s; vs = vp / 1.73).
DEFAULT_VELOCITY = "6.0,3.47"


def velocity_model(spec: str):
    """The one ``--velocity`` grammar: ``VP,VS`` (km/s) for a 0D model, or a .tvel /
    depth,vp,vs CSV file for a 1D model.

    >>> velocity_model("6.0,3.5").describe()
    '0D vp=6 km/s vs=3.5 km/s'
    """
    parts = spec.split(",")
    if len(parts) == 2 and not Path(spec).is_file():
        try:
            vp, vs = float(parts[0]), float(parts[1])
        except ValueError:
            raise VelocityModelError(f"--velocity {spec!r}: expected VP,VS (km/s) or a model file") from None
        if not 0 < vs < vp:
            raise VelocityModelError(f"--velocity {spec!r}: need 0 < vs < vp")
        return HomogeneousModel(vp, vs)
    return read_velocity_model(spec)
