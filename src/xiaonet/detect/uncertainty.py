"""Location uncertainties from the arrivals of a located event (PyOcto reports none).

The linearised estimate of a least-squares locator, with an explicit error for every
arrival instead of the scatter of the residuals alone (which, on a dense array, says
±0.06 km for an epicentre 0.7 km from the catalog's). Each arrival's error has two parts:

- the **pick error**: the pick's own ``uncertainty_s`` when the pick table has one, else
  ``DEFAULT_PICK_ERROR_S`` for its phase (0.05 s P, 0.10 s S: the spread of deep-learning
  picks on local data), independent from pick to pick;
- the **model error**: ``MODEL_ERROR_FRACTION`` of the travel time for its phase (2 % P,
  4 % S: 1D models of the crust are rarely better), correlated between arrivals of one
  phase at nearby stations as ``exp(-d**2 / (2 L**2))`` with ``L = CORRELATION_LENGTH_KM``,
  because neighbouring rays share the same unknown structure (NonLinLoc's ``LOCGAU``,
  Tarantola & Valette 1982). Without the correlation, 358 nodes would average the model
  error away and the ellipse would shrink as ``1/sqrt(n)``, which it does not.

The relocation weights each residual by ``1 / sigma**2``, ``sigma`` the arrival's pick and
model errors together (:func:`arrival_sigma`). With ``C`` the data covariance, ``W`` those
weights and ``J`` the Jacobian of the arrival times with respect to ``(x, y, z, t0)`` at the
solution, the location's covariance is ``G C G^T`` with ``G = (J^T W J)^-1 J^T W`` (exact for
this estimator even though ``W`` ignores the correlations). When the residuals are clearly
larger than ``C`` allows (``r^T C^-1 r`` over its expected value under ``C``, a reduced
chi-square, above the 95 % quantile of a chi-square with ``n - 4`` degrees of freedom) the
covariance is scaled up by it (scaling whenever it exceeds 1 would make the ellipses of
events that fit their stated errors too large).
The epicentre's confidence ellipse (``CONFIDENCE``, 90 %) is the 2 x 2 block scaled by the
chi-square quantile with 2 degrees of freedom; depth and origin time have one-sigma errors.
Derivatives are central differences of the same travel times the associator uses.

>>> import numpy as np
>>> from xiaonet.detect.velocity import HomogeneousModel
>>> sx, sy = np.meshgrid(np.linspace(-10, 10, 4), np.linspace(-10, 10, 4))
>>> sx, sy = sx.ravel(), sy.ravel()
>>> times = TravelTimes(HomogeneousModel(6.0, 3.5))
>>> err = location_errors(times, 0.0, 0.0, 5.0, sx, sy, np.zeros(16), ["P"] * 16, np.full(16, 0.05))
>>> 0.05 < err.minor_km <= err.major_km < 2.0 and 0.01 < err.time_s < 0.5
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xiaonet.detect.velocity import HomogeneousModel, LayeredModel, TravelTimeTable

DEFAULT_PICK_ERROR_S = {"P": 0.05, "S": 0.10}
MODEL_ERROR_FRACTION = {"P": 0.02, "S": 0.04}
CORRELATION_LENGTH_KM = 10.0
CONFIDENCE = 0.90
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
    """One-sigma errors of origin time (s), x/y/depth (km); the epicentre's ``CONFIDENCE``
    ellipse (semi-axes in km, azimuth of the major axis in degrees from north); the residual
    RMS (s) and the reduced chi-square of the residuals against their stated errors (the
    errors were scaled up by it when it was above its 95 % quantile)."""

    time_s: float
    x_km: float
    y_km: float
    depth_km: float
    major_km: float
    minor_km: float
    major_azimuth: float
    rms_s: float
    chi2: float = float("nan")

    @property
    def horizontal_km(self) -> float:
        return self.major_km

    @property
    def depth_interval_km(self) -> float:
        """Half-width of the depth's ``CONFIDENCE`` interval."""
        return at_confidence(self.depth_km)

    @property
    def time_interval_s(self) -> float:
        """Half-width of the origin time's ``CONFIDENCE`` interval."""
        return at_confidence(self.time_s)


