"""Teacher-consensus reference picks: scoring on continuous data that no analyst picked.

Most of the corpus, and most of what a new network records, has no analyst picks. There the
reference is what the teachers agree on: a pick of a phase that *every* teacher made within
``agreement_s`` (0.3 s) of the others, at their mean time. A pick that only some teachers
made is uncertain, so a student pick near it is neither rewarded nor penalised, and missing
it is no error (:func:`xiaonet.scoring.matching.score_picks` with ``ignored=``).

Agreement with the consensus is not accuracy: it says how close a student comes to the
teachers on data it never saw, and it cannot show a student being better than both of them.

>>> import seisbench.util as sbu
>>> import obspy
>>> t = obspy.UTCDateTime(2020, 1, 1)
>>> a = [sbu.Pick("XX.A.", t, peak_time=t, phase="P"), sbu.Pick("XX.A.", t + 9, peak_time=t + 9, phase="S")]
>>> b = [sbu.Pick("XX.A.", t + 0.1, peak_time=t + 0.1, phase="P")]
>>> reference = consensus_reference({"phasenet": a, "eqtransformer": b})
>>> [(r.phase, round(r.time - float(t), 2)) for r in reference.picks]
[('P', 0.05)]
>>> [(r.phase, round(r.time - float(t), 2)) for r in reference.ignored]
[('S', 9.0)]
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from xiaonet.scoring.matching import ReferencePick, _pick_time, pair_closest

#: Teacher picks of one phase within this many seconds of each other agree.
AGREEMENT_S = 0.3
#: The teachers pick at this probability threshold (their operating point in this project).
TEACHER_THRESHOLD = 0.3
#: The teachers whose agreement is the reference.
CONSENSUS_TEACHERS = ("phasenet", "eqtransformer")


def is_consensus_teacher(picker_name: str) -> bool:
    """Is this picker (``phasenet``, ``eqtransformer:original``, ...) one of the reference teachers?"""
    return picker_name.split(":")[0] in CONSENSUS_TEACHERS


@dataclass
class ConsensusReference:
    """Reference picks (all teachers agree) and ignored picks (only some teachers made them)."""

    picks: list[ReferencePick] = field(default_factory=list)
    ignored: list[ReferencePick] = field(default_factory=list)

    def shifted(self, seconds: float) -> "ConsensusReference":
        """The same reference on a time base ``seconds`` later."""
        return ConsensusReference([ReferencePick(r.trace_id, r.phase, r.time + seconds) for r in self.picks],
                                  [ReferencePick(r.trace_id, r.phase, r.time + seconds) for r in self.ignored])


def consensus_reference(picks_by_teacher: Mapping[str, Iterable],
                        agreement_s: float = AGREEMENT_S) -> ConsensusReference:
    """Consensus of two or more teachers' picks (SeisBench ``Pick``-like objects).

    Per station (``trace_id``) and phase, the first teacher's picks are paired one-to-one
    with each further teacher's (closest first, within ``agreement_s``); a pick paired with
    every other teacher becomes a reference pick at the mean time, every other pick is
    ignored.
    """
    if len(picks_by_teacher) < 2:
        raise ValueError(f"a consensus needs at least two teachers, got {list(picks_by_teacher)}")
    grouped: list[dict[tuple[str, str], np.ndarray]] = []
    for picks in picks_by_teacher.values():
        groups: dict[tuple[str, str], list[float]] = defaultdict(list)
        for pick in picks:
            if pick.phase in ("P", "S"):
                groups[(pick.trace_id, pick.phase)].append(_pick_time(pick))
        grouped.append({key: np.sort(np.asarray(times)) for key, times in groups.items()})
    keys = sorted({key for groups in grouped for key in groups})
    result = ConsensusReference()
    for key in keys:
        times = [groups.get(key, np.zeros(0)) for groups in grouped]
        # one chain per pick of the first teacher: the index of its partner in each teacher
        chains = [[k] for k in range(times[0].size)]
        alive = list(range(len(chains)))
        for other in range(1, len(times)):
            anchors = np.asarray([np.mean([times[m][i] for m, i in enumerate(chains[c])]) for c in alive])
            pairs = pair_closest(anchors, times[other], agreement_s)
            for i, j in pairs:
                chains[alive[i]].append(j)
            alive = [alive[i] for i, _ in pairs]
        trace_id, phase = key
        agreed = [chains[c] for c in alive]
        used = [set() for _ in times]
        for chain in agreed:
            for m, i in enumerate(chain):
                used[m].add(i)
            mean = float(np.mean([times[m][i] for m, i in enumerate(chain)]))
            result.picks.append(ReferencePick(trace_id, phase, mean))
        for m, teacher_times in enumerate(times):
            for i, t in enumerate(teacher_times):
                if i not in used[m]:
                    result.ignored.append(ReferencePick(trace_id, phase, float(t)))
    return result


def teacher_picks_from_curves(probabilities: np.ndarray, trace_id: str, start_time: float,
                              sampling_rate: float = 100.0, threshold: float = TEACHER_THRESHOLD):
    """A teacher's picks from its (2, n) P / S probability curves, as SeisBench picks them
    (on at ``threshold``, off at half of it, the peak is the pick): the project's one trigger,
    :func:`xiaonet.edge.picks.picks_from_curve`, checked against ObsPy's."""
    from xiaonet.edge.picks import picks_from_curve

    return [pick for row, phase in enumerate("PS")
            for pick in picks_from_curve(np.asarray(probabilities[row], dtype=np.float32), start_time,
                                         sampling_rate, threshold, phase, trace_id)]


__all__ = ["ConsensusReference", "consensus_reference", "teacher_picks_from_curves", "AGREEMENT_S",
           "TEACHER_THRESHOLD", "CONSENSUS_TEACHERS"]
