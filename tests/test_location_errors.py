"""Stated location errors: the 90 % epicentre ellipse holds the truth about 90 % of the time
on synthetic events, pick uncertainties from the pick table widen it, and the phases that
locate an event are chosen (and said) as documented."""

from __future__ import annotations

import numpy as np
import pytest

from xiaonet.detect.calibration import ellipse_coverage, inside_ellipse
from xiaonet.detect.location import choose_location_phases
from xiaonet.detect.uncertainty import LocationErrors, TravelTimes, location_errors
from xiaonet.detect.velocity import HomogeneousModel

MODEL = HomogeneousModel(6.0, 3.5)


@pytest.mark.parametrize("phases", ["P", "PS"])
def test_the_90_percent_ellipse_holds_the_truth_about_90_percent_of_the_time(phases):
    # the former residual-only errors, scaled to 90 %, cover 46-51 % here: this fails for them
    result = ellipse_coverage(150, seed=0, phases=phases)
    assert 0.80 <= result.coverage <= 0.97, result


def test_a_wrong_velocity_model_is_covered_too():
    result = ellipse_coverage(100, seed=1, phases="PS", model_error="velocity")
    assert 0.80 <= result.coverage <= 1.0, result


def test_pick_uncertainties_widen_the_ellipse_and_missing_ones_take_the_default():
    sx, sy = np.meshgrid(np.linspace(-15, 15, 5), np.linspace(-15, 15, 5))
    sx, sy, sz = sx.ravel(), sy.ravel(), np.zeros(25)
    phases = ["P"] * 25
    residuals = np.zeros(25)
    times = TravelTimes(MODEL)
    default = location_errors(times, 1.0, 2.0, 6.0, sx, sy, sz, phases, residuals)
    missing = location_errors(times, 1.0, 2.0, 6.0, sx, sy, sz, phases, residuals, np.full(25, np.nan))
    wide = location_errors(times, 1.0, 2.0, 6.0, sx, sy, sz, phases, residuals, np.full(25, 0.3))
    assert missing == default
    assert wide.major_km > 2 * default.major_km and wide.time_s > 2 * default.time_s
    # residuals far larger than the stated errors scale the errors up
    noisy = location_errors(times, 1.0, 2.0, 6.0, sx, sy, sz, phases, np.resize([1.0, -1.0], 25))
    assert noisy.chi2 > 10 and noisy.major_km > 3 * default.major_km


def test_inside_ellipse_follows_its_azimuth():
    errors = LocationErrors(0.1, 1, 1, 1, major_km=2.0, minor_km=0.5, major_azimuth=90.0, rms_s=0.1)
    assert inside_ellipse(errors, 1.9, 0.0) and not inside_ellipse(errors, 0.0, 0.6)
    assert not inside_ellipse(LocationErrors(*([float("nan")] * 8)), 0.0, 0.0)


def test_location_phases_p_alone_when_p_picks_surround_the_event():
    angles = np.radians(np.arange(0, 360, 36))
    sx, sy = np.tile(10 * np.sin(angles), 2), np.tile(10 * np.cos(angles), 2)
    phases = ["P"] * 10 + ["S"] * 10
    assert choose_location_phases(phases, sx, sy, 0.0, 0.0)[0] == "P"
    # all stations on one side: P alone leaves depth and distance poorly tied, so P and S
    used, why = choose_location_phases(phases, sx + 30.0, sy, 0.0, 0.0)
    assert used == "PS" and "gap" in why
    assert choose_location_phases(phases, sx, sy, 0.0, 0.0, "PS") == ("PS", "asked")
    assert choose_location_phases(["P"] * 4 + ["S"] * 4, sx[:8], sy[:8], 0.0, 0.0, "P")[0] == "PS"
    assert choose_location_phases(["P"] * 6, sx[:6], sy[:6], 0.0, 0.0, "PS") == ("P", "no S picks")
    with pytest.raises(ValueError, match="auto, P or PS"):
        choose_location_phases(phases, sx, sy, 0.0, 0.0, "SP")


def test_the_pick_table_uncertainty_column_reaches_the_errors():
    pytest.importorskip("pyocto", reason="association needs pyocto")
    from xiaonet.detect.association import associate
    from xiaonet.detect.synthetic import random_events, synthetic_network, synthetic_picks

    stations = synthetic_network(15, extent_km=40.0, seed=3)
    rows = synthetic_picks(stations, random_events(1, 60.0, extent_km=40.0, seed=3), MODEL, seed=3)
    plain = associate(rows, stations, MODEL).events[0]
    empty = associate([dict(r, uncertainty_s="") for r in rows], stations, MODEL).events[0]
    wide = associate([dict(r, uncertainty_s="0.4") for r in rows], stations, MODEL).events[0]
    assert empty.errors == plain.errors  # an empty cell takes the phase's default
    assert wide.errors.major_km > 2 * plain.errors.major_km
    from xiaonet.detect.association import PickTableError

    with pytest.raises(PickTableError, match="picks.csv, pick 2: uncertainty_s must be seconds"):
        associate([dict(r, uncertainty_s="0.1" if i != 1 else "fast") for i, r in enumerate(rows)], stations,
                  MODEL, source="picks.csv")
