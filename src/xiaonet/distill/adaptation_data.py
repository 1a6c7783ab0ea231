"""The data of a ``xiaonet adapt`` run (:mod:`xiaonet.distill.adaptation`): its settings,
every input checked before any work (:func:`plan_adaptation`: one-line refusals naming the
file), each instrument's data split in time into a training part and the held-out tuning and
report parts (:func:`split_in_time`), the segments those are cut into, and a segment read as
training records (:func:`segment_records`) with the user's analyst picks in them.

Only headers (or SDS file names and headers) are read to plan: a day of a network is planned
in seconds, and nothing is read twice.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from xiaonet.distill.config import TEACHER_COMBINATIONS


#: Shortest record adapt trains on (one training window of 3,001 samples at 100 Hz).
MIN_RECORD_S = 30.0
#: The source name of the user's data inside the training config and the teacher cache.
SOURCE_NAME = "data"


class AdaptError(ValueError):
    """An input adapt cannot use; the one-line message names it and says what is expected."""


@dataclass
class AdaptSettings:
    """Everything a ``xiaonet adapt`` run depends on (the command line, typed)."""

    #: Waveform files, folders or globs (empty with ``sds``).
    inputs: list[str]
    #: Output prefix: ``PREFIX.pt``, ``PREFIX.json``, ``PREFIX.md``.
    out: str
    sds: str | None = None
    start: str | None = None
    end: str | None = None
    #: ``NET.STA.LOC.CHA`` patterns (``*`` / ``?``); empty: every instrument.
    select: list[str] = field(default_factory=list)
    #: Starting student: a preset name or a weights prefix; None: the package's default preset.
    start_student: str | None = None
    #: How the teachers' P / S become the target: ``max`` (an arrival either teacher sees:
    #: measured better on weak arrivals, docs/training.md) or ``mean`` (both, as in training).
    teacher: str = "max"
    #: Analyst picks (a CSV as ``xiaonet pick`` writes, or QuakeML), optional: hard labels on
    #: the records holding both a P and an S pick, and a second reference on the report part.
    picks: str | None = None
    #: Wall-clock budget for everything (labelling included), minutes.
    minutes: float = 10.0
    #: Run folder; None: ``PREFIX.run``.
    run_dir: str | None = None
    seed: int = 20261206
    #: Training batches in all (the schedule); the time budget may stop it earlier.
    steps: int = 6000
    steps_per_epoch: int = 50
    batch_size: int = 32
    lr: float = 3e-3
    #: Share of each instrument's data held out (the last part in time).
    held_out: float = 0.25
    segment_s: float = 300.0
    threads: int = 1
    progress: bool = True

    def resolved_start(self) -> str:
        from xiaonet.models.presets import DEFAULT_PRESET

        return self.start_student or DEFAULT_PRESET

    def run_path(self) -> Path:
        return Path(self.run_dir) if self.run_dir else Path(f"{self.out}.run")

    def identity(self) -> dict:
        """What the data and the result depend on: a run folder refuses other values."""
        return {"inputs": [str(i) for i in self.inputs], "sds": self.sds, "start": self.start, "end": self.end,
                "select": list(self.select), "start_student": self.resolved_start(), "teacher": self.teacher,
                "picks": self.picks,
                "seed": self.seed, "held_out": self.held_out, "segment_s": self.segment_s}


@dataclass(frozen=True)
class Segment:
    """A stretch of one instrument's data and the part it belongs to."""

    key: str  # NET.STA.LOC.CH
    start: float  # POSIX seconds
    end: float
    part: str  # train / tune / report

    @property
    def id(self) -> str:
        return f"{self.key}@{self.start:.3f}"

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class AdaptPlan:
    """The checked inputs: files by instrument, their segments, the starting student."""

    files: dict  # instrument key -> [FileSpan]
    segments: list[Segment]
    n_files: int
    student_args: dict  # the starting student's constructor arguments
    preset: str  # the preset whose layers the starting student has (else the default preset)
    window_len: int  # training window, samples
    #: Analyst pick times by station (``NET.STA``) and phase: ``{station: {"P": array, "S": array}}``.
    picks: dict = field(default_factory=dict)


def _components(channels) -> set[str]:
    aliases = {"1": "N", "2": "E"}
    return {aliases.get(c[-1:].upper(), c[-1:].upper()) for c in channels}


