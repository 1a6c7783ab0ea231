"""Pooled scores of the network-held-out protocol, each with a bootstrap 90% interval.

The protocol's own figures (:func:`xiaonet.distill.selection.score_records`, ``macro``) are the
mean F1 over held-out sources, and several sources hold 1-15 records: one P-only source of
15 records weighs as much as 65 analyst-picked records, and a difference of a few hundredths
between two students is noise. Here every reference pick of a kind (``analyst``: analyst-picked
networks; ``consensus``: continuous networks against the teachers' consensus) of a split is
pooled into one P and one S F1 (summed TP / FP / FN), with

* the number of reference picks it rests on;
* a percentile bootstrap interval from resampling *records* with replacement (a seeded
  :class:`numpy.random.Generator`; :func:`xiaonet.scoring.matching.pooled_f1`);
* the P median residual and its interval;
* against a baseline picker, the interval of the F1 *difference* on the same resampled
  records (:func:`xiaonet.scoring.matching.paired_f1_difference`): a difference whose
  interval holds 0 chooses nothing.

The records, the reference (analyst picks, or the picks both teachers agree on) and the
matching are the protocol's own (:mod:`xiaonet.evaluate.generalisation`,
:func:`xiaonet.scoring.references.record_references`, :func:`xiaonet.scoring.matching.score_picks`):
summed over records these counts equal the totals of ``score_records``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from xiaonet.scoring.matching import (Interval, bootstrap_indices, paired_f1_difference, pooled_f1,
                                      pooled_median, score_picks)

#: Reference kinds: analyst picks (labelled networks) and the teachers' consensus (continuous).
KINDS = ("analyst", "consensus")
#: Command-line split names and the :class:`xiaonet.distill.splits.DataBundle` attribute of each;
#: ``fit`` is the last part of the training networks' continuous records
#: (:func:`xiaonet.evaluate.generalisation.fit_records`).
#: ``dev`` holds the analyst-picked held-out stations of the training networks.
SPLITS = {"validation": "val", "test": "test", "dev": "dev", "fit": "fit"}
#: Bootstrap defaults: 1000 resamples, a 90% interval.
RESAMPLES = 1000
LEVEL = 0.9


@dataclass
class RecordScore:
    """One picker on one record: TP / FP / FN and hit residuals of each phase scored there."""

    record: str
    source: str
    kind: str
    counts: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    residuals: dict[str, np.ndarray] = field(default_factory=dict)


def record_kind(record) -> str:
    return "consensus" if record.category == "continuous" else "analyst"


def score_each_record(picker, records, tolerance: float = 0.5, note: Callable[[str], None] | None = None,
                      kinds: tuple[str, ...] = KINDS) -> list[RecordScore]:
    """Whole-trace picking of every record of the ``kinds`` wanted, scored record by record.

    A phase is scored only on sources whose records all carry it (as in ``score_records``:
    S is not scored on a P-only source). A record on which the picker raises is reported
    through ``note`` and left out for this picker.
    """
    from xiaonet.data.records import record_stream
    from xiaonet.scoring.references import record_references
    from xiaonet.distill.selection import _phases_of

    note = note or (lambda message: None)
    by_source: dict[str, list] = {}
    for record in records:
        if record_kind(record) in kinds:
            by_source.setdefault(record.source, []).append(record)
    out = []
    for source, items in sorted(by_source.items()):
        phases = _phases_of(items)
        for record in items:
            try:
                picks = picker.pick(record_stream(record), note=lambda message: None)
                reference = record_references(record)
            except Exception as error:  # one bad record must not hide the others
                note(f"{getattr(picker, 'name', picker)}: {record.name}: {error}")
                continue
            scores = score_picks(picks, reference.picks, tolerance=tolerance, phases=phases,
                                 ignored=reference.ignored)
            out.append(RecordScore(record.name, source, record_kind(record),
                                   {p: (s.true_positives, s.false_positives, s.false_negatives)
                                    for p, s in scores.items()},
                                   {p: s.residuals for p, s in scores.items()}))
    return out


def _indices(kind: str, phase: str, n_records: int, seed: int, resamples: int) -> np.ndarray:
    """The same resampled records for every picker scored on the same ``n_records`` records."""
    rng = np.random.default_rng([seed, KINDS.index(kind), "PS".index(phase), n_records])
    return bootstrap_indices(n_records, rng, resamples)


def _rows(scores: list[RecordScore], kind: str, phase: str) -> dict[str, RecordScore]:
    return {s.record: s for s in scores if s.kind == kind and phase in s.counts}


@dataclass
class PooledFigure:
    """One picker, split and kind: pooled F1 per phase, reference picks, P median residual,
    and the paired difference against the baseline (None for the baseline itself)."""

    picker: str
    split: str
    kind: str
    records: int
    reference: bool = False  # the picker is one of the teachers whose consensus is the reference
    f1: dict[str, Interval] = field(default_factory=dict)
    n_reference: dict[str, int] = field(default_factory=dict)
    precision: dict[str, float] = field(default_factory=dict)
    recall: dict[str, float] = field(default_factory=dict)
    p_median: Interval | None = None
    difference: dict[str, Interval] = field(default_factory=dict)
    baseline: str | None = None
    baseline_note: str = ""

    def as_dict(self) -> dict:
        row = {"picker": self.picker, "split": self.split, "kind": self.kind, "records": self.records,
               "reference": self.reference, "baseline": self.baseline or ""}
        for phase in "PS":
            f1 = self.f1.get(phase)
            diff = self.difference.get(phase)
            row.update({f"{phase}_refs": self.n_reference.get(phase, 0),
                        f"{phase}_f1": f1.value if f1 else "", f"{phase}_f1_low": f1.low if f1 else "",
                        f"{phase}_f1_high": f1.high if f1 else "",
                        f"{phase}_precision": self.precision.get(phase, ""),
                        f"{phase}_recall": self.recall.get(phase, ""),
                        f"{phase}_diff": diff.value if diff else "", f"{phase}_diff_low": diff.low if diff else "",
                        f"{phase}_diff_high": diff.high if diff else ""})
        m = self.p_median
        row.update({"P_median": m.value if m else "", "P_median_low": m.low if m else "",
                    "P_median_high": m.high if m else ""})
        return row


def pool(scores: dict[str, list[RecordScore]], split: str, baseline: str | None = None,
         seed: int = 20261127, resamples: int = RESAMPLES, level: float = LEVEL,
         reference_pickers: tuple[str, ...] = ()) -> list[PooledFigure]:
    """Pooled figures of every picker (``scores``: picker label -> its record scores) and kind.

    ``reference_pickers`` are the teachers whose consensus is the reference: on ``consensus``
    records their row says so instead of a figure. ``baseline`` (a picker label) gets the
    paired difference of every other picker on the records both were scored on.
    """
    figures = []
    for kind in KINDS:
        if not any(s.kind == kind for picker_scores in scores.values() for s in picker_scores):
            continue  # no record of this kind in the split
        for label, picker_scores in scores.items():
            mine = [s for s in picker_scores if s.kind == kind]
            is_reference = kind == "consensus" and label in reference_pickers
            if not mine and not is_reference:
                continue
            figure = PooledFigure(label, split, kind, len(mine), reference=is_reference)
            if is_reference:
                figures.append(figure)
                continue
            for phase in "PS":
                rows = _rows(picker_scores, kind, phase)
                if not rows:
                    continue
                names = sorted(rows)
                counts = np.asarray([rows[n].counts[phase] for n in names], dtype=np.float64)
                tp, fp, fn = counts.sum(axis=0)
                figure.n_reference[phase] = int(tp + fn)
                figure.precision[phase] = float(tp / (tp + fp)) if tp + fp else 0.0
                figure.recall[phase] = float(tp / (tp + fn)) if tp + fn else 0.0
                indices = _indices(kind, phase, len(names), seed, resamples)
                figure.f1[phase] = pooled_f1(counts, indices, level)
                if phase == "P":
                    figure.p_median = pooled_median([rows[n].residuals["P"] for n in names], indices, level)
            if baseline is not None and label != baseline:
                figure.baseline = baseline
                if kind == "consensus" and baseline in reference_pickers:
                    figure.baseline_note = "baseline is the reference"
                elif baseline not in scores:
                    figure.baseline_note = "baseline not scored"
                else:
                    for phase in "PS":
                        a, b = _rows(picker_scores, kind, phase), _rows(scores[baseline], kind, phase)
                        common = sorted(set(a) & set(b))
                        if not common:
                            continue
                        indices = _indices(kind, phase, len(common), seed, resamples)
                        figure.difference[phase] = paired_f1_difference(
                            [a[n].counts[phase] for n in common], [b[n].counts[phase] for n in common],
                            indices, level)
            figures.append(figure)
    return figures


# --- the table --------------------------------------------------------------------------------


def _interval(value: Interval | None, signed: bool = False) -> str:
    if value is None or not np.isfinite(value.value):
        return "–"
    fmt = "{:+.3f}" if signed else "{:.3f}"
    if not np.isfinite(value.low):
        return fmt.format(value.value)
    return f"{fmt.format(value.value)} [{fmt.format(value.low)}, {fmt.format(value.high)}]"


def _verdict(difference: Interval) -> str:
    if not np.isfinite(difference.low):
        return ""
    if not difference.excludes_zero():
        return " no difference shown"
    return " better" if difference.value > 0 else " worse"


def table_row(figure: PooledFigure) -> dict[str, str]:
    row = {"picker": figure.picker, "split": figure.split, "kind": figure.kind, "records": str(figure.records)}
    if figure.reference:
        row.update({"P": "(reference)", "S": "(reference)", "P_median": "–", "P_diff": "–", "S_diff": "–"})
        return row
    for phase in "PS":
        f1 = figure.f1.get(phase)
        row[phase] = f"{_interval(f1)} ({figure.n_reference.get(phase, 0)})" if f1 else "–"
        if figure.picker.startswith("stalta") and phase == "S":
            row[phase] = "– (P only)"
        diff = figure.difference.get(phase)
        if figure.baseline is None:
            row[f"{phase}_diff"] = "(baseline)" if figure.baseline_note == "" and figure.f1 else "–"
        elif figure.baseline_note:
            row[f"{phase}_diff"] = f"– ({figure.baseline_note})"
        else:
            row[f"{phase}_diff"] = _interval(diff, signed=True) + _verdict(diff) if diff else "–"
    row["P_median"] = _interval(figure.p_median, signed=True)
    return row


def table_columns(baseline: str | None, level: float = LEVEL) -> list[tuple[str, str]]:
    pct = f"{100 * level:.0f}%"
    columns = [("picker", "picker"), ("split", "split"), ("kind", "reference kind"), ("records", "records"),
               ("P", f"P F1 [{pct}] (refs)"), ("S", f"S F1 [{pct}] (refs)"),
               ("P_median", f"P median residual s [{pct}]")]
    if baseline:
        columns += [("P_diff", f"P F1 − {baseline} [{pct}]"), ("S_diff", f"S F1 − {baseline} [{pct}]")]
    return columns


def pooled_table(figures: list[PooledFigure], baseline: str | None = None, level: float = LEVEL) -> str:
    from xiaonet.evaluate.reports import markdown_table

    return markdown_table([table_row(f) for f in figures], table_columns(baseline, level))


def source_table(scores: dict[str, dict[str, list[RecordScore]]]) -> str:
    """Per split and held-out source: reference picks and each picker's pooled P / S F1 there
    (no intervals: what the pooled figure is made of, e.g. a source one picker cannot read)."""
    from xiaonet.evaluate.reports import markdown_table
    from xiaonet.scoring.matching import f1_from_counts

    labels = list(dict.fromkeys(label for by_picker in scores.values() for label in by_picker))
    rows = []
    for split, by_picker in scores.items():
        keys = sorted({(s.kind, s.source) for records in by_picker.values() for s in records})
        for kind, source in keys:
            row = {"split": split, "source": source, "kind": kind, "P_refs": "–", "S_refs": "–"}
            for label in labels:
                mine = [s for s in by_picker.get(label, []) if s.source == source and s.kind == kind]
                cells = []
                for phase in "PS":
                    counts = np.asarray([s.counts[phase] for s in mine if phase in s.counts]).reshape(-1, 3)
                    if counts.size and counts[:, [0, 2]].sum():
                        row[f"{phase}_refs"] = str(int(counts[:, [0, 2]].sum()))
                    if phase == "S" and label.startswith("stalta"):
                        cells.append("–")
                    elif counts.size and counts[:, [0, 2]].sum():
                        cells.append(f"{float(f1_from_counts(*counts.sum(axis=0))):.3f}")
                    else:
                        cells.append("–")
                row[label] = " / ".join(cells) if mine else "(reference)" if kind == "consensus" else "–"
            rows.append(row)
    columns = [("split", "split"), ("source", "held-out source"), ("kind", "reference kind"),
               ("P_refs", "P refs"), ("S_refs", "S refs")] + [(label, f"{label} P / S F1") for label in labels]
    return markdown_table(rows, columns)


def write_pooled(figures: list[PooledFigure], scores: dict[str, dict[str, list[RecordScore]]],
                 out: Path) -> None:
    """``pooled.csv`` (every figure and interval) and ``records.csv`` (per record counts)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [f.as_dict() for f in figures]
    if rows:
        with open(out / "pooled.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    with open(out / "records.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "picker", "record", "source", "kind", "phase", "tp", "fp", "fn", "median_residual"])
        for split, by_picker in scores.items():
            for label, records in by_picker.items():
                for s in records:
                    for phase, (tp, fp, fn) in s.counts.items():
                        r = s.residuals.get(phase, np.zeros(0))
                        writer.writerow([split, label, s.record, s.source, s.kind, phase, tp, fp, fn,
                                         f"{np.median(r):.4f}" if r.size else ""])


