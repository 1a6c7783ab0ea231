"""The sensitivity figure: P and S recall (and precision) against the signal-to-noise ratio.

Weak arrivals are where a small student loses most against PhaseNet, and a mean F1 over
easy held-out networks hides it. Here every analyst-picked event of the **test** networks
(records with a P and an S pick) is buried in real noise at -5, 0, 5, 10, 15 and 20 dB, and
every picker picks the same noisy records:

* **noise**: windows of the continuous records of the **validation** networks (other
  stations, never trained on) where both consensus teachers stay below
  :data:`QUIET_THRESHOLD` from :data:`MARGIN_S` before to after the window; records with a
  dead component are not used (they would leave one component clean);
* **SNR**: the P SNR, ``20 log10(std(signal) / std(noise))`` over the three components, the
  signal being the event record from its P pick to :data:`SIGNAL_S` seconds later (the P
  wave, not the larger S; the record's own noise stays: the SNR is that of the added noise,
  the record's own adds to it);
* each event gets one noise window (seeded by ``[seed, event index]``), scaled for each SNR,
  so the curve changes only the level; a component that is dead in the event stays dead.

Picks are scored against the analyst picks by the one scorer (0.5 s, one-to-one), per SNR;
recall has a bootstrap 90% interval over events.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

#: SNR levels in dB.
SNR_DB = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
#: Noise windows: both teachers below this everywhere in and around them.
QUIET_THRESHOLD = 0.05
#: Seconds on each side of a noise window that must be quiet too (no coda or next onset).
MARGIN_S = 2.0
#: Seconds of the event after its P pick whose std is the signal level (the P wave).
SIGNAL_S = 2.0


class NoiseBank:
    """Quiet stretches of continuous records, drawn by length with a seeded generator."""

    def __init__(self, records, threshold: float = QUIET_THRESHOLD, margin: int = int(MARGIN_S * 100)):
        self.records, self.quiet_ends = [], []
        for record in records:
            curves = list(record.teacher_members.values())
            if record.category != "continuous" or len(curves) < 2:
                continue
            if not np.all(np.any(record.waveform != 0, axis=-1)):
                continue  # a dead component would stay noise-free
            loud = np.max([np.max(np.asarray(c, dtype=np.float32), axis=0) for c in curves], axis=0) >= threshold
            if margin:  # widen every loud sample by the margin
                kernel = np.ones(2 * margin + 1)
                loud = np.convolve(loud.astype(np.float64), kernel, mode="same") > 0
            self.records.append(record)
            self.quiet_ends.append(np.concatenate([[0], np.cumsum(~loud)]))

    def offsets(self, k: int, n: int) -> np.ndarray:
        """Offsets of the length-``n`` windows of record ``k`` that are quiet throughout."""
        quiet = self.quiet_ends[k]
        if quiet.size - 1 < n:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(quiet[n:] - quiet[:-n] == n)

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, str] | None:
        """A quiet (3, n) window and where it came from, or None when no record holds one."""
        candidates = [(k, o) for k in range(len(self.records)) if (o := self.offsets(k, n)).size]
        if not candidates:
            return None
        k, offsets = candidates[int(rng.integers(len(candidates)))]
        offset = int(offsets[int(rng.integers(offsets.size))])
        record = self.records[k]
        return record.waveform[:, offset: offset + n].astype(np.float64), f"{record.name}@{offset}"


def snr_db(signal: np.ndarray, noise: np.ndarray) -> float:
    """``20 log10(std(signal) / std(noise))``.

    >>> round(snr_db(np.array([2.0, -2.0]), np.array([1.0, -1.0])), 2)
    6.02
    """
    return float(20.0 * np.log10(np.std(signal) / np.std(noise)))


def bury(waveform: np.ndarray, p_sample: float, noise: np.ndarray, db: float,
         sampling_rate: float = 100.0) -> np.ndarray:
    """``waveform`` plus ``noise`` scaled so that the P-to-``SIGNAL_S`` signal over the noise
    is ``db`` dB; dead components stay dead."""
    start = int(p_sample)
    signal = waveform[:, start: start + int(SIGNAL_S * sampling_rate)]
    present = np.any(waveform != 0, axis=-1, keepdims=True)
    scale = np.std(signal) / (np.std(noise) * 10.0 ** (db / 20.0))
    return (waveform + present * noise[:, : waveform.shape[-1]] * scale).astype(np.float32)


@dataclass
class SensitivitySet:
    """The noisy records (one per event and SNR, ``source`` = ``snr<dB>``) and what made them."""

    records: list
    events: int
    notes: list[str] = field(default_factory=list)
    noise: dict[str, str] = field(default_factory=dict)  # event record -> noise window


def sensitivity_records(events, noise_records, levels=SNR_DB, seed: int = 20261127,
                        sampling_rate: float = 100.0) -> SensitivitySet:
    """Every event with a P and an S pick buried in a quiet noise window at every level."""
    bank = NoiseBank(noise_records)
    usable = [r for r in events if r.category == "earthquake" and r.p_samples.size and r.s_samples.size]
    out = SensitivitySet([], 0)
    if not bank.records:
        out.notes.append("no noise: no continuous record with both teachers' curves and three live components")
        return out
    for i, event in enumerate(usable):
        drawn = bank.draw(event.n_samples, np.random.default_rng([seed, i]))
        if drawn is None:
            out.notes.append(f"{event.name}: no quiet noise window of {event.n_samples} samples; left out")
            continue
        noise, origin = drawn
        out.noise[event.name] = origin
        out.events += 1
        for db in levels:
            out.records.append(replace(event, name=f"{event.name}@snr{db:+g}", source=f"snr{db:+g}",
                                       waveform=bury(event.waveform, event.p_samples[0], noise, db, sampling_rate),
                                       teacher=None, teacher_members={}, consensus=None))
    return out


def sensitivity_rows(scores: dict[str, list], levels=SNR_DB, seed: int = 20261127, resamples: int = 1000,
                     level: float = 0.9) -> list[dict]:
    """Recall (with its bootstrap interval over events), precision and F1 per picker, SNR
    and phase from :func:`xiaonet.evaluate.pooled.score_each_record` output."""
    from xiaonet.scoring.matching import bootstrap_indices, f1_from_counts, pooled_recall

    rows = []
    for label, records in scores.items():
        for db in levels:
            mine = sorted((s for s in records if s.source == f"snr{db:+g}"), key=lambda s: s.record)
            for phase in "PS":
                counts = np.asarray([s.counts[phase] for s in mine if phase in s.counts],
                                    dtype=np.float64).reshape(-1, 3)
                tp, fp, fn = counts.sum(axis=0)
                indices = bootstrap_indices(counts.shape[0], np.random.default_rng([seed, "PS".index(phase)]),
                                            resamples)
                recall = pooled_recall(counts, indices, level)
                rows.append({"picker": label, "snr_db": db, "phase": phase, "events": counts.shape[0],
                             "tp": int(tp), "fp": int(fp), "fn": int(fn), "recall": recall.value,
                             "recall_low": recall.low, "recall_high": recall.high,
                             "precision": float(tp / (tp + fp)) if tp + fp else float("nan"),
                             "f1": float(f1_from_counts(tp, fp, fn))})
    return rows


def sensitivity_table(rows: list[dict], levels=SNR_DB) -> str:
    """Markdown: one row per picker and phase, recall [interval] / precision per SNR."""
    from xiaonet.evaluate.reports import markdown_table

    table = {}
    for r in rows:
        row = table.setdefault((r["picker"], r["phase"]), {"picker": r["picker"], "phase": r["phase"]})
        if not r["events"]:
            row[f"{r['snr_db']:+g}"] = "–"
            continue
        precision = "–" if not np.isfinite(r["precision"]) else f"{r['precision']:.2f}"
        row[f"{r['snr_db']:+g}"] = (f"{r['recall']:.2f} [{r['recall_low']:.2f}, {r['recall_high']:.2f}] / "
                                    f"{precision}")
    columns = [("picker", "picker"), ("phase", "phase")] + [(f"{db:+g}", f"{db:+g} dB") for db in levels]
    return markdown_table(list(table.values()), columns)


def write_sensitivity(rows: list[dict], out: Path, title: str, levels=SNR_DB) -> list[Path]:
    """``sensitivity.csv`` and ``sensitivity.png`` (recall and precision against SNR)."""
    from xiaonet.evaluate.figures import plot_recall_against_snr

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "sensitivity.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["picker"])
        writer.writeheader()
        writer.writerows(rows)
    return [out / "sensitivity.csv", plot_recall_against_snr(rows, out / "sensitivity.png", title)]


def run_sensitivity(bundle, pickers: list[tuple[str, object]], levels=SNR_DB, seed: int = 20261127,
                    tolerance: float = 0.5, max_events: int | None = None, leave_out: set[str] = frozenset(),
                    progress: bool = True, note: Callable[[str], None] | None = None):
    """Events of the test networks, noise of the validation networks: rows and the set."""
    from tqdm import tqdm

    from xiaonet.evaluate.pooled import score_each_record

    note = note or (lambda message: None)
    events = [r for r in bundle.test if r.name not in leave_out]
    if max_events is not None:
        events = events[:max_events]
    noise = [r for r in bundle.val if r.category == "continuous"]
    made = sensitivity_records(events, noise, levels, seed)
    for message in made.notes:
        note(message)
    scores = {label: score_each_record(picker, made.records, tolerance, note, kinds=("analyst",))
              for label, picker in tqdm(pickers, desc="sensitivity pickers", disable=not progress)}
    return sensitivity_rows(scores, levels, seed), made


__all__ = ["SNR_DB", "NoiseBank", "snr_db", "bury", "sensitivity_records", "sensitivity_rows",
           "sensitivity_table", "write_sensitivity", "run_sensitivity", "SensitivitySet"]
