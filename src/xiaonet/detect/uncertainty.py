"""Location uncertainties from the arrivals of a located event (PyOcto reports none).

The linearised estimate of any least-squares locator (HYPOINVERSE, NonLinLoc's Gaussian
estimate): with the Jacobian ``J`` of the arrival times with respect to ``(x, y, z, t0)``
at the solution, the covariance is ``sigma**2 (J^T J)^-1`` where ``sigma**2`` is the
residual variance (``sum(r**2) / (n - 4)``, at least ``MIN_PICK_STD_S**2``). Derivatives are
central differences of the same travel times the associator uses.

>>> import numpy as np
>>> from xiaonet.detect.velocity import HomogeneousModel
>>> sx, sy = np.meshgrid(np.linspace(-10, 10, 4), np.linspace(-10, 10, 4))
>>> sx, sy = sx.ravel(), sy.ravel()
>>> times = TravelTimes(HomogeneousModel(6.0, 3.5))
>>> err = location_errors(times, 0.0, 0.0, 5.0, sx, sy, np.zeros(16), ["P"] * 16, np.full(16, 0.05))
>>> 0.01 < err.horizontal_km < 0.2 and 0.01 < err.time_s < 0.2
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xiaonet.detect.velocity import HomogeneousModel, LayeredModel, TravelTimeTable

MIN_PICK_STD_S = 0.01
STEP_KM = 0.05


class TravelTimes:
    """Travel time (s) from an event at (x, y, z) km to stations at (sx, sy, sz) km, where
    ``sz`` is minus the elevation as in PyOcto (z positive down)."""

    def __init__(self, model: HomogeneousModel | LayeredModel, table: TravelTimeTable | None = None):
        self.model = model
        self.table = table
        if isinstance(model, LayeredModel) and table is None:
            raise ValueError("a layered model needs its travel-time table")

    def __call__(self, phase: str, x, y, z, sx, sy, sz):
        horizontal = np.hypot(np.asarray(sx) - x, np.asarray(sy) - y)
        if isinstance(self.model, HomogeneousModel):
            velocity = self.model.vp if phase == "P" else self.model.vs
            return np.hypot(horizontal, z - np.asarray(sz)) / velocity
        surface = self.model.velocity(phase)[0]
        return self.table.time(phase, horizontal, max(z, 0.0)) - np.asarray(sz) / surface

    def many(self, phases, x, y, z, sx, sy, sz) -> np.ndarray:
        phases = np.asarray(phases)
        out = np.empty(len(phases))
        for phase in ("P", "S"):
            mask = phases == phase
            if mask.any():
                out[mask] = self(phase, x, y, z, np.asarray(sx)[mask], np.asarray(sy)[mask],
                                 np.asarray(sz)[mask])
        return out


@dataclass(frozen=True)
class LocationErrors:
    """One-sigma errors: origin time (s), x/y/depth (km), the horizontal ellipse (km, azimuth
    of the major axis in degrees from north) and the residual RMS (s)."""

    time_s: float
    x_km: float
    y_km: float
    depth_km: float
    major_km: float
    minor_km: float
    major_azimuth: float
    rms_s: float

    @property
    def horizontal_km(self) -> float:
        return self.major_km


def location_errors(times: TravelTimes, x: float, y: float, z: float, sx, sy, sz, phases, residuals
                    ) -> LocationErrors:
    """The linearised one-sigma errors of an event located from these arrivals."""
    sx, sy, sz = (np.asarray(a, float) for a in (sx, sy, sz))
    residuals = np.asarray(residuals, float)
    n = len(residuals)
    rms = float(np.sqrt(np.mean(residuals ** 2))) if n else float("nan")
    if n < 5:
        return LocationErrors(*([float("nan")] * 7), rms)
    columns = []
    for axis in range(3):
        plus, minus = [x, y, z], [x, y, z]
        plus[axis] += STEP_KM
        minus[axis] -= STEP_KM
        if axis == 2 and minus[2] < 0:  # depth derivative one-sided at the surface
            minus[2] = z
            step = STEP_KM
        else:
            step = 2 * STEP_KM
        columns.append((times.many(phases, *plus, sx, sy, sz) - times.many(phases, *minus, sx, sy, sz)) / step)
    jacobian = np.column_stack(columns + [np.ones(n)])
    variance = max(float((residuals ** 2).sum()) / (n - 4), MIN_PICK_STD_S ** 2)
    covariance = variance * np.linalg.pinv(jacobian.T @ jacobian)
    horizontal = covariance[:2, :2]
    eigenvalues, eigenvectors = np.linalg.eigh(horizontal)
    major = eigenvectors[:, 1]
    azimuth = float(np.degrees(np.arctan2(major[0], major[1])) % 180.0)  # x east, y north
    std = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    return LocationErrors(float(std[3]), float(std[0]), float(std[1]), float(std[2]),
                          float(np.sqrt(max(eigenvalues[1], 0.0))), float(np.sqrt(max(eigenvalues[0], 0.0))),
                          azimuth, rms)
