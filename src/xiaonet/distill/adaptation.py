"""``xiaonet adapt``: distil a shipped student further on a user's own unlabelled data.

What it does, in the order a run folder records it (``adapt.json``):

1. **Plan** (before any work; every bad input refused in one line naming it): the waveform
   files (files, folders, globs, or an SDS tree with a time range) by instrument, from their
   headers or file names only; 3-component instruments only, records of at least 30 s.
   Each instrument's data are cut, time-contiguously, into a *training* part (the first
   75%), a *tuning* part and a *report* part (the last 25%, halved in time): the held-out
   parts are never trained on. Every part is cut into segments of about 5 minutes.
2. **Label** a seeded random sample of the segments with PhaseNet and EQTransformer
   (:mod:`xiaonet.distill.teacher_labels`, cached in the run folder) within a share of the
   time budget: a day of a network cannot be labelled in minutes on two cores, a random
   sample of it can. Held-out segments keep each teacher's own curves: their consensus is
   the reference.
3. **Score the starting student** on the report part (its own thresholds, and thresholds
   tuned on the tuning part).
4. **Train** with the project's one loop (:func:`xiaonet.distill.training.train`): a
   :class:`~xiaonet.distill.config.TrainConfig` with ``model.init_weights`` = the starting
   student, one continuous source (the labelled training segments), teacher labels only
   (``loss.alpha`` 1); the tuning part chooses the epoch and the thresholds, the report part
   is scored once at the end.
5. **Write** ``PREFIX.pt`` / ``PREFIX.json`` (``XiaoNet.save``, tuned thresholds in
   ``default_args``) and the card ``PREFIX.md``.

Rerunning the same command resumes: labelled segments come from the cache, training from
its checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from xiaonet.distill.config import TEACHER_COMBINATIONS

#: Shortest record adapt trains on (one training window of 3,001 samples at 100 Hz).
MIN_RECORD_S = 30.0
#: The source name of the user's data inside the training config and the teacher cache.
SOURCE_NAME = "data"
#: Shares of the labelled data per part (train, tuning, report) while the budget lasts.
PART_SHARES = {"train": 2 / 3, "tune": 1 / 6, "report": 1 / 6}
#: Share of ``minutes`` spent labelling at most, and the share kept for the end (threshold
#: tuning, report scoring, writing the card).
LABEL_SHARE = 0.45
FINISH_SHARE = 0.1


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
    steps: int = 2000
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


# --- 1. plan: every check before any work -----------------------------------------------------


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

    from xiaonet.archive.sources import folder_files, sds_files
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
            from xiaonet.picking.picktable import read_csv

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


# --- 2. label a random sample within the budget ------------------------------------------------


def labelling_order(segments: list[Segment], seed: int) -> list[Segment]:
    """Every segment once, in a seeded random order that keeps the parts at their shares
    (:data:`PART_SHARES`) of the labelled time while any are left."""
    rng = np.random.default_rng([seed, 7])
    queues = {part: [segments[i] for i in rng.permutation(len(segments)) if segments[i].part == part]
              for part in PART_SHARES}
    done = {part: 0.0 for part in PART_SHARES}
    order = []
    while any(queues.values()):
        total = sum(done.values()) or 1.0
        part = min((p for p in PART_SHARES if queues[p]), key=lambda p: done[p] / total - PART_SHARES[p])
        segment = queues[part].pop(0)
        done[part] += segment.duration
        order.append(segment)
    return order


def segment_records(segment: Segment, files: dict, sampling_rate: float, min_samples: int,
                    note: Callable[[str], None], picks: dict | None = None) -> list:
    """The contiguous blocks of a segment as :class:`xiaonet.data.records.Record` (cleaned as
    ``xiaonet pick`` cleans; blocks shorter than ``min_samples`` left out), with the analyst
    ``picks`` inside each block; a block holding a P and an S pick gets hard labels."""
    import obspy

    from xiaonet.archive.sources import read_span
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


class _RunState:
    """``adapt.json`` in the run folder: the settings, the plan's segments, what is done."""

    def __init__(self, run_dir: Path, settings: AdaptSettings):
        self.path = run_dir / "adapt.json"
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        if self.data and self.data.get("settings") != settings.identity():
            changed = sorted(k for k, v in settings.identity().items() if self.data["settings"].get(k) != v)
            raise AdaptError(f"{run_dir}: holds an adapt run with other settings ({', '.join(changed)}); "
                             "rerun the same command to resume, or give another --run-dir")
        self.data.setdefault("settings", settings.identity())

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1) + "\n")
        tmp.replace(self.path)