def _check_output(prefix: str) -> None:
    target = Path(prefix)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise AdaptError(f"--out {prefix}: folder {folder} does not exist (create it first)")
    if not os.access(folder, os.W_OK):
        raise AdaptError(f"--out {prefix}: folder {folder} is not writable")
    for suffix in (".pt", ".json", ".md"):
        path = Path(f"{prefix}{suffix}")
        if path.is_dir() or (path.exists() and not os.access(path, os.W_OK)):
            raise AdaptError(f"--out {prefix}: {path} cannot be written")


def _start_student(name: str):
    from xiaonet.models.presets import PRESETS, WeightsError, load_student

    try:
        model = load_student(name)
    except (FileNotFoundError, ValueError, WeightsError) as error:
        raise AdaptError(f"--from {name}: {error}") from None
    args = {k: v for k, v in model.get_model_args().items() if k not in ("filter_args", "filter_kwargs", "grouping")}
    preset = next((p.name for p in PRESETS.values()
                   if all(args.get(k) == (list(v) if isinstance(v, tuple) else v) for k, v in p.model_args.items())),
                  None)
    from xiaonet.models.presets import DEFAULT_PRESET

    return model, args, preset or DEFAULT_PRESET


def _instrument_files(settings: AdaptSettings) -> tuple[dict, int]:
    import obspy

    from xiaonet.data.archive_sources import folder_files, sds_files
    from xiaonet.data.waveforms import NOT_WAVEFORM_SUFFIXES, WaveformInputError, expand_inputs

    if bool(settings.sds) == bool(settings.inputs):
        raise AdaptError("give either --sds ROOT or waveform files / folders / globs, not both or neither")
    try:
        start = obspy.UTCDateTime(settings.start) if settings.start else None
        end = obspy.UTCDateTime(settings.end) if settings.end else None
    except Exception:
        raise AdaptError(f"--start / --end: not a UTC time ({settings.start}, {settings.end}); "
                         "e.g. 2020-01-01 or 2020-01-01T12:00") from None
    problems: list[str] = []
    try:
        if settings.sds:
            days = sds_files(settings.sds, settings.select, start, end)
            if not days:
                raise AdaptError(f"--sds {settings.sds}: no day files in the time range and selection")
            # the spans the day files' headers give, not whole days: what is held out must hold data
            files = folder_files(sorted({s.path for spans in days.values() for s in spans}), settings.select,
                                 unreadable=problems.append)
            if problems:
                raise AdaptError(problems[0])
        else:
            paths = [p for p in expand_inputs(settings.inputs, unmatched=problems.append)
                     if p.suffix.lower() not in NOT_WAVEFORM_SUFFIXES]
            if problems:
                raise AdaptError(problems[0])
            files = folder_files(paths, settings.select, unreadable=problems.append)
            if problems:
                raise AdaptError(problems[0])
    except (WaveformInputError, ValueError) as error:
        raise AdaptError(str(error)) from None
    if start is not None or end is not None:  # plain files: keep only what lies in the range
        t0 = float(start.timestamp) if start else -math.inf
        t1 = float(end.timestamp) if end else math.inf
        files = {k: [s for s in spans if s.end > t0 and s.start < t1] for k, spans in files.items()}
        files = {k: v for k, v in files.items() if v}
    n_files = len({s.path for spans in files.values() for s in spans})
    return files, n_files


def _check_instruments(files: dict, settings: AdaptSettings) -> None:
    for key, spans in files.items():
        components = _components(c for s in spans for c in s.channels)
        if not {"Z", "N", "E"} <= components:
            raise AdaptError(f"{spans[0].path}: {key} has components {', '.join(sorted(components)) or 'none'}; "
                             "adapt needs 3-component data (Z, N/1, E/2); leave it out (--select) or add the others")
        if settings.sds:
            continue
        for span in spans:
            if span.end - span.start < MIN_RECORD_S:
                raise AdaptError(f"{span.path}: {key} holds {span.end - span.start:.1f} s of data, shorter than "
                                 f"the {MIN_RECORD_S:g} s adapt needs (event files of >= {MIN_RECORD_S:g} s or "
                                 "continuous data)")