# --- the command: pickers on the splits of a training config --------------------------------------


@dataclass
class PooledEvaluation:
    figures: list[PooledFigure]
    scores: dict[str, dict[str, list[RecordScore]]]  # split -> picker label -> record scores
    notes: list[str]
    left_out: dict[str, int]  # split -> records left out because a student trained on them
    records: dict[str, int]  # split -> records scored
    in_sample: bool = False  # the fit split was trained on (no data.fit_fraction in the config)


def evaluate_protocol(config_path: str | Path, splits: list[str], pickers: list[tuple[str, object]],
                      baseline: str | None = None, tolerance: float = 0.5, seed: int = 20261127,
                      resamples: int = RESAMPLES, level: float = LEVEL, progress: bool = True,
                      bundle=None) -> PooledEvaluation:
    """Score ``pickers`` (``(spec, picker)`` pairs, labelled by spec) on the ``splits`` of a
    training config's network-held-out protocol and pool them.

    Every picker is scored on the same records: a record a student trained on (its
    ``split.csv``) is left out for all of them. The consensus teachers are not run on the
    consensus records (they are the reference there).
    """
    from tqdm import tqdm

    from xiaonet.scoring.consensus import is_consensus_teacher
    from xiaonet.distill.config import load_config
    from xiaonet.evaluate.generalisation import fit_records, load_protocol

    notes: list[str] = []
    if bundle is None:
        _, bundle = load_protocol(config_path)
    in_sample = False
    labels = [spec for spec, _ in pickers]
    reference = tuple(label for label in labels if is_consensus_teacher(label))
    figures, all_scores, left_out, counted = [], {}, {}, {}
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}'; known: {', '.join(SPLITS)}")
        if split == "fit":
            records, held_out = fit_records(load_config(config_path), bundle, note=notes.append)
            in_sample = not held_out
        else:
            records = list(getattr(bundle, SPLITS[split]))
        leave = students_records(labels, split, notes.append) if split != "fit" else set()
        left_out[split] = sum(r.name in leave for r in records)
        records = [r for r in records if r.name not in leave]
        counted[split] = len(records)
        scores = {}
        for spec, picker in tqdm(pickers, desc=f"{split} pickers", disable=not progress):
            kinds = ("analyst",) if spec in reference else KINDS
            scores[spec] = score_each_record(picker, records, tolerance, notes.append, kinds)
        all_scores[split] = scores
        figures += pool(scores, split, baseline, seed, resamples, level, reference)
    return PooledEvaluation(figures, all_scores, notes, left_out, counted, in_sample)


