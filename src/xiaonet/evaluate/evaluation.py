"""Whole-trace evaluation of any picker over labelled datasets and continuous folders.

Every picker runs through :meth:`xiaonet.picking.pickers.Picker.pick` on the full trace and is
scored by :func:`xiaonet.scoring.matching.score_picks`. Because several rows can share a station,
picks and reference picks are keyed by the row (``dataset/row``), never by station alone. The
datasets themselves (rows as ObsPy streams, analyst or consensus references) are
:mod:`xiaonet.evaluate.traces`; the picker names, :mod:`xiaonet.picking.specs`.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import seisbench.util as sbu

from xiaonet.scoring.consensus import is_consensus_teacher
from xiaonet.evaluate.traces import LabelledDataset, LabelledTrace
from xiaonet.scoring.matching import (
    ReferencePick,
    SweepPoint,
    best_f1_threshold,
    score_picks,
    sweep_thresholds,
)

from xiaonet.picking.specs import PickerSpec, build_picker

logger = logging.getLogger(__name__)

PHASES = ("P", "S")
DEFAULT_THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))


def operating_thresholds(picker) -> dict[str, str]:
    """The thresholds a picker picks with, as text for tables."""
    config = getattr(picker, "config", None)
    if config is not None and hasattr(config, "trigger_on"):
        return {phase: f"STA/LTA on {config.trigger_on:g}" for phase in PHASES}
    model = getattr(picker, "model", None)
    out = {}
    for phase in PHASES:
        value = getattr(picker, "thresholds", {}).get(phase)
        if value is None and model is not None:
            value = getattr(model, "default_args", {}).get(f"{phase}_threshold")
        out[phase] = f"{value if value is not None else 0.3:g}"
    return out


def sweep_picker(picker, floor: float):
    """A copy of a model picker that picks at ``floor`` (for threshold sweeps), else None.

    STA/LTA picks do not depend on a probability threshold: their sweep filters the
    operating picks by their pseudo-confidence instead.
    """
    if not hasattr(picker, "model") or not hasattr(picker, "thresholds"):
        return None
    low = copy.copy(picker)
    low.thresholds = {phase: floor for phase in PHASES}
    return low


# --- running ----------------------------------------------------------------------------------


def relabel_picks(picks, key: str) -> list[sbu.Pick]:
    """Copies of ``picks`` whose ``trace_id`` is the dataset row key."""
    return [
        sbu.Pick(trace_id=key, start_time=p.start_time, end_time=p.end_time,
                 peak_time=p.peak_time, peak_value=p.peak_value, phase=p.phase)
        for p in picks
        if p.phase in PHASES
    ]


@dataclass
class PickerRun:
    """One picker over one dataset: picks per row at the operating point and for the sweep."""

    picker: str
    dataset: str
    picks: dict[str, list[sbu.Pick]] = field(default_factory=dict)
    sweep_picks: dict[str, list[sbu.Pick]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    data_hours: float = 0.0

    def all_picks(self, sweep: bool = False) -> list[sbu.Pick]:
        source = self.sweep_picks if sweep else self.picks
        return [p for picks in source.values() for p in picks]


def run_picker(picker, traces: list[LabelledTrace], dataset: str, sweep_floor: float | None = 0.05,
               progress: bool = True) -> PickerRun:
    """Pick every trace whole; a failing trace is recorded and the rest still run."""
    from tqdm import tqdm

    run = PickerRun(getattr(picker, "name", str(picker)), dataset)
    low = sweep_picker(picker, sweep_floor) if sweep_floor is not None else None

    def note(message: str) -> None:
        # count notes by their text after the station id so a table can show them
        run.notes[message.split(": ", 1)[-1]] += 1

    for trace in tqdm(traces, desc=f"{run.picker} on {dataset}", unit="trace", disable=not progress):
        run.data_hours += max(tr.stats.npts / tr.stats.sampling_rate for tr in trace.stream) / 3600
        try:
            started = time.perf_counter()
            picks = picker.pick(trace.stream.copy(), note=note)
            run.seconds += time.perf_counter() - started  # operating pass only
            run.picks[trace.key] = relabel_picks(picks, trace.key)
            if low is not None:
                run.sweep_picks[trace.key] = relabel_picks(
                    low.pick(trace.stream.copy(), note=lambda m: None), trace.key
                )
        except Exception as error:  # one bad trace never takes the evaluation down
            run.failures.append(f"{trace.key}: {type(error).__name__}: {error}")
            run.picks.setdefault(trace.key, [])
        if low is None:
            run.sweep_picks[trace.key] = run.picks[trace.key]
    return run


@dataclass
class EvaluationSettings:
    tolerance: float = 0.5
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    outlier_threshold: float = 0.2
    progress: bool = True


def score_run(run: PickerRun, references: list[ReferencePick], settings: EvaluationSettings,
              operating: dict[str, str], amplitudes: str = "",
              ignored: list[ReferencePick] = ()) -> tuple[list[dict], list[SweepPoint]]:
    """Metric rows (one per phase) and the threshold sweep of one picker run.

    ``ignored``: picks neither rewarded nor penalised (a single teacher's, in consensus scoring).
    """
    scores = score_picks(run.all_picks(), references, settings.tolerance, PHASES,
                         outlier_threshold=settings.outlier_threshold, ignored=ignored)
    sweep_source = run.all_picks(sweep=True)
    sweep = sweep_thresholds(sweep_source, references, settings.thresholds, settings.tolerance, PHASES,
                             ignored=ignored)
    rows = []
    for phase in PHASES:
        n_reference = sum(r.phase == phase for r in references)
        best = best_f1_threshold(sweep, phase)
        note = []
        n_picks = scores[phase].true_positives + scores[phase].false_positives
        p_only = operating.get(phase, "").startswith("STA/LTA") and phase == "S"
        if p_only:
            note.append("STA/LTA picks P only")
        elif n_reference == 0:
            note.append(f"no analyst {phase} picks in this dataset")
        elif n_picks == 0:
            note.append("no picks at all")
            if amplitudes.startswith("physical"):
                note.append("fails on physical-unit amplitudes")
        too_short = sum(n for message, n in run.notes.items() if "shorter than" in message)
        if too_short:
            note.append(f"{too_short} record(s) shorter than its input window, not picked")
        if run.failures:
            note.append(f"{len(run.failures)} trace(s) failed")
        rows.append({
            "dataset": run.dataset,
            "picker": run.picker,
            "phase": phase,
            "threshold": operating.get(phase, ""),
            "n_reference": n_reference,
            **{k: v for k, v in scores[phase].as_dict().items() if k != "phase"},
            "best_threshold": best.threshold if best and n_reference else float("nan"),
            "best_f1": best.f1 if best and n_reference else float("nan"),
            "seconds_per_hour": run.seconds / run.data_hours if run.data_hours else float("nan"),
            "note": "; ".join(note),
        })
    return rows, sweep


@dataclass
class Evaluation:
    """Everything one evaluation measured (what :mod:`xiaonet.evaluate.reports` writes out)."""

    settings: EvaluationSettings
    datasets: list[dict] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    sweeps: list[dict] = field(default_factory=list)
    runs: list[PickerRun] = field(default_factory=list)
    unavailable: list[dict] = field(default_factory=list)
    traces: dict[str, list[LabelledTrace]] = field(default_factory=dict)
    #: The loaded pickers, in the order asked (for the pick benchmark and the gallery).
    pickers: list = field(default_factory=list)

    #: Consensus datasets: picks only some teachers made (neither rewarded nor penalised).
    ignored: dict[str, list[ReferencePick]] = field(default_factory=dict)

    def references(self, dataset: str) -> list[ReferencePick]:
        return [r for trace in self.traces.get(dataset, []) for r in trace.references]


def _consensus_teacher_runs(runs: list[PickerRun], extra: dict, traces: list[LabelledTrace], dataset: str,
                            settings, note: Callable[[str], None]) -> dict[str, PickerRun]:
    """Runs of the consensus teachers on ``traces``: the runs of those asked for are reused,
    the others are loaded once (into ``extra``, shared across datasets) and run here."""
    from xiaonet.scoring.consensus import CONSENSUS_TEACHERS
    from xiaonet.picking.loading import load_picker

    found = {}
    for teacher in CONSENSUS_TEACHERS:
        run = next((r for r in runs if r.picker in (teacher, f"{teacher}:original")), None)
        if run is None:
            if teacher not in extra:
                extra[teacher] = load_picker(teacher)  # TeacherUnavailable says which file is missing
            run = run_picker(extra[teacher], traces, dataset, None, settings.progress)
        if run.failures:
            note(f"{dataset}: {teacher} failed on {len(run.failures)} trace(s); they have no consensus reference")
        found[teacher] = run
    return found


def fill_consensus(traces: list[LabelledTrace], runs: dict[str, PickerRun]) -> list[ReferencePick]:
    """Set each trace's references to the teachers' consensus; return the ignored picks."""
    from xiaonet.scoring.consensus import consensus_reference

    ignored = []
    for trace in traces:
        reference = consensus_reference({name: run.picks.get(trace.key, []) for name, run in runs.items()})
        trace.references = reference.picks
        ignored += reference.ignored
    return ignored


def evaluate(
    pickers: list,
    datasets: list[LabelledDataset],
    settings: EvaluationSettings | None = None,
    max_traces: int | None = None,
    note: Callable[[str], None] | None = None,
) -> Evaluation:
    """Run and score every picker on every dataset (whole-trace picking).

    ``pickers`` are :class:`PickerSpec` (loaded here; one that cannot load is listed in
    ``unavailable`` with the reason) or already built :class:`xiaonet.picking.pickers.Picker` objects.
    """
    settings = settings or EvaluationSettings()
    note = note or logger.info
    result = Evaluation(settings)
    loaded = []
    for spec in pickers:
        if not isinstance(spec, PickerSpec):  # an already built Picker
            loaded.append((spec, spec))
            result.pickers.append(spec)
            continue
        try:
            loaded.append((spec, build_picker(spec)))
            result.pickers.append(loaded[-1][1])
        except (ValueError, FileNotFoundError, RuntimeError) as error:
            note(f"{spec.name}: not evaluated: {error}")
            result.unavailable.append({"picker": spec.name, "reason": str(error)})
    extra_teachers: dict = {}  # consensus teachers not asked for, loaded once
    for dataset in datasets:
        description = dataset.describe()
        traces = []
        for index in dataset.rows[:max_traces]:
            try:
                traces.append(dataset.trace(index))
            except Exception as error:
                dataset.notes[f"row unreadable ({type(error).__name__}: {error})"] += 1
        description["evaluated_traces"] = len(traces)
        runs = [run_picker(picker, traces, dataset.name, min(settings.thresholds), settings.progress)
                for _, picker in loaded]
        ignored: list[ReferencePick] = []
        if getattr(dataset, "reference", "analyst") == "consensus":
            teacher_runs = _consensus_teacher_runs(runs, extra_teachers, traces, dataset.name, settings, note)
            ignored = fill_consensus(traces, teacher_runs)
            for phase in PHASES:
                description[f"{phase}_picks"] = sum(r.phase == phase for t in traces for r in t.references)
            description["single_teacher_picks"] = len(ignored)
            result.ignored[dataset.name] = ignored
        description["notes"] = "; ".join(f"{n} x {m}" for m, n in dataset.notes.items())
        result.datasets.append(description)
        result.traces[dataset.name] = traces
        references = [r for trace in traces for r in trace.references]
        for (spec, picker), run in zip(loaded, runs):
            rows, sweep = score_run(run, references, settings, operating_thresholds(picker),
                                    description["amplitudes"], ignored)
            if ignored and is_consensus_teacher(run.picker):
                for row in rows:
                    row["note"] = "; ".join(filter(None, ["reference (a consensus teacher)", row["note"]]))
            result.rows.extend(rows)
            result.sweeps.extend({"dataset": dataset.name, "picker": run.picker, **p.as_dict()}
                                 for p in sweep)
            result.runs.append(run)
    return result
