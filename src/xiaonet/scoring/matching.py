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
            return {"mean": nan, "median": nan, "std": nan, "mae": nan, "rmse": nan, "outlier_fraction": nan}
        return {
            "mean": float(r.mean()),
            "median": float(np.median(r)),
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


def pair_closest(a: np.ndarray, b: np.ndarray, within: float) -> list[tuple[int, int]]:
    """One-to-one pairs ``(i, j)`` with ``|a[i] - b[j]| <= within``, closest pair first.

    The one matching rule of the project: picks to reference picks, and one teacher's picks
    to another's in the consensus.

    >>> pair_closest(np.array([1.0, 1.3]), np.array([1.1, 5.0]), 0.5)
    [(0, 0)]
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return []
    distance = np.abs(a[:, None] - b[None, :])
    candidates = np.argwhere(distance <= within)
    order = np.argsort(distance[candidates[:, 0], candidates[:, 1]], kind="stable")
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs = []
    for i, j in candidates[order]:
        if i in used_a or j in used_b:
            continue
        used_a.add(int(i))
        used_b.add(int(j))
        pairs.append((int(i), int(j)))
    return pairs


def match_picks(predicted: Iterable[float], reference: Iterable[float], tolerance: float = 0.5,
                ignored: Iterable[float] = ()) -> Match:
    """Match predicted to reference times (same station and phase) one-to-one, closest first.

    A predicted pick left unmatched that lies within ``tolerance`` of an ``ignored`` time is
    not counted at all (neither a hit nor a false positive).
    """
    predicted = np.asarray([float(t) for t in predicted], dtype=np.float64)
    reference = np.asarray([float(t) for t in reference], dtype=np.float64)
    pairs = pair_closest(predicted, reference, tolerance)
    residuals = [predicted[i] - reference[j] for i, j in pairs]
    n_predicted = int(predicted.size)
    ignored = np.asarray([float(t) for t in ignored], dtype=np.float64)
    if ignored.size and predicted.size:
        unmatched = np.ones(predicted.size, dtype=bool)
        unmatched[[i for i, _ in pairs]] = False
        near_ignored = np.min(np.abs(predicted[:, None] - ignored[None, :]), axis=1) <= tolerance
        n_predicted -= int(np.count_nonzero(unmatched & near_ignored))
    return Match(np.asarray(residuals, dtype=np.float64), n_predicted, int(reference.size))


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
    ignored: Iterable[ReferencePick] = (),
) -> dict[str, PhaseScore]:
    """Per-phase scores of picks (``seisbench.util.Pick``-like objects) against analyst picks.

    :param min_probability: ignore predicted picks whose ``peak_value`` is below it
        (a threshold sweep without re-running the picker).
    :param ignored: picks that are neither rewarded nor penalised (in consensus scoring, the
        picks only one teacher made): a predicted pick left unmatched by ``reference`` that
        lies within ``tolerance`` of one of them is not a false positive.
    """
    pred_groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for pick in predicted:
        if min_probability is not None and (pick.peak_value or 0.0) < min_probability:
            continue
        pred_groups[(pick.trace_id, pick.phase)].append(_pick_time(pick))
    ref_groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for ref in reference:
        ref_groups[(ref.trace_id, ref.phase)].append(float(ref.time))
    ignored_groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for ref in ignored:
        ignored_groups[(ref.trace_id, ref.phase)].append(float(ref.time))
    scores = {}
    for phase in phases:
        keys = {k for k in (*pred_groups, *ref_groups) if k[1] == phase}
        tp = fp = fn = 0
        residuals = []
        for key in sorted(keys):
            match = match_picks(pred_groups.get(key, []), ref_groups.get(key, []), tolerance,
                                ignored_groups.get(key, ()))
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


# --- threshold sweeps and window-level metrics ---------------------------------------------


@dataclass
class SweepPoint:
    """Scores of one phase when only picks with ``peak_value >= threshold`` are kept."""

    phase: str
    threshold: float
    precision: float
    recall: float
    f1: float
    true_positives: int
    false_positives: int
    false_negatives: int

    def as_dict(self) -> dict:
        return {
            "phase": self.phase,
            "threshold": self.threshold,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "tp": self.true_positives,
            "fp": self.false_positives,
            "fn": self.false_negatives,
        }


def sweep_thresholds(
    predicted: Iterable,
    reference: Iterable[ReferencePick],
    thresholds: Iterable[float],
    tolerance: float = 0.5,
    phases: tuple[str, ...] = ("P", "S"),
    ignored: Iterable[ReferencePick] = (),
) -> list[SweepPoint]:
    """Precision / recall / F1 per phase at each threshold on the picks' ``peak_value``.

    The picks should come from the picker run at (or below) the lowest threshold; a pick is
    kept at threshold ``t`` when its peak value is at least ``t``. This equals re-running a
    SeisBench picker at ``t`` except where one trigger region above the low threshold holds
    two separate peaks above ``t`` (then it is one pick here, two in a re-run).
    """
    predicted = list(predicted)
    reference = list(reference)
    ignored = list(ignored)
    points = []
    for threshold in sorted(float(t) for t in thresholds):
        scores = score_picks(predicted, reference, tolerance, phases, min_probability=threshold,
                             ignored=ignored)
        for phase in phases:
            s = scores[phase]
            points.append(
                SweepPoint(phase, threshold, s.precision, s.recall, s.f1,
                           s.true_positives, s.false_positives, s.false_negatives)
            )
    return points


def best_f1_threshold(points: Iterable[SweepPoint], phase: str) -> SweepPoint | None:
    """The sweep point with the highest F1 for ``phase`` (the lowest threshold on ties)."""
    candidates = sorted((p for p in points if p.phase == phase), key=lambda p: p.threshold)
    if not candidates:
        return None
    return max(candidates, key=lambda p: p.f1)  # max keeps the first of equal values


def roc_auc(scores: Iterable[float], labels: Iterable[bool]) -> float:
    """Area under the ROC curve: the probability that a random positive outscores a random
    negative, ties counting one half (Mann-Whitney U). NaN when a class is missing.
    """
    scores = np.asarray(list(scores), dtype=np.float64)
    labels = np.asarray(list(labels), dtype=bool)
    if scores.shape != labels.shape:
        raise ValueError(f"roc_auc: {scores.size} scores but {labels.size} labels")
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    i = 0
    while i < scores.size:
        j = i
        while j + 1 < scores.size and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def matthews_corrcoef(truth: Iterable[bool], prediction: Iterable[bool]) -> float:
    """Matthews correlation coefficient of two binary labelings (0 when undefined)."""
    truth = np.asarray(list(truth), dtype=bool)
    prediction = np.asarray(list(prediction), dtype=bool)
    if truth.shape != prediction.shape:
        raise ValueError(f"matthews_corrcoef: {truth.size} labels but {prediction.size} predictions")
    tp = float((truth & prediction).sum())
    tn = float((~truth & ~prediction).sum())
    fp = float((~truth & prediction).sum())
    fn = float((truth & ~prediction).sum())
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / denominator) if denominator > 0 else 0.0


def residual_summary(residuals: Iterable[float], outlier_threshold: float = 0.2) -> dict[str, float]:
    """Mean, std, MAE, RMSE and outlier fraction (|r| > ``outlier_threshold``) of residuals."""
    r = np.asarray(list(residuals), dtype=np.float64)
    return PhaseScore("", int(r.size), 0, 0, r, outlier_threshold).residual_stats()


# --- pooled scores with bootstrap intervals -------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A figure and its bootstrap interval (``low``, ``high``: NaN when it cannot be drawn)."""

    value: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def f1_from_counts(tp, fp, fn):
    """Micro F1 ``2 TP / (2 TP + FP + FN)`` of (arrays of) counts; 0 where there is nothing.

    >>> float(f1_from_counts(3, 1, 1))
    0.75
    """
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(denominator), where=denominator > 0)


