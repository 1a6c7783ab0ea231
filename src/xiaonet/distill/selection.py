"""Choosing on held-out records: whole-trace scores per source (analyst picks, or the
teachers' consensus on continuous records) and per-phase thresholds, each source weighing
the same. What picks a run's epoch and thresholds, and what its model card reports."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from xiaonet.data.records import Record, record_stream
from xiaonet.scoring.references import record_references

# --- scoring on whole traces ---------------------------------------------------------------


def _phases_of(records: list[Record]) -> tuple[str, ...]:
    """Phases whose reference picks are complete in every earthquake record of a source
    (continuous records are scored on the teachers' consensus, which has both phases)."""
    quakes = [r for r in records if r.category != "noise"]
    if quakes and all(r.category == "continuous" for r in quakes):
        return ("P", "S")
    phases = []
    if all(r.p_samples.size for r in quakes):
        phases.append("P")
    if all(r.s_samples.size for r in quakes):
        phases.append("S")
    return tuple(phases)


def score_records(picker, records: list[Record], tolerance: float = 0.5,
                  note: Callable[[str], None] | None = None) -> dict:
    """Whole-trace picking of every record, scored per source, in total and per source mean.

    Each record gets its own time base (records are 10^5 s apart) so picks on one trace
    never match reference picks of another trace at the same station. A phase is scored
    only on sources whose records all carry that phase's reference: analyst picks, or for
    continuous records the teachers' consensus (:func:`xiaonet.scoring.references.record_references`).
    ``macro`` averages the per-source F1 (each held-out network counts once, however many
    picks it has).
    """
    from xiaonet.scoring.matching import PhaseScore, score_picks

    by_source: dict[str, list[tuple[Record, float]]] = {}
    for i, record in enumerate(records):
        by_source.setdefault(record.source, []).append((record, 1e5 * i))
    totals: dict[str, dict] = {}
    result: dict[str, dict] = {"sources": {}}
    quiet = note or (lambda message: None)
    for source, items in sorted(by_source.items()):
        phases = _phases_of([r for r, _ in items])
        predicted, reference, ignored = [], [], []
        for record, offset in items:
            predicted += list(picker.pick(record_stream(record, start_offset=offset), note=quiet))
            ref = record_references(record, start_offset=offset)
            reference += ref.picks
            ignored += ref.ignored
        scores = score_picks(predicted, reference, tolerance=tolerance, phases=phases, ignored=ignored)
        result["sources"][source] = {phase: s.as_dict() for phase, s in scores.items()}
        result["sources"][source]["reference"] = "consensus" if items[0][0].category == "continuous" else "analyst"
        for phase, s in scores.items():
            total = totals.setdefault(phase, {"tp": 0, "fp": 0, "fn": 0, "residuals": []})
            total["tp"] += s.true_positives
            total["fp"] += s.false_positives
            total["fn"] += s.false_negatives
            total["residuals"].append(s.residuals)
    for phase, t in totals.items():
        score = PhaseScore(phase, t["tp"], t["fp"], t["fn"], np.concatenate(t["residuals"]))
        result[phase] = score.as_dict()
    result["macro"] = _macro(result["sources"].values())
    for reference in ("analyst", "consensus"):
        result[f"macro_{reference}"] = _macro(v for v in result["sources"].values() if v["reference"] == reference)
    return result


def _macro(sources) -> dict[str, float]:
    """Mean F1 per phase over sources that have reference picks of that phase (F1 is
    undefined without any: a quiet network is no evidence either way)."""
    sources = list(sources)
    out = {}
    for phase in ("P", "S"):
        values = [v[phase]["f1"] for v in sources if phase in v and v[phase]["tp"] + v[phase]["fn"] > 0]
        if values:
            out[phase] = float(np.mean(values))
    return out


def tune_thresholds(model, records: list[Record], grid: list[float], tolerance: float = 0.5) -> dict:
    """Per-phase thresholds maximising the mean F1 over sources; annotates each record once.

    Each source (a held-out network, or a labelled set) weighs the same, as in
    :func:`score_records`' ``macro``, so a long continuous record does not outvote a small
    analyst-picked network.
    """
    from xiaonet.scoring.matching import score_picks

    counts: dict[str, dict[str, dict[float, list[int]]]] = {}
    by_source: dict[str, list[Record]] = {}
    for record in records:
        by_source.setdefault(record.source, []).append(record)
    for source, recs in by_source.items():
        phases = _phases_of(recs)
        table = counts.setdefault(source, {phase: {t: [0, 0, 0] for t in grid} for phase in phases})
        for i, record in enumerate(recs):
            stream = record_stream(record, start_offset=1e5 * i)
            if len(stream) == 0:
                continue
            with torch.no_grad():
                annotations = model.annotate(stream)
            refs = record_references(record, start_offset=1e5 * i)
            for threshold in grid:
                picks = model.classify_aggregate(
                    annotations, {"P_threshold": threshold, "S_threshold": threshold}
                ).picks
                scores = score_picks(picks, refs.picks, tolerance=tolerance, phases=phases,
                                     ignored=refs.ignored)
                for phase, s in scores.items():
                    c = table[phase][threshold]
                    c[0] += s.true_positives
                    c[1] += s.false_positives
                    c[2] += s.false_negatives

    def f1(c):
        return 2 * c[0] / (2 * c[0] + c[1] + c[2]) if c[0] else 0.0

    chosen = {}
    for phase in "PS":
        tables = [table[phase] for table in counts.values() if phase in table]
        if not tables:
            continue
        mean_f1 = {t: float(np.mean([f1(tab[t]) for tab in tables])) for t in grid}
        best = max(grid, key=lambda t: (round(mean_f1[t], 6), -abs(t - 0.3)))
        chosen[phase] = {"threshold": float(best), "tuning_f1": mean_f1[best],
                         "sweep": {str(t): round(mean_f1[t], 4) for t in grid}}
    return chosen