# --- which records a student may be scored on --------------------------------------------------


def student_split_file(spec: str) -> Path | None:
    """The ``split.csv`` of a student: shipped beside its weights (``PREFIX.split.csv``), or
    the run folder's own for weights in a run's ``model/`` folder (``RUN/model/NAME`` ->
    ``RUN/split.csv``); None when there is neither."""
    from xiaonet.models.presets import PRESETS, weights_dir, weights_file

    name = spec.split("@")[0]
    if name.lower() == "xiaonet":
        from xiaonet.models.presets import DEFAULT_PRESET

        name = DEFAULT_PRESET
    prefix = weights_dir() / name if name in PRESETS else Path(name)
    path = weights_file(prefix, ".split.csv")
    if path.is_file():
        return path
    run_split = prefix.parent.parent / "split.csv"
    return run_split if prefix.parent.name == "model" and run_split.is_file() else None


def students_records(specs: list[str], split: str, note: Callable[[str], None]) -> set[str]:
    """Records no picker is scored on in ``split``: those any student of ``specs`` must not be
    scored on (:func:`records_to_leave_out`), so every comparison stays paired."""
    from xiaonet.scoring.consensus import is_consensus_teacher

    leave: set[str] = set()
    for spec in specs:
        if is_consensus_teacher(spec) or spec.split(":")[0].lower() in ("stalta", "gpd"):
            continue
        split_file = student_split_file(spec)
        if split_file is None:
            note(f"{spec}: no split.csv beside its weights; its training records are unknown "
                 "(scored on every record of the split)")
            continue
        leave |= records_to_leave_out(split_file, split)
    return leave


def records_to_leave_out(split_file: Path, split: str) -> set[str]:
    """Records a student must not be scored on in ``split``: what trained it, and on the test
    split also what chose its epoch and thresholds (its ``val`` rows)."""
    from xiaonet.evaluate.traces import training_records

    keep = ("dev", "test", "val") if split == "validation" else ("dev", "test")
    return training_records(split_file, keep=keep)


__all__ = ["RecordScore", "PooledFigure", "PooledEvaluation", "evaluate_protocol", "KINDS", "SPLITS",
           "score_each_record", "pool", "pooled_table", "table_row", "table_columns", "source_table",
           "write_pooled", "student_split_file", "students_records", "records_to_leave_out"]