def bootstrap_indices(n_records: int, rng: np.random.Generator, resamples: int = 1000) -> np.ndarray:
    """``(resamples, n_records)`` record indices drawn with replacement: one row per resample.

    Draw them once and pass the same rows to every picker, so that two pickers are compared on
    the same resampled records (:func:`paired_f1_difference`).
    """
    if n_records <= 0:
        return np.zeros((resamples, 0), dtype=np.int64)
    return rng.integers(0, n_records, size=(resamples, n_records))


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def recall_from_counts(tp, fp, fn):
    """``TP / (TP + FN)`` of (arrays of) counts; NaN where there is no reference pick."""
    tp, fn = np.asarray(tp, dtype=np.float64), np.asarray(fn, dtype=np.float64)
    denominator = tp + fn
    return np.divide(tp, denominator, out=np.full_like(denominator, np.nan), where=denominator > 0)


def pooled_recall(counts, indices: np.ndarray, level: float = 0.9) -> Interval:
    """Recall of per-record ``(TP, FP, FN)`` rows with its bootstrap interval, as :func:`pooled_f1`."""
    counts = np.asarray(counts, dtype=np.float64).reshape(-1, 3)
    value = float(recall_from_counts(*counts.sum(axis=0)))
    if counts.shape[0] == 0 or indices.size == 0:
        return Interval(value, float("nan"), float("nan"))
    sums = counts[indices].sum(axis=1)
    return Interval(value, *_percentiles(recall_from_counts(sums[:, 0], sums[:, 1], sums[:, 2]), level))


