"""Teacher probabilities for training: PhaseNet, EQTransformer and their ensemble, cached on disk.

Each teacher annotates a whole record once (``teacher.annotate``: its own windowing, 6000
samples for EQTransformer, and its own normalisation); the output is interpolated onto the
record's samples and mapped onto the student's P and S channels (PhaseNet gives N, P, S;
EQTransformer gives detection, P, S; noise is ``1 - P - S`` at training time). The result is
stored as ``<cache_dir>/<teacher>_<weights>/<source>/<hash>.npz`` keyed by the record name
and a hash of its samples, so the teachers run once however many epochs and runs follow.

The waveform is scaled to a peak of 1 before a teacher sees it: SeisBench's PhaseNet adds a
fixed epsilon in its normalisation and returns nothing for data in physical units (~1e-20).
Records shorter than a teacher's window get no teacher label (SeisBench returns nothing),
and are counted in a note.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from xiaonet.distill.config import TeacherMember
from xiaonet.data.records import Record, record_stream

logger = logging.getLogger(__name__)

#: Output channel suffixes of each teacher's annotate() that carry P and S probabilities.
TEACHER_PHASE_CHANNELS = {"phasenet": ("P", "S"), "eqtransformer": ("P", "S")}
CACHE_VERSION = "v1"


def teacher_key(member: TeacherMember) -> str:
    return f"{member.name}_{member.weights}"


def consensus_members() -> list[TeacherMember]:
    """The teachers whose agreement is the reference on continuous held-out data."""
    from xiaonet.scoring.consensus import CONSENSUS_TEACHERS

    return [TeacherMember(name, "original") for name in CONSENSUS_TEACHERS]


def map_annotations(annotations, record: Record, sampling_rate: float = 100.0) -> np.ndarray | None:
    """Teacher annotation stream -> (2, n) P, S probabilities on the record's samples."""
    out = np.zeros((2, record.n_samples), dtype=np.float32)
    times = record.start_time + np.arange(record.n_samples) / sampling_rate
    found = False
    for row, phase in enumerate("PS"):
        traces = [tr for tr in annotations if tr.stats.channel.split("_")[-1] == phase]
        for trace in traces:
            t = float(trace.stats.starttime) + np.arange(trace.stats.npts) * trace.stats.delta
            values = np.interp(times, t, trace.data, left=np.nan, right=np.nan)
            inside = np.isfinite(values)
            out[row, inside] = np.maximum(out[row, inside], values[inside])
            found = found or inside.any()
    return np.clip(out, 0.0, 1.0) if found else None


def annotate_record(model, record: Record, batch_size: int = 64) -> np.ndarray | None:
    """One teacher's (2, n) P/S probabilities of a whole record, or None if it returns nothing."""
    import torch

    scaled = Record(**{**record.__dict__})
    peak = float(np.abs(record.waveform).max())
    scaled.waveform = record.waveform / peak if peak > 0 else record.waveform
    stream = record_stream(scaled)
    if len(stream) == 0:
        return None
    with torch.no_grad():
        annotations = model.annotate(stream, batch_size=batch_size)
    if len(annotations) == 0:
        return None
    return map_annotations(annotations, record)


class TeacherLabelCache:
    """On-disk cache of one teacher's P/S probabilities per record."""

    def __init__(self, cache_dir: str | Path, member: TeacherMember):
        self.member = member
        self.folder = Path(cache_dir) / teacher_key(member)

    def path(self, record: Record) -> Path:
        return self.folder / record.source / f"{record.content_hash()}_{CACHE_VERSION}.npz"

    def load(self, record: Record) -> tuple[bool, np.ndarray | None]:
        """(cached?, labels) - labels is None when the teacher returned nothing."""
        path = self.path(record)
        if not path.is_file():
            return False, None
        with np.load(path) as data:
            if not bool(data["ok"]):
                return True, None
            return True, data["labels"].astype(np.float16)

    def store(self, record: Record, labels: np.ndarray | None) -> None:
        path = self.path(record)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
        np.savez_compressed(
            tmp,
            ok=np.asarray(labels is not None),
            labels=(labels if labels is not None else np.zeros((2, 0))).astype(np.float16),
            name=np.asarray(record.name),
        )
        os.replace(tmp, path)


def attach_teacher_labels(records: Iterable[Record], members: list[TeacherMember], cache_dir: str | Path,
                          batch_size: int = 64, note: Callable[[str], None] | None = None,
                          progress: bool = False, load_model: Callable | None = None,
                          combine: str = "mean", keep_members: bool = False) -> dict:
    """Set ``record.teacher`` to the members' P/S probabilities combined (``mean`` or ``max``).

    Missing cache entries are computed (each teacher is loaded only if needed). A record gets
    labels only if every member labelled it. With ``keep_members`` each member's own curves
    are kept in ``record.teacher_members`` (what the consensus reference is picked from).
    Returns counts for the manifest.

    :param load_model: ``(name, weights) -> model``; defaults to :func:`xiaonet.models.teachers.load_teacher`.
    """
    from xiaonet.models.teachers import load_teacher

    note = note or logger.info
    load_model = load_model or load_teacher
    records = list(records)
    counts = {"records": len(records), "labelled": 0, "computed": 0, "teacher_returned_nothing": {}}
    per_member = []
    for member in members:
        cache = TeacherLabelCache(cache_dir, member)
        labels: list[np.ndarray | None] = []
        model = None
        iterator = records
        if progress:
            from tqdm import tqdm

            iterator = tqdm(records, desc=f"teacher {teacher_key(member)}", unit="rec", leave=False)
        nothing = 0
        for record in iterator:
            cached, value = cache.load(record)
            if not cached:
                if model is None:
                    model = load_model(member.name, member.weights)
                value = annotate_record(model, record, batch_size)
                cache.store(record, value)
                counts["computed"] += 1
            if value is None:
                nothing += 1
            labels.append(value)
        if nothing:
            note(f"teacher {teacher_key(member)} returned nothing for {nothing} record(s) "
                 "(shorter than its window); they get no teacher label")
        counts["teacher_returned_nothing"][teacher_key(member)] = nothing
        per_member.append(labels)
    reduce = {"mean": np.mean, "max": np.max}[combine]
    for i, record in enumerate(records):
        values = [labels[i] for labels in per_member]
        if keep_members:
            record.teacher_members = {teacher_key(m): v for m, v in zip(members, values) if v is not None}
        if members and all(v is not None for v in values):
            record.teacher = reduce([v.astype(np.float32) for v in values], axis=0).astype(np.float16)
            counts["labelled"] += 1
        else:
            record.teacher = None
    return counts
