"""The teachers' consensus as a reference, and scoring that ignores single-teacher picks."""

from __future__ import annotations

import numpy as np
import obspy
import pytest
import seisbench.util as sbu

from xiaonet.scoring.consensus import consensus_reference, teacher_picks_from_curves
from xiaonet.scoring.matching import ReferencePick, score_picks

T0 = obspy.UTCDateTime(2020, 1, 1)


def pick(phase, seconds, station="XX.A.", value=0.9):
    t = T0 + seconds
    return sbu.Pick(station, t, t, peak_time=t, peak_value=value, phase=phase)


def test_consensus_keeps_agreeing_picks_at_their_mean_and_ignores_the_rest():
    a = [pick("P", 10.0), pick("S", 20.0), pick("P", 50.0), pick("P", 10.0, station="XX.B.")]
    b = [pick("P", 10.2), pick("S", 20.5), pick("S", 50.0), pick("P", 70.0, station="XX.B.")]
    reference = consensus_reference({"phasenet": a, "eqtransformer": b}, agreement_s=0.3)
    assert [(r.trace_id, r.phase, round(r.time - float(T0), 3)) for r in reference.picks] == [("XX.A.", "P", 10.1)]
    ignored = sorted((r.trace_id, r.phase, round(r.time - float(T0), 3)) for r in reference.ignored)
    # S 0.5 s apart disagree; a P of one teacher and an S of the other never agree
    assert ignored == [("XX.A.", "P", 50.0), ("XX.A.", "S", 20.0), ("XX.A.", "S", 20.5), ("XX.A.", "S", 50.0),
                       ("XX.B.", "P", 10.0), ("XX.B.", "P", 70.0)]


def test_consensus_of_three_teachers_needs_all_of_them():
    a, b, c = [pick("P", 5.0)], [pick("P", 5.1)], [pick("P", 9.0)]
    reference = consensus_reference({"a": a, "b": b, "c": c})
    assert reference.picks == [] and len(reference.ignored) == 3
    with pytest.raises(ValueError, match="at least two teachers"):
        consensus_reference({"a": a})


def test_single_teacher_picks_are_neither_rewarded_nor_penalised():
    reference = [ReferencePick("XX.A.", "P", float(T0 + 10))]
    ignored = [ReferencePick("XX.A.", "P", float(T0 + 40))]
    predicted = [pick("P", 10.05), pick("P", 40.1), pick("P", 80.0)]
    with_ignored = score_picks(predicted, reference, 0.5, ("P",), ignored=ignored)["P"]
    assert (with_ignored.true_positives, with_ignored.false_positives, with_ignored.false_negatives) == (1, 1, 0)
    plain = score_picks(predicted, reference, 0.5, ("P",))["P"]
    assert plain.false_positives == 2  # the pick near the ignored one counts without ignored=
    # a pick that matches the reference is kept even when an ignored pick is also near it
    near_both = score_picks([pick("P", 10.0)], reference, 0.5, ("P",),
                            ignored=[ReferencePick("XX.A.", "P", float(T0 + 10.2))])["P"]
    assert near_both.true_positives == 1


def test_picks_from_cached_curves_follow_seisbench_s_trigger_rule():
    n = 3000
    t = np.arange(n)
    curves = np.stack([np.exp(-0.5 * ((t - 1000) / 10) ** 2), 0.5 * np.exp(-0.5 * ((t - 2000) / 20) ** 2)])
    picks = teacher_picks_from_curves(curves, "XX.A.", float(T0), 100.0, threshold=0.3)
    assert [(p.phase, round(float(p.peak_time) - float(T0), 2)) for p in picks] == [("P", 10.0), ("S", 20.0)]
    assert teacher_picks_from_curves(curves * 0.2, "XX.A.", float(T0), 100.0, threshold=0.3) == []