class OneWindowAtLeast:
    """A teacher that also labels records shorter than its window: SeisBench returns nothing
    for them (EQTransformer's window is 60 s, and event files may be 30 s), so each trace is
    padded with zeros after its end to one window; the labels past the record's end are
    never used (:func:`xiaonet.distill.teacher_labels.map_annotations` keeps the record's
    samples only)."""

    def __init__(self, model):
        self.model = model

    def annotate(self, stream, **kwargs):
        window = int(getattr(self.model, "in_samples", 0) or 0)
        if window and any(trace.stats.npts < window for trace in stream):
            stream = stream.copy()
            for trace in stream:
                if trace.stats.npts < window:
                    trace.data = np.concatenate([trace.data, np.zeros(window - trace.stats.npts, trace.data.dtype)])
        return self.model.annotate(stream, **kwargs)


def _teacher_loader(load_model: Callable | None) -> Callable:
    from xiaonet.models.teachers import load_teacher

    loaded: dict = {}

    def load(name: str, weights: str):
        if (name, weights) not in loaded:
            loaded[(name, weights)] = OneWindowAtLeast((load_model or load_teacher)(name, weights))
        return loaded[(name, weights)]

    return load


def label_sample(plan: AdaptPlan, settings: AdaptSettings, state: _RunState, run_dir: Path,
                 note: Callable[[str], None], load_model: Callable | None = None) -> dict[str, list]:
    """Records of each part with teacher labels: the segments labelled before (cache), then
    new ones in :func:`labelling_order` until the labelling share of the budget is spent."""
    from tqdm import tqdm

    from xiaonet.distill.teacher_labels import attach_teacher_labels, consensus_members

    rate = float(plan.student_args.get("sampling_rate", 100.0))
    min_samples = int(MIN_RECORD_S * rate) + 1
    budget = LABEL_SHARE * settings.minutes * 60.0
    done = set(state.data.get("labelled", []))
    finished = bool(state.data.get("labelling_finished"))
    spent = float(state.data.get("label_seconds", 0.0))
    loader = _teacher_loader(load_model)
    by_part: dict[str, list] = {part: [] for part in PART_SHARES}
    order = labelling_order(plan.segments, settings.seed)
    # the bar runs over the labelling budget (seconds): the sample stops there, not at the last segment
    bar = tqdm(total=round(budget), initial=min(round(spent), round(budget)), desc="labelling (teachers)",
               unit="s", disable=not settings.progress, mininterval=2.0)
    for segment in order:
        is_done = segment.id in done
        if not is_done and (finished or (spent > budget and by_part[segment.part])):
            continue  # past the budget, only a part still without labels is labelled
        started = time.monotonic()
        records = segment_records(segment, plan.files, rate, min_samples, note, plan.picks)
        if records:
            attach_teacher_labels(records, consensus_members(), run_dir / "teacher-cache", note=note,
                                  load_model=loader, combine=settings.teacher, keep_members=True)
            by_part[segment.part] += [r for r in records if r.teacher is not None]
        if not is_done:
            step = time.monotonic() - started
            bar.update(max(0, min(round(spent + step), round(budget)) - min(round(spent), round(budget))))
            spent += step
            done.add(segment.id)
            state.data.update(labelled=sorted(done), label_seconds=round(spent, 1))
            state.save()
        hours = {p: sum(r.n_samples for r in rs) / rate / 3600 for p, rs in by_part.items()}
        bar.set_postfix({f"{p}_h": f"{h:.2f}" for p, h in hours.items()} | {"segments": len(done)}, refresh=False)
    bar.close()
    if not finished:
        state.data.update(labelling_finished=True, labelled_segments=len(done), label_seconds=round(spent, 1))
        state.save()
    for part, records in by_part.items():
        if not records:
            raise AdaptError(f"no {part} segment got labels from both teachers within the budget; give more "
                             "--minutes or longer records (EQTransformer labels records of >= 60 s only)")
    return by_part


