"""The reference picks of a training record: its analyst picks, or, for a continuous record,
the picks its consensus teachers agree on. Training scores checkpoints against them
(:mod:`xiaonet.distill.selection`) and evaluation scores pickers on the held-out splits."""

from __future__ import annotations

from xiaonet.data.records import DataError, Record
from xiaonet.scoring.matching import ReferencePick


def record_reference_picks(record: Record, sampling_rate: float = 100.0, start_offset: float = 0.0):
    """Analyst picks of a record as :class:`xiaonet.scoring.matching.ReferencePick`."""
    trace_id = f"{record.station}."
    start = record.start_time + start_offset
    refs = [ReferencePick(trace_id, "P", start + p / sampling_rate) for p in record.p_samples]
    refs += [ReferencePick(trace_id, "S", start + s / sampling_rate) for s in record.s_samples]
    return refs


def record_references(record: Record, sampling_rate: float = 100.0, start_offset: float = 0.0):
    """The reference of a record as a :class:`xiaonet.scoring.consensus.ConsensusReference`.

    Labelled records: their analyst picks (nothing ignored). Continuous records: the picks
    every consensus teacher agrees on, with the picks of a single teacher ignored; a
    continuous record without both teachers' curves has no reference (an error to score).
    """
    import obspy

    from xiaonet.scoring.consensus import (CONSENSUS_TEACHERS, ConsensusReference, consensus_reference,
                                            teacher_picks_from_curves)

    if record.category != "continuous":
        return ConsensusReference(record_reference_picks(record, sampling_rate, start_offset), [])
    if record.consensus is None:
        curves = {name: value for name, value in record.teacher_members.items()
                  if name.split("_")[0] in CONSENSUS_TEACHERS}
        if len({name.split("_")[0] for name in curves}) < len(CONSENSUS_TEACHERS):
            raise DataError(f"{record.name}: continuous record without the curves of every consensus teacher "
                            f"({', '.join(CONSENSUS_TEACHERS)}); cannot score it")
        trace_id = f"{record.station}."
        record.consensus = consensus_reference(
            {name: teacher_picks_from_curves(value, trace_id, obspy.UTCDateTime(record.start_time),
                                            sampling_rate)  # UTCDateTime: times rounded as SeisBench's
             for name, value in curves.items()})
    return record.consensus.shifted(start_offset) if start_offset else record.consensus
