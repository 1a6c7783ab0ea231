"""Least-squares relocation of an associated event from its picks.

PyOcto's locations sit on its search grid (the octree node size); this refines each event
within the search volume by robust least squares on the same travel times (each residual
weighted by its stated error, :mod:`xiaonet.detect.uncertainty`; Huber loss), starting
from PyOcto's solution, and returns the residuals (observed minus predicted) at the
result. :func:`choose_location_phases` decides which picks locate (P alone or P and S).

>>> import numpy as np
>>> from xiaonet.detect.velocity import HomogeneousModel
>>> sx, sy = np.meshgrid(np.linspace(-10, 10, 4), np.linspace(-10, 10, 4))
>>> sx, sy, sz = sx.ravel(), sy.ravel(), np.zeros(16)
>>> times = TravelTimes(HomogeneousModel(6.0, 3.5))
>>> observed = 10.0 + times.many(["P"] * 16, 1.0, -2.0, 6.0, sx, sy, sz)
>>> fit = relocate(times, (0.0, 0.0, 3.0, 9.5), sx, sy, sz, ["P"] * 16, observed, bounds=((-20, 20), (-20, 20), (0, 30)))
>>> [round(v, 3) for v in fit.solution]
[1.0, -2.0, 6.0, 10.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xiaonet.detect.uncertainty import TravelTimes

HUBER_SCALE_S = 0.1
HUBER_SCALE_SIGMA = 2.0
# "auto" locates with P picks alone when they surround the epicentre this well: S picks are
# less precise and S velocities less well known (LASSO: 0.02 km from the catalog with P
# alone, 0.7 km with P and S; docs/detection.md)
P_ONLY_MIN_PICKS = 8
P_ONLY_MAX_GAP = 180.0


@dataclass
class Relocation:
    solution: tuple[float, float, float, float]  # x, y, depth (km), origin time (s, as given)
    residuals: np.ndarray


def relocate(times: TravelTimes, start, sx, sy, sz, phases, observed, bounds, sigma=None) -> Relocation:
    """Hypocentre and origin time minimising robust travel-time residuals; ``start`` is
    ``(x, y, depth, t0)`` with ``t0`` in the units of ``observed`` (s). ``sigma`` (s, one per
    pick; :func:`xiaonet.detect.uncertainty.arrival_sigma`) weights each residual by its
    stated error, and the Huber loss then acts beyond ``HUBER_SCALE_SIGMA`` sigmas; without
    it residuals count alike and the Huber scale is ``HUBER_SCALE_S``."""
    from scipy.optimize import least_squares

    phases = np.asarray(phases)
    observed = np.asarray(observed, float)
    t_ref = float(start[3])
    scale = np.ones(len(observed)) if sigma is None else np.asarray(sigma, float)

    def residuals(v):
        return observed - t_ref - v[3] - times.many(phases, v[0], v[1], v[2], sx, sy, sz)

    lower = [bounds[0][0], bounds[1][0], bounds[2][0], -60.0]
    upper = [bounds[0][1], bounds[1][1], bounds[2][1], 60.0]
    x0 = np.clip([start[0], start[1], start[2], 0.0], np.add(lower, 1e-6), np.subtract(upper, 1e-6))
    fit = least_squares(lambda v: residuals(v) / scale, x0, bounds=(lower, upper), loss="huber",
                        f_scale=HUBER_SCALE_S if sigma is None else HUBER_SCALE_SIGMA, diff_step=1e-4,
                        x_scale=[1.0, 1.0, 1.0, 0.1])
    x, y, z, dt = (float(v) for v in fit.x)
    return Relocation((x, y, z, t_ref + dt), residuals(fit.x))


def choose_location_phases(phases, sx, sy, x: float, y: float, mode: str = "auto") -> tuple[str, str]:
    """The phases that locate an event (``"P"`` or ``"PS"``) and why, from its picks' phases,
    their stations (km) and a first epicentre: ``mode`` ``"P"``/``"PS"`` forces them (P alone
    needs at least 5 P picks), ``"auto"`` takes P alone when at least ``P_ONLY_MIN_PICKS`` P
    picks leave an azimuthal gap of at most ``P_ONLY_MAX_GAP`` degrees."""
    if mode not in ("auto", "P", "PS"):
        raise ValueError(f"location phases must be auto, P or PS, got {mode!r}")
    is_p = np.asarray(phases) == "P"
    n_p = int(is_p.sum())
    if is_p.all():
        return "P", "no S picks"
    if not is_p.any():
        return "S", "no P picks"
    if mode == "PS" or n_p < 5:
        return "PS", "asked" if mode == "PS" else f"only {n_p} P picks"
    if mode == "P":
        return "P", "asked"
    azimuths = np.sort(np.degrees(np.arctan2(np.asarray(sx)[is_p] - x, np.asarray(sy)[is_p] - y)) % 360.0)
    gap = float(np.max(np.diff(np.append(azimuths, azimuths[0] + 360.0))))
    if n_p >= P_ONLY_MIN_PICKS and gap <= P_ONLY_MAX_GAP:
        return "P", f"{n_p} P picks around it, gap {gap:.0f} deg: P alone locates better, S picks left out"
    return "PS", f"P alone too few or one-sided: {n_p} P picks, gap {gap:.0f} deg"
