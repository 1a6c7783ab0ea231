import numpy as np
import pytest
from seisbench.util import Pick

from xiaonet.scoring import ReferencePick, match_picks, score_picks

REFERENCE = [
    ReferencePick("XX.A.", "P", 100.0),
    ReferencePick("XX.A.", "S", 110.0),
    ReferencePick("XX.B.", "P", 200.0),
    ReferencePick("XX.B.", "S", 215.0),
]


def pick(trace_id, phase, time, value=0.9):
    return Pick(trace_id, start_time=time, peak_time=time, peak_value=value, phase=phase)


def test_perfect_picker():
    scores = score_picks([pick(r.trace_id, r.phase, r.time) for r in REFERENCE], REFERENCE)
    for phase in "PS":
        assert scores[phase].f1 == 1.0
        assert scores[phase].residual_stats()["mae"] == 0.0


def test_shifted_picker_has_exact_residuals():
    scores = score_picks([pick(r.trace_id, r.phase, r.time + 0.15) for r in REFERENCE], REFERENCE)
    assert scores["P"].f1 == 1.0
    stats = scores["P"].residual_stats()
    assert stats["mean"] == pytest.approx(0.15) and stats["mae"] == pytest.approx(0.15)
    assert stats["std"] == pytest.approx(0.0, abs=1e-9)
    assert stats["outlier_fraction"] == 0.0
    late = score_picks([pick(r.trace_id, r.phase, r.time + 0.6) for r in REFERENCE], REFERENCE)
    assert late["P"].true_positives == 0 and late["P"].false_positives == 2
    assert late["P"].false_negatives == 2 and late["P"].f1 == 0.0


def test_empty_picker():
    scores = score_picks([], REFERENCE)
    assert scores["P"].precision == 0.0 and scores["P"].recall == 0.0 and scores["P"].f1 == 0.0
    assert scores["P"].false_negatives == 2
    assert np.isnan(scores["P"].residual_stats()["mae"])


def test_duplicate_picks_count_as_false_positives():
    predicted = [pick("XX.A.", "P", 100.1), pick("XX.A.", "P", 99.95), pick("XX.B.", "P", 200.0)]
    scores = score_picks(predicted, REFERENCE)
    p = scores["P"]
    assert (p.true_positives, p.false_positives, p.false_negatives) == (2, 1, 0)
    assert p.precision == pytest.approx(2 / 3) and p.recall == 1.0
    assert sorted(np.round(p.residuals, 6)) == [-0.05, 0.0]  # the closer duplicate wins


def test_wrong_station_or_phase_is_not_a_hit():
    scores = score_picks([pick("XX.C.", "P", 100.0), pick("XX.A.", "S", 100.0)], REFERENCE)
    assert scores["P"].true_positives == 0 and scores["S"].true_positives == 0


def test_min_probability_filters():
    predicted = [pick("XX.A.", "P", 100.0, 0.2), pick("XX.B.", "P", 200.0, 0.8)]
    assert score_picks(predicted, REFERENCE, min_probability=0.5)["P"].true_positives == 1


def test_match_is_one_to_one_and_closest_first():
    # 10.4 takes 10.3 (closest pair); 10.0 is then 0.9 s from 10.9: one hit, not two
    m = match_picks([10.0, 10.4], [10.3, 10.9], tolerance=0.5)
    assert m.true_positives == 1
    assert np.round(m.residuals, 6).tolist() == [0.1]
    assert match_picks([10.0], [10.0, 10.1]).true_positives == 1