def pooled_f1(counts, indices: np.ndarray, level: float = 0.9) -> Interval:
    """Micro F1 of per-record ``(TP, FP, FN)`` rows (summed over records) with the percentile
    bootstrap interval over the resampled records ``indices`` (:func:`bootstrap_indices`).

    Records, not picks, are resampled: the picks of one trace stand or fall together.

    >>> counts = [(1, 0, 0), (0, 1, 1)]
    >>> pooled_f1(counts, np.array([[0, 0], [1, 1], [0, 1]])).value
    0.5
    """
    counts = np.asarray(counts, dtype=np.float64).reshape(-1, 3)
    value = float(f1_from_counts(*counts.sum(axis=0)))
    if counts.shape[0] == 0 or indices.size == 0:
        return Interval(value, float("nan"), float("nan"))
    sums = counts[indices].sum(axis=1)  # (resamples, 3)
    return Interval(value, *_percentiles(f1_from_counts(sums[:, 0], sums[:, 1], sums[:, 2]), level))


def paired_f1_difference(counts_a, counts_b, indices: np.ndarray, level: float = 0.9) -> Interval:
    """F1 of picker A minus F1 of picker B on the same records (row ``i`` of both count
    arrays is record ``i``), with the bootstrap interval of the difference: each resample
    draws the same records for both. A difference whose interval holds 0 decides nothing.
    """
    a = np.asarray(counts_a, dtype=np.float64).reshape(-1, 3)
    b = np.asarray(counts_b, dtype=np.float64).reshape(-1, 3)
    if a.shape != b.shape:
        raise ValueError(f"paired_f1_difference: {a.shape[0]} records for A but {b.shape[0]} for B")
    value = float(f1_from_counts(*a.sum(axis=0)) - f1_from_counts(*b.sum(axis=0)))
    if a.shape[0] == 0 or indices.size == 0:
        return Interval(value, float("nan"), float("nan"))
    sa, sb = a[indices].sum(axis=1), b[indices].sum(axis=1)
    differences = f1_from_counts(sa[:, 0], sa[:, 1], sa[:, 2]) - f1_from_counts(sb[:, 0], sb[:, 1], sb[:, 2])
    return Interval(value, *_percentiles(differences, level))


def pooled_median(residuals_per_record, indices: np.ndarray, level: float = 0.9) -> Interval:
    """Median of all residuals (one array per record) with its bootstrap interval over the
    resampled records; NaN without residuals (a resample without any is skipped)."""
    arrays = [np.asarray(r, dtype=np.float64).ravel() for r in residuals_per_record]
    pooled = np.concatenate(arrays) if arrays else np.zeros(0)
    value = float(np.median(pooled)) if pooled.size else float("nan")
    if not pooled.size or indices.size == 0:
        return Interval(value, float("nan"), float("nan"))
    medians = np.full(indices.shape[0], np.nan)
    for k, row in enumerate(indices):
        sample = np.concatenate([arrays[i] for i in row])
        if sample.size:
            medians[k] = np.median(sample)
    return Interval(value, *_percentiles(medians, level))