def read_analyst_picks(path: str) -> dict[str, dict[str, np.ndarray]]:
    """Analyst picks by station (``NET.STA``) and phase (``P`` / ``S``, from the first letter
    of a QuakeML ``phase_hint``): a CSV as ``xiaonet pick`` writes, or any catalog ObsPy reads."""
    import obspy

    found: dict[str, dict[str, list[float]]] = {}
    if not Path(path).is_file():
        raise AdaptError(f"--picks {path}: no such file (a CSV as `xiaonet pick` writes, or QuakeML)")
    try:
        if Path(path).suffix.lower() == ".csv":
            from xiaonet.data.picktable import read_csv

            rows = [(r["network"], r["station"], r["phase"], r["time"]) for r in read_csv(path)]
        else:
            rows = [(p.waveform_id.network_code, p.waveform_id.station_code, p.phase_hint or "", p.time)
                    for event in obspy.read_events(path) for p in event.picks]
        for network, station, phase, when in rows:
            phase = phase.strip()[:1].upper()
            if phase in ("P", "S"):
                found.setdefault(f"{network}.{station}", {"P": [], "S": []})[phase].append(
                    float(obspy.UTCDateTime(when).timestamp))
    except AdaptError:
        raise
    except Exception as error:  # csv, ObsPy and time parsing raise many types
        raise AdaptError(f"--picks {path}: not a pick table (CSV as `xiaonet pick` writes) or a catalog ObsPy "
                         f"reads: {type(error).__name__}: {error}") from None
    if not found:
        raise AdaptError(f"--picks {path}: holds no P or S pick")
    return {station: {phase: np.sort(np.asarray(times)) for phase, times in phases.items()}
            for station, phases in found.items()}


def _intervals(spans, t0: float, t1: float) -> list[list[float]]:
    """The time an instrument's files cover, merged, clipped to ``[t0, t1)``."""
    pieces = sorted((max(t0, (s.core or (s.start, s.end))[0]), min(t1, (s.core or (s.start, s.end))[1]))
                    for s in spans)
    merged: list[list[float]] = []
    for a, b in pieces:
        if b <= a:
            continue
        if merged and a <= merged[-1][1] + 1.0:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged


def split_in_time(intervals: list[list[float]], held_out: float, min_s: float = MIN_RECORD_S,
                  segment_s: float = 300.0) -> list[tuple[float, float, str]]:
    """``(start, end, part)`` pieces of an instrument's covered time: the first ``1 - held_out``
    of it (in covered seconds) ``train``, then ``tune`` and ``report`` halves of the rest, each
    cut into pieces of at most ``segment_s``. A piece shorter than ``min_s`` joins its
    neighbour (an event file is never cut in two), so short instruments may hold nothing out.

    >>> [(a, b, part) for a, b, part in split_in_time([[0.0, 400.0]], 0.25, segment_s=1000)]
    [(0.0, 300.0, 'train'), (300.0, 350.0, 'tune'), (350.0, 400.0, 'report')]
    """
    total = sum(b - a for a, b in intervals)
    cuts = [(1 - held_out) * total, (1 - held_out / 2) * total]
    parts = ("train", "tune", "report")
    out = []
    covered = 0.0
    for a, b in intervals:
        # relative to the interval's start: absolute POSIX times would round the cuts away
        edges = [0.0] + [c - covered for c in cuts if covered < c < covered + (b - a)] + [b - a]
        labels = [parts[sum(covered + x >= c - 1e-6 for c in cuts)] for x in edges[:-1]]
        pieces = [[a + x, a + y if y < b - a else b, p] for x, y, p in zip(edges[:-1], edges[1:], labels)]
        while len(pieces) > 1 and min(p[1] - p[0] for p in pieces) < min_s:
            i = min(range(len(pieces)), key=lambda k: pieces[k][1] - pieces[k][0])
            j = i - 1 if i == len(pieces) - 1 or (i > 0 and pieces[i - 1][1] - pieces[i - 1][0]
                                                  >= pieces[i + 1][1] - pieces[i + 1][0]) else i + 1
            lo, hi = min(i, j), max(i, j)
            pieces[lo:hi + 1] = [[pieces[lo][0], pieces[hi][1], pieces[j][2]]]
        for x, y, part in pieces:
            n = max(1, int(math.ceil((y - x) / segment_s - 0.01)))  # a few ms over is one segment
            step = (y - x) / n
            out += [(x + k * step, x + (k + 1) * step if k < n - 1 else y, part) for k in range(n)]
        covered += b - a
    return out


