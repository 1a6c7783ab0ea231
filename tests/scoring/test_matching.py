import numpy as np
import pytest
from seisbench.util import Pick

from xiaonet.scoring.matching import ReferencePick, match_picks, score_picks

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


# --- threshold sweep, ROC AUC, MCC -----------------------------------------------------------

from xiaonet.scoring.matching import (  # noqa: E402
    best_f1_threshold,
    matthews_corrcoef,
    residual_summary,
    roc_auc,
    sweep_thresholds,
)


def test_sweep_thresholds_drops_weak_picks_and_finds_best_f1():
    # P on A is right but weak (0.2); P on B is right and strong; a strong false P on B.
    predicted = [
        pick("XX.A.", "P", 100.0, 0.2),
        pick("XX.B.", "P", 200.0, 0.9),
        pick("XX.B.", "P", 150.0, 0.5),
    ]
    points = sweep_thresholds(predicted, REFERENCE, [0.1, 0.4, 0.6], phases=("P",))
    by_t = {p.threshold: p for p in points}
    assert (by_t[0.1].true_positives, by_t[0.1].false_positives) == (2, 1)
    assert by_t[0.1].f1 == pytest.approx(0.8)
    assert (by_t[0.4].true_positives, by_t[0.4].false_positives) == (1, 1)
    assert (by_t[0.6].true_positives, by_t[0.6].false_positives) == (1, 0)
    assert by_t[0.6].f1 == pytest.approx(2 / 3)
    assert best_f1_threshold(points, "P").threshold == 0.1
    assert best_f1_threshold(points, "S") is None


def test_sweep_of_empty_picker_is_all_zero():
    points = sweep_thresholds([], REFERENCE, [0.1, 0.5])
    assert all(p.f1 == 0.0 and p.false_negatives == 2 for p in points)


def test_roc_auc_known_cases():
    assert roc_auc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert roc_auc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5  # a tie counts one half
    # one positive (0.6) beats 2 of 3 negatives (0.1, 0.5) and loses to 0.7
    assert roc_auc([0.6, 0.1, 0.5, 0.7], [True, False, False, False]) == pytest.approx(2 / 3)
    assert np.isnan(roc_auc([0.3, 0.4], [True, True]))


def test_matthews_corrcoef_known_cases():
    truth = [True, True, False, False]
    assert matthews_corrcoef(truth, truth) == 1.0
    assert matthews_corrcoef(truth, [False, False, True, True]) == -1.0
    assert matthews_corrcoef(truth, [True, True, True, True]) == 0.0  # undefined -> 0
    # tp=1 tn=1 fp=1 fn=1 -> 0
    assert matthews_corrcoef(truth, [True, False, True, False]) == 0.0


def test_residual_summary_matches_hand_computation():
    stats = residual_summary([0.1, -0.1, 0.3])
    assert stats["mean"] == pytest.approx(0.1)
    assert stats["mae"] == pytest.approx(0.5 / 3)
    assert stats["rmse"] == pytest.approx(np.sqrt(0.11 / 3))
    assert stats["outlier_fraction"] == pytest.approx(1 / 3)


# --- pooled F1 with bootstrap intervals ------------------------------------------------------

from xiaonet.scoring.matching import (bootstrap_indices, f1_from_counts, paired_f1_difference,  # noqa: E402
                                      pooled_f1, pooled_median)

RECORDS = [(2, 0, 0), (0, 1, 1), (1, 1, 0)]  # (TP, FP, FN) of three records
RESAMPLED = np.array([[0, 1, 2], [0, 0, 0], [1, 1, 1], [2, 2, 1]])


def test_pooled_f1_by_hand():
    # sums (3, 2, 1) -> 6 / 9; resamples: (3, 2, 1) 2/3, (6, 0, 0) 1, (0, 3, 3) 0, (2, 3, 1) 4/8
    result = pooled_f1(RECORDS, RESAMPLED, level=0.5)
    assert result.value == pytest.approx(2 / 3)
    # 25th and 75th percentile of [0, 0.5, 2/3, 1], numpy's linear interpolation
    assert result.low == pytest.approx(0.375)
    assert result.high == pytest.approx(2 / 3 + 0.25 * (1 / 3))


def test_paired_difference_uses_the_same_records_for_both():
    other = [(1, 0, 1)] * 3  # F1 2/3 on every resample
    result = paired_f1_difference(RECORDS, other, RESAMPLED, level=0.5)
    assert result.value == pytest.approx(0.0)
    # differences [0, 1/3, -2/3, -1/6]
    assert result.low == pytest.approx(-2 / 3 + 0.75 * 0.5)
    assert result.high == pytest.approx(0.25 * (1 / 3))
    same = paired_f1_difference(RECORDS, RECORDS, RESAMPLED)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="3 records for A but 2 for B"):
        paired_f1_difference(RECORDS, RECORDS[:2], RESAMPLED)


def test_interval_holds_the_estimate_and_narrows_with_more_records():
    rng = np.random.default_rng(7)

    def records(n):  # one reference pick per record, hit with probability 0.8, a false pick 10%
        hit = rng.random(n) < 0.8
        return np.stack([hit, rng.random(n) < 0.1, ~hit], axis=1).astype(int)

    widths = []
    for n in (20, 80, 500):
        counts = records(n)
        result = pooled_f1(counts, bootstrap_indices(n, np.random.default_rng(1), 1000))
        assert result.low <= result.value <= result.high
        assert result.value == pytest.approx(float(f1_from_counts(*counts.sum(axis=0))))
        widths.append(result.high - result.low)
    assert widths[0] > widths[1] > widths[2]


def test_bootstrap_is_seeded_and_empty_input_has_no_interval():
    a = bootstrap_indices(5, np.random.default_rng(3), 10)
    assert a.shape == (10, 5) and np.array_equal(a, bootstrap_indices(5, np.random.default_rng(3), 10))
    empty = pooled_f1(np.zeros((0, 3)), bootstrap_indices(0, np.random.default_rng(3), 10))
    assert empty.value == 0.0 and np.isnan(empty.low)


def test_pooled_median_by_hand():
    residuals = [np.array([0.1]), np.array([0.2, 0.3]), np.zeros(0)]
    result = pooled_median(residuals, np.array([[0, 0, 0], [1, 1, 2], [2, 2, 2]]), level=0.5)
    assert result.value == pytest.approx(0.2)
    # medians 0.1 and 0.25 (the resample without residuals is skipped)
    assert result.low == pytest.approx(0.1375) and result.high == pytest.approx(0.2125)


def test_pooled_recall_by_hand():
    from xiaonet.scoring.matching import pooled_recall

    # recalls of the resamples: 3/4, 6/6, 0/3, 2/3; the whole set 3/4
    result = pooled_recall(RECORDS, RESAMPLED, level=0.5)
    assert result.value == pytest.approx(0.75)
    assert result.low == pytest.approx(0.5) and result.high == pytest.approx(0.8125)
