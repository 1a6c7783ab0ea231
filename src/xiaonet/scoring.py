"""Pick scoring: one-to-one matching of picks to analyst picks, per-phase metrics.

Pure functions on plain data, shared by training (dev F1), evaluation and benchmarks, so
every picker is scored by the same code path.

A predicted pick is a hit when it lies within ``tolerance`` seconds of an analyst pick of
the same phase on the same station (``trace_id``). Matching is one-to-one and greedy by
distance: the closest pair is matched first, so a duplicate pick near an already matched
analyst pick counts as a false positive. Residuals are predicted minus analyst (seconds).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np


@dataclass(frozen=True)
class ReferencePick:
    """An analyst pick: station (``NET.STA.LOC``), phase and time (UTCDateTime or seconds)."""

    trace_id: str
    phase: str
    time: float


@dataclass
class Match:
    residuals: np.ndarray  # predicted - reference, seconds, one per hit
    n_predicted: int
    n_reference: int

    @property
    def true_positives(self) -> int:
        return int(self.residuals.size)


@dataclass
class PhaseScore:
    phase: str
    true_positives: int
    false_positives: int
    false_negatives: int
    residuals: np.ndarray = field(repr=False)
    outlier_threshold: float = 0.2

    @property
    def precision(self) -> float:
        n = self.true_positives + self.false_positives
        return self.true_positives / n if n else 0.0

    @property
    def recall(self) -> float:
        n = self.true_positives + self.false_negatives
        return self.true_positives / n if n else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def residual_stats(self) -> dict[str, float]:
        r = self.residuals
        if r.size == 0:
            nan = float("nan")
            return {"mean": nan, "std": nan, "mae": nan, "rmse": nan, "outlier_fraction": nan}
        return {
            "mean": float(r.mean()),
            "std": float(r.std()),
            "mae": float(np.abs(r).mean()),
            "rmse": float(np.sqrt((r**2).mean())),
            "outlier_fraction": float((np.abs(r) > self.outlier_threshold).mean()),
        }

    def as_dict(self) -> dict:
        return {
            "phase": self.phase,
            "tp": self.true_positives,
            "fp": self.false_positives,
            "fn": self.false_negatives,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            **{f"residual_{k}": v for k, v in self.residual_stats().items()},
        }


def match_picks(predicted: Iterable[float], reference: Iterable[float], tolerance: float = 0.5) -> Match:
    """Match predicted to reference times (same station and phase) one-to-one, closest first."""
    predicted = np.asarray([float(t) for t in predicted], dtype=np.float64)
    reference = np.asarray([float(t) for t in reference], dtype=np.float64)
    if predicted.size == 0 or reference.size == 0:
        return Match(np.zeros(0), int(predicted.size), int(reference.size))
    distance = np.abs(predicted[:, None] - reference[None, :])
    candidates = np.argwhere(distance <= tolerance)
    order = np.argsort(distance[candidates[:, 0], candidates[:, 1]], kind="stable")
    used_pred: set[int] = set()
    used_ref: set[int] = set()
    residuals = []
    for i, j in candidates[order]:
        if i in used_pred or j in used_ref:
            continue
        used_pred.add(i)
        used_ref.add(j)
        residuals.append(predicted[i] - reference[j])
    return Match(np.asarray(residuals, dtype=np.float64), int(predicted.size), int(reference.size))


def _pick_time(pick) -> float:
    time = getattr(pick, "peak_time", None)
    if time is None:
        time = getattr(pick, "start_time", None)
    if time is None:
        time = pick.time
    return float(time)


def score_picks(
    predicted: Iterable,
    reference: Iterable[ReferencePick],
    tolerance: float = 0.5,
    phases: tuple[str, ...] = ("P", "S"),
    min_probability: float | None = None,
    outlier_threshold: float = 0.2,
) -> dict[str, PhaseScore]:
    """Per-phase scores of picks (``seisbench.util.Pick``-like objects) against analyst picks.

    :param min_probability: ignore predicted picks whose ``peak_value`` is below it
        (a threshold sweep without re-running the picker).
    """
    pred_groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for pick in predicted:
        if min_probability is not None and (pick.peak_value or 0.0) < min_probability:
            continue
        pred_groups[(pick.trace_id, pick.phase)].append(_pick_time(pick))
    ref_groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for ref in reference:
        ref_groups[(ref.trace_id, ref.phase)].append(float(ref.time))
    scores = {}
    for phase in phases:
        keys = {k for k in (*pred_groups, *ref_groups) if k[1] == phase}
        tp = fp = fn = 0
        residuals = []
        for key in sorted(keys):
            match = match_picks(pred_groups.get(key, []), ref_groups.get(key, []), tolerance)
            tp += match.true_positives
            fp += match.n_predicted - match.true_positives
            fn += match.n_reference - match.true_positives
            residuals.append(match.residuals)
        scores[phase] = PhaseScore(
            phase,
            tp,
            fp,
            fn,
            np.concatenate(residuals) if residuals else np.zeros(0),
            outlier_threshold,
        )
    return scores
