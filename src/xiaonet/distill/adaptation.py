"""``xiaonet adapt``: distil a shipped student further on a user's own unlabelled data.

What it does, in the order a run folder records it (``adapt.json``):

1. **Plan** (:mod:`xiaonet.distill.adaptation_data`; before any work, every bad input
   refused in one line naming it): the waveform files (files, folders, globs, or an SDS tree
   with a time range) by instrument, from their headers only; 3-component instruments only,
   records of at least 30 s.
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
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from xiaonet.distill.adaptation_data import (MIN_RECORD_S, SOURCE_NAME, AdaptError, AdaptPlan, AdaptSettings,
                                             Segment, plan_adaptation, segment_records)

#: Shares of the labelled data per part (train, tuning, report) while the budget lasts.
PART_SHARES = {"train": 2 / 3, "tune": 1 / 6, "report": 1 / 6}
#: Share of ``minutes`` spent labelling at most, and the share kept for the end (threshold
#: tuning, report scoring, writing the card).
LABEL_SHARE = 0.45
FINISH_SHARE = 0.1


# --- label a random sample within the budget ---------------------------------------------------


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
    by_part = {part: sorted(records, key=lambda r: r.name) for part, records in by_part.items()}  # not by seed
    for part, records in by_part.items():
        if not records:
            raise AdaptError(f"no {part} segment got labels from both teachers within the budget; give more "
                             "--minutes or longer records (EQTransformer labels records of >= 60 s only)")
    return by_part


# --- score, train, write -----------------------------------------------------------------------


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

    from xiaonet.distill.splits import DataBundle
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