def plan_adaptation(settings: AdaptSettings) -> AdaptPlan:
    """Check every input and plan the segments; raises :class:`AdaptError` (one line) before
    any waveform is read beyond its headers."""
    if settings.teacher not in TEACHER_COMBINATIONS:
        raise AdaptError(f"--teacher '{settings.teacher}': unknown. Known: {', '.join(TEACHER_COMBINATIONS)}")
    if not settings.minutes > 0:
        raise AdaptError(f"--minutes {settings.minutes}: must be > 0")
    if not 0 < settings.held_out < 1:
        raise AdaptError(f"held-out share {settings.held_out}: must be in (0, 1)")
    _check_output(settings.out)
    model, args, preset = _start_student(settings.resolved_start())
    picks = read_analyst_picks(settings.picks) if settings.picks else {}
    files, n_files = _instrument_files(settings)
    if not files:
        raise AdaptError("no waveform data in the inputs (after --select and the time range)")
    _check_instruments(files, settings)
    import obspy

    t0 = float(obspy.UTCDateTime(settings.start).timestamp) if settings.start else -math.inf
    t1 = float(obspy.UTCDateTime(settings.end).timestamp) if settings.end else math.inf
    segments = [Segment(key, a, b, part)
                for key, spans in files.items()
                for a, b, part in split_in_time(_intervals(spans, t0, t1), settings.held_out,
                                                segment_s=settings.segment_s)]
    parts = {s.part for s in segments}
    if not {"tune", "report"} <= parts:
        raise AdaptError("the inputs hold too little data per instrument to hold a part out for checking "
                         f"(each instrument needs >= {2 * MIN_RECORD_S / settings.held_out:.0f} s, or several "
                         "event files)")
    shortest = min(b - a for key, spans in files.items() for a, b in _intervals(spans, t0, t1))
    student_window = int(args.get("window_len", 3001))
    rate = float(args.get("sampling_rate", 100.0))
    window_len = student_window if shortest >= (student_window - 1) / rate else int(MIN_RECORD_S * rate) + 1
    return AdaptPlan(files, segments, n_files, args, preset, window_len, picks)



def segment_records(segment: Segment, files: dict, sampling_rate: float, min_samples: int,
                    note: Callable[[str], None], picks: dict | None = None) -> list:
    """The contiguous blocks of a segment as :class:`xiaonet.data.records.Record` (cleaned as
    ``xiaonet pick`` cleans; blocks shorter than ``min_samples`` left out), with the analyst
    ``picks`` inside each block; a block holding a P and an S pick gets hard labels."""
    import obspy

    from xiaonet.data.archive_sources import read_span
    from xiaonet.data.records import Record, stream_to_array
    from xiaonet.data.waveforms import contiguous_blocks, prepare_station

    stream = read_span(files[segment.key], segment.key, segment.start, segment.end,
                       (segment.start, segment.end), note)
    for trace in stream:  # [start, end): neighbouring segments share no sample
        trace.trim(obspy.UTCDateTime(segment.start), obspy.UTCDateTime(segment.end - trace.stats.delta / 2),
                   nearest_sample=False)
    prepared = prepare_station(stream, note)
    records = []
    for index, (start, end) in enumerate(contiguous_blocks(prepared)):
        block = prepared.slice(start, end)
        waveform = stream_to_array(block, sampling_rate, start, end) if len(block) else None
        if waveform is None or waveform.shape[-1] < min_samples:
            continue
        net, sta = segment.key.split(".")[:2]
        mine = (picks or {}).get(f"{net}.{sta}", {})
        inside = {phase: (times[(times >= float(start)) & (times <= float(end))] - float(start)) * sampling_rate
                  for phase, times in mine.items()}
        p, s = inside.get("P", np.zeros(0)), inside.get("S", np.zeros(0))
        records.append(Record(name=f"{SOURCE_NAME}/{segment.id}#{index}", source=SOURCE_NAME, station=f"{net}.{sta}",
                              waveform=waveform, start_time=float(start), category="continuous",
                              p_samples=p, s_samples=s, hard_labels=bool(p.size and s.size)))
    return records