def at_confidence(sigma: float) -> float:
    """A one-sigma error of one quantity as the half-width of its ``CONFIDENCE`` interval."""
    from scipy.stats import norm

    return float(sigma * norm.ppf(0.5 + CONFIDENCE / 2))


def arrival_errors(phases, travel_s, uncertainty_s=None) -> tuple[np.ndarray, np.ndarray]:
    """Each arrival's pick error (its ``uncertainty_s`` where finite and positive, else the
    phase's default) and model error (a fraction of its travel time), in s."""
    phases = np.asarray(phases)
    default = np.array([DEFAULT_PICK_ERROR_S[p] for p in phases], float)
    pick = default if uncertainty_s is None else np.asarray(uncertainty_s, float)
    pick = np.where(np.isfinite(pick) & (pick > 0), pick, default)
    model = np.array([MODEL_ERROR_FRACTION[p] for p in phases], float) * np.abs(np.asarray(travel_s, float))
    return pick, model


def arrival_sigma(times: TravelTimes, x: float, y: float, z: float, sx, sy, sz, phases, uncertainty_s=None
                  ) -> np.ndarray:
    """Each arrival's whole error (s), pick and model error together: the relocation's weights."""
    pick, model = arrival_errors(phases, times.many(phases, x, y, z, sx, sy, sz), uncertainty_s)
    return np.hypot(pick, model)


def data_covariance(phases, pick_s, model_s, sx, sy) -> np.ndarray:
    """Pick errors on the diagonal plus model errors correlated between arrivals of one phase
    by the distance between their stations."""
    phases = np.asarray(phases)
    d = np.hypot(np.subtract.outer(sx, sx), np.subtract.outer(sy, sy))
    correlation = np.exp(-0.5 * (d / CORRELATION_LENGTH_KM) ** 2) * np.equal.outer(phases, phases)
    return np.diag(pick_s ** 2) + np.outer(model_s, model_s) * correlation


def location_errors(times: TravelTimes, x: float, y: float, z: float, sx, sy, sz, phases, residuals,
                    uncertainty_s=None, weighted: bool = True) -> LocationErrors:
    """The linearised errors of an event located from these arrivals (see the module) by
    least squares weighted by ``1 / sigma**2`` (:func:`arrival_sigma`, as
    :func:`xiaonet.detect.location.relocate` does), or unweighted (``weighted=False``: PyOcto's
    own grid location, kept with ``--no-relocate``)."""
    from scipy.stats import chi2

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
    pick, model = arrival_errors(phases, times.many(phases, x, y, z, sx, sy, sz), uncertainty_s)
    covariance_data = data_covariance(phases, pick, model, sx, sy)
    weights = 1.0 / (pick ** 2 + model ** 2) if weighted else np.ones(n)
    weighted_jacobian = jacobian * weights[:, None]
    inverse = np.linalg.pinv(jacobian.T @ weighted_jacobian)
    gain = inverse @ weighted_jacobian.T  # the solution's change per unit change of the arrival times
    covariance = gain @ covariance_data @ gain.T
    # the residuals are r = R e with R = I - J G, so under the stated errors
    # E[r^T C^-1 r] = trace(C^-1 R C R^T) (n - 4 only for unweighted, independent, equal errors)
    projector = np.eye(n) - jacobian @ gain
    solved = np.linalg.solve(covariance_data, np.column_stack([residuals, projector @ covariance_data]))
    expected = float(np.trace(solved[:, 1:] @ projector.T))
    reduced = float(residuals @ solved[:, 0]) / expected
    if reduced > chi2.ppf(0.95, n - 4) / (n - 4):  # residuals clearly larger than their stated errors
        covariance *= reduced
    eigenvalues, eigenvectors = np.linalg.eigh(covariance[:2, :2])
    major = eigenvectors[:, 1]
    azimuth = float(np.degrees(np.arctan2(major[0], major[1])) % 180.0)  # x east, y north
    scale = float(np.sqrt(chi2.ppf(CONFIDENCE, 2)))
    std = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    return LocationErrors(float(std[3]), float(std[0]), float(std[1]), float(std[2]),
                          scale * float(np.sqrt(max(eigenvalues[1], 0.0))),
                          scale * float(np.sqrt(max(eigenvalues[0], 0.0))), azimuth, rms, reduced)