# --- 3.-5. score, train, write -----------------------------------------------------------------


def seconds_per_step(plan: AdaptPlan, settings: AdaptSettings, repeats: int = 3) -> float:
    """Wall seconds of one training step of the starting student on this machine (forward,
    backward, update of a batch), the median of ``repeats`` after one warm-up step."""
    import torch

    from xiaonet.models.presets import build_student

    model = build_student(plan.preset, **plan.student_args)
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randn(settings.batch_size, 3, plan.window_len, generator=torch.Generator().manual_seed(0))
    times = []
    for _ in range(repeats + 1):
        started = time.monotonic()
        loss = model(x, logits=True).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.monotonic() - started)
    return float(np.median(times[1:]))


def epochs_within(budget_s: float, steps: int, steps_per_epoch: int, step_s: float, score_s: float) -> int:
    """Epochs that fit ``budget_s``: at most ``steps`` batches in all, at least one epoch, each
    epoch ``steps_per_epoch`` steps of ``step_s`` (x1.5 for drawing and augmenting the batch)
    plus ``score_s`` for scoring the tuning part. The learning-rate schedule then spans the
    epochs that will run instead of being cut short by the time cap.

    >>> epochs_within(600, 2000, 50, 0.1, 2.0), epochs_within(60, 2000, 50, 0.1, 2.0)
    (40, 6)
    """
    most = max(1, int(math.ceil(steps / steps_per_epoch)))
    return int(min(most, max(1, budget_s // (steps_per_epoch * step_s * 1.5 + score_s))))


def adaptation_config(plan: AdaptPlan, settings: AdaptSettings, run_dir: Path, train_minutes: float,
                      epochs: int, records: list = ()):
    """The training config of an adapt run: the starting student's weights, one continuous
    source, teacher labels only, the epoch and thresholds chosen on the tuning part."""
    from xiaonet.distill.config import config_from_dict

    return config_from_dict({
        "name": Path(settings.out).name,
        "seed": settings.seed,
        "model": {"preset": plan.preset, "overrides": plan.student_args,
                  "init_weights": settings.resolved_start()},
        "teacher": {"members": [{"name": "phasenet", "weights": "original"},
                                {"name": "eqtransformer", "weights": "original"}],
                    "combine": settings.teacher, "cache_dir": str(run_dir / "teacher-cache")},
        "data": {"shared_dir": str(run_dir), "window_len": plan.window_len,
                 "sources": [{"path": SOURCE_NAME, "kind": "continuous", "weight": 1.0}]},
        # analyst picks where there are any, as training weighs them; teacher labels only otherwise
        "loss": {"alpha": 0.5 if any(r.hard_labels for r in records) else 1.0},
        "train": {"lr": settings.lr, "batch_size": settings.batch_size, "steps_per_epoch": settings.steps_per_epoch,
                  "max_epochs": epochs, "max_minutes": max(0.05, train_minutes), "patience": epochs,
                  "threads": settings.threads, "progress": settings.progress},
    })


def part_summary(records: list, plan: AdaptPlan) -> dict:
    stations = sorted({r.station for r in records})
    return {"records": len(records), "stations": stations,
            "station_hours": round(sum(r.n_samples for r in records) / 100.0 / 3600.0, 3),
            "first": min((r.start_time for r in records), default=None),
            "last": max((r.start_time + r.n_samples / 100.0 for r in records), default=None)}


def score_start(model, name: str, tune: list, report: list, grid: list[float], tolerance: float) -> dict:
    """The starting student on the report part: with its own thresholds, and with thresholds
    tuned on the tuning part as the adapted student's are."""
    from xiaonet.distill.selection import score_records, tune_thresholds
    from xiaonet.picking.pickers import ModelPicker

    own = score_records(ModelPicker(model, name=name), report, tolerance)
    tuned = tune_thresholds(model, tune, grid, tolerance)
    thresholds = {p: v["threshold"] for p, v in tuned.items()}
    tuned_picker = ModelPicker(model, name=name, thresholds=thresholds)
    scores = {"own_thresholds": dict(getattr(model, "default_args", {}) or {}), "own": own,
              "tuned_thresholds": thresholds, "tuned": score_records(tuned_picker, report, tolerance)}
    analyst = analyst_records(report)
    if analyst:
        scores["analyst_own"] = score_records(ModelPicker(model, name=name), analyst, tolerance)
        scores["analyst_tuned"] = score_records(tuned_picker, analyst, tolerance)
    return scores


def analyst_records(records: list) -> list:
    """Copies of the records holding analyst picks, scored against those picks instead of
    the teachers' consensus (every other pick on them counts as a false positive)."""
    from dataclasses import replace

    return [replace(r, category="earthquake", consensus=None) for r in records if r.p_samples.size or r.s_samples.size]


@dataclass
class AdaptResult:
    prefix: Path
    card: Path
    summary: dict


def adapt(settings: AdaptSettings, note: Callable[[str], None] | None = None,
          load_model: Callable | None = None, plan: AdaptPlan | None = None) -> AdaptResult:
    """Run (or resume) ``xiaonet adapt``; see the module docstring. ``load_model`` replaces
    :func:`xiaonet.models.teachers.load_teacher` (tests)."""
    import torch

    from xiaonet.data.datasets import DataBundle
    from xiaonet.distill.config import SourceConfig
    from xiaonet.distill.model_card import write_adaptation_card
    from xiaonet.distill.training import train

    note = note or (lambda message: None)
    wall = time.monotonic()
    plan = plan or plan_adaptation(settings)
    run_dir = settings.run_path()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / SOURCE_NAME).mkdir(exist_ok=True)
    state = _RunState(run_dir, settings)
    before_s = float(state.data.get("seconds", 0.0))
    state.save()
    torch.set_num_threads(max(1, settings.threads))
    notes: list[str] = []

    def collect(message: str) -> None:
        if message not in notes:
            notes.append(message)
            note(message)

    parts = label_sample(plan, settings, state, run_dir, collect, load_model)
    rate = float(plan.student_args.get("sampling_rate", 100.0))
    train_records = [r for r in parts["train"] if r.n_samples >= plan.window_len]
    if not train_records:
        raise AdaptError(f"no labelled training record holds a {plan.window_len}-sample window")
    _write_segments(run_dir / SOURCE_NAME / "segments.csv", plan.segments, set(state.data["labelled"]))

    from xiaonet.models.presets import load_student

    name = Path(settings.out).name
    if "before" not in state.data:
        started = time.monotonic()
        state.data["before"] = score_start(load_student(settings.resolved_start()), settings.resolved_start(),
                                           parts["tune"], parts["report"], _grid(), 0.5)
        state.data["score_s"] = round((time.monotonic() - started) / 3, 2)  # three scorings of a part
        state.save()
    spent = before_s + time.monotonic() - wall
    if state.data.get("schedule_for") != [settings.steps, settings.minutes]:  # a resumed run keeps its schedule
        train_minutes = round((settings.minutes * 60 * (1 - FINISH_SHARE) - spent) / 60.0, 2)
        epochs = epochs_within(train_minutes * 60, settings.steps, settings.steps_per_epoch,
                               seconds_per_step(plan, settings), state.data["score_s"])
        state.data.update(train_minutes=train_minutes, epochs=epochs, schedule_for=[settings.steps, settings.minutes])
    train_minutes = state.data["train_minutes"]
    if state.data["epochs"] * settings.steps_per_epoch < settings.steps:
        collect(f"{state.data['epochs']} epochs of {settings.steps_per_epoch} batches fit the {train_minutes:g} min "
                f"left for training on this machine, fewer than --steps {settings.steps}")
    state.save()
    config = adaptation_config(plan, settings, run_dir, train_minutes, state.data["epochs"], train_records)
    source = SourceConfig(path=SOURCE_NAME, kind="continuous", weight=1.0)
    bundle = DataBundle(train=train_records, dev=[], source_of={SOURCE_NAME: source}, dev_stations=set(),
                        notes=notes, val=parts["tune"], test=parts["report"])
    train_dir = run_dir / "train"
    resume = (train_dir / "checkpoint.pt").is_file()
    result = train(config, train_dir, bundle, resume=resume, note=note)  # epochs: history.csv, not the card

    prefix = Path(settings.out)
    result.model.save(str(prefix), weights_docstring=f"XiaoNet {name}: {settings.resolved_start()} adapted by "
                      f"`xiaonet adapt` on the data listed in its card ({prefix}.md).")
    metrics = json.loads((train_dir / "metrics.json").read_text())
    if analyst_records(parts["report"]):
        from xiaonet.distill.selection import score_records
        from xiaonet.picking.pickers import ModelPicker

        metrics["test_analyst"] = score_records(ModelPicker(result.model, name=name),
                                                analyst_records(parts["report"]))
    seconds = before_s + time.monotonic() - wall
    state.data["seconds"] = round(seconds, 1)
    state.data["finished"] = True
    state.save()
    summary = {
        "name": name, "start_student": settings.resolved_start(), "teacher": settings.teacher,
        "settings": asdict(settings), "files": plan.n_files, "instruments": sorted(plan.files),
        "available_station_hours": round(sum(s.duration for s in plan.segments) / 3600.0, 3),
        "available": {p: round(sum(s.duration for s in plan.segments if s.part == p) / 3600.0, 3)
                      for p in PART_SHARES},
        "labelled": {p: part_summary(rs if p != "train" else train_records, plan) for p, rs in parts.items()},
        "window_len": plan.window_len, "before": state.data["before"], "after": metrics.get("test", {}),
        "after_analyst": metrics.get("test_analyst"), "alpha": config.loss.alpha,
        "analyst_picks": {p: [int(sum(r.p_samples.size for r in rs)), int(sum(r.s_samples.size for r in rs))]
                          for p, rs in parts.items()} if plan.picks else None,
        "after_tuning": metrics.get("val", {}), "thresholds": metrics.get("thresholds", {}),
        "epochs_run": metrics.get("epochs_run"), "best_epoch": metrics.get("best_epoch"),
        "steps_per_epoch": settings.steps_per_epoch, "label_minutes": round(state.data["label_seconds"] / 60, 2),
        "train_minutes": metrics.get("train_minutes"), "minutes": round(seconds / 60.0, 2),
        "sampling_rate": rate, "notes": notes,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    card = write_adaptation_card(Path(f"{prefix}.md"), summary)
    return AdaptResult(prefix, card, summary)


def _grid() -> list[float]:
    from xiaonet.distill.config import EvalConfig

    return EvalConfig().threshold_grid


def _write_segments(path: Path, segments: list[Segment], labelled: set[str]) -> None:
    import csv

    import obspy

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["instrument", "start", "end", "part", "labelled"])
        for s in segments:
            writer.writerow([s.key, obspy.UTCDateTime(s.start), obspy.UTCDateTime(s.end), s.part,
                             int(s.id in labelled)])
