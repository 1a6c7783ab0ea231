"""Least-squares relocation of an associated event from its picks.

PyOcto's locations sit on its search grid (the octree node size); this refines each event
within the search volume by robust least squares (Huber loss, scale ``HUBER_SCALE_S``)
on the same travel times, starting from PyOcto's solution, and returns the residuals
(observed minus predicted) at the result.

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


@dataclass
class Relocation:
    solution: tuple[float, float, float, float]  # x, y, depth (km), origin time (s, as given)
    residuals: np.ndarray


def relocate(times: TravelTimes, start, sx, sy, sz, phases, observed, bounds) -> Relocation:
    """Hypocentre and origin time minimising robust travel-time residuals; ``start`` is
    ``(x, y, depth, t0)`` with ``t0`` in the units of ``observed`` (s)."""
    from scipy.optimize import least_squares

    phases = np.asarray(phases)
    observed = np.asarray(observed, float)
    t_ref = float(start[3])

    def residuals(v):
        return observed - t_ref - v[3] - times.many(phases, v[0], v[1], v[2], sx, sy, sz)

    lower = [bounds[0][0], bounds[1][0], bounds[2][0], -60.0]
    upper = [bounds[0][1], bounds[1][1], bounds[2][1], 60.0]
    x0 = np.clip([start[0], start[1], start[2], 0.0], np.add(lower, 1e-6), np.subtract(upper, 1e-6))
    fit = least_squares(residuals, x0, bounds=(lower, upper), loss="huber", f_scale=HUBER_SCALE_S,
                        diff_step=1e-4, x_scale=[1.0, 1.0, 1.0, 0.1])
    x, y, z, dt = (float(v) for v in fit.x)
    return Relocation((x, y, z, t_ref + dt), residuals(fit.x))
