"""Training windows: label curves around analyst picks, P / S / noise targets, and
:class:`WindowSampler`, which cuts waveform and labels together at random offsets (in
``phasenet_ncedc2019`` the P pick is always at sample 3000, so fixed windows would teach the
student a position, not a phase)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np


logger = logging.getLogger(__name__)

from xiaonet.data.records import DataError, Record

# --- labels and windows ----------------------------------------------------------------------


def hard_label_curve(n: int, picks: np.ndarray, shape: str, width: float) -> np.ndarray:
    """Label curve of length ``n`` peaking at 1 on each pick (sample positions)."""
    t = np.arange(n, dtype=np.float32)
    out = np.zeros(n, dtype=np.float32)
    for pick in picks:
        d = t - float(pick)
        if shape == "gaussian":
            curve = np.exp(-0.5 * (d / width) ** 2)
        elif shape == "triangle":
            curve = np.clip(1.0 - np.abs(d) / (2 * width), 0.0, None)
        else:
            curve = (np.abs(d) <= width).astype(np.float32)
        out = np.maximum(out, curve)
    return out


def phase_targets(p: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(3, n) P / S / noise target with noise = 1 - P - S, renormalised where P + S > 1."""
    total = p + s
    scale = np.where(total > 1.0, 1.0 / np.maximum(total, 1e-12), 1.0)
    p, s = p * scale, s * scale
    return np.stack([p, s, np.clip(1.0 - p - s, 0.0, None)]).astype(np.float32)


def is_flat(waveform: np.ndarray, relative: float = 1e-6) -> bool:
    """True when no component varies by more than ``relative`` x its level (constant data)."""
    spread = np.ptp(waveform, axis=-1)
    level = np.abs(waveform).max(axis=-1)
    return bool(np.all(spread <= relative * np.maximum(level, 1e-30)))


def onset_samples(record: Record, teacher_level: float = 0.5) -> np.ndarray:
    """Sample indices of a record's onsets: its analyst picks and the peaks of its teacher
    P / S probabilities above ``teacher_level`` (one per run above it).

    >>> import numpy as np
    >>> from xiaonet.data.records import Record
    >>> teacher = np.zeros((3, 100), np.float32); teacher[0, 10:14] = [0.6, 0.9, 0.7, 0.2]
    >>> r = Record("r", "src", "XX.A", np.zeros((3, 100), np.float32), 0.0, np.array([50.0]), np.zeros(0))
    >>> r.teacher = teacher
    >>> onset_samples(r).tolist()
    [11, 50]
    """
    onsets = [np.round(record.p_samples), np.round(record.s_samples)]
    if record.teacher is not None:
        for row in np.asarray(record.teacher[:2], dtype=np.float32):
            above = np.concatenate([[False], row >= teacher_level, [False]])
            edges = np.flatnonzero(np.diff(above.astype(np.int8)))
            for a, b in zip(edges[::2], edges[1::2]):
                onsets.append(np.asarray([a + int(np.argmax(row[a:b]))]))
    return np.unique(np.concatenate(onsets).astype(np.int64))


@dataclass
class Window:
    """A training window and its targets; ``soft`` / ``hard`` are (3, n) P/S/noise or None."""

    waveform: np.ndarray
    soft: np.ndarray | None
    hard: np.ndarray | None


class WindowSampler:
    """Cuts training windows at random offsets from records, by source weight.

    :param records: training records (those with neither teacher nor hard labels are skipped).
    :param weights: source name -> weight.
    """

    def __init__(self, records: list[Record], weights: dict[str, float], window_len: int,
                 label_shape: str = "gaussian", label_width: float = 15.0,
                 quiet_threshold: float = 0.05):
        self.window_len = window_len
        self.label_shape = label_shape
        self.label_width = label_width
        usable = [r for r in records if (r.teacher is not None or r.hard_labels)
                  and r.n_samples >= window_len]
        self.by_source: dict[str, list[Record]] = {}
        for record in usable:
            self.by_source.setdefault(record.source, []).append(record)
        self.sources = sorted(s for s in self.by_source if weights.get(s, 0) > 0)
        if not self.sources:
            raise DataError("no training records with teacher or analyst labels in any weighted source")
        w = np.asarray([weights[s] for s in self.sources], dtype=np.float64)
        self.source_p = w / w.sum()
        # Within a source, long records are drawn in proportion to the windows they hold.
        self.record_p = {}
        for source, recs in self.by_source.items():
            lengths = np.asarray([r.n_samples - window_len + 1 for r in recs], dtype=np.float64)
            self.record_p[source] = lengths / lengths.sum()
        self.events = [r for r in usable if r.p_samples.size and r.category != "noise"]
        self.noise_windows = self._find_quiet_windows(records, quiet_threshold)

    def _find_quiet_windows(self, records: list[Record], threshold: float) -> list[tuple[Record, int]]:
        """(record, offset) of windows with no analyst pick and a quiet teacher."""
        found = []
        n = self.window_len
        for record in records:
            if record.category == "noise":
                found += [(record, o) for o in range(0, record.n_samples - n + 1, n // 2)]
                continue
            if record.teacher is None:
                continue
            peak = record.teacher.max(axis=0).astype(np.float32)
            picks = np.concatenate([record.p_samples, record.s_samples])
            for offset in range(0, record.n_samples - n + 1, n // 2):
                if np.any((picks >= offset - 200) & (picks < offset + n + 200)):
                    continue
                if peak[offset: offset + n].max() < threshold:
                    found.append((record, offset))
        return found

    def cut(self, record: Record, offset: int) -> Window:
        n = self.window_len
        waveform = record.waveform[:, offset: offset + n].astype(np.float32, copy=True)
        soft = None
        if record.teacher is not None:
            t = record.teacher[:, offset: offset + n].astype(np.float32)
            soft = phase_targets(t[0], t[1])
        hard = None
        if record.hard_labels:
            p = hard_label_curve(n, record.p_samples - offset, self.label_shape, self.label_width)
            s = hard_label_curve(n, record.s_samples - offset, self.label_shape, self.label_width)
            hard = phase_targets(p, s)
        return Window(waveform, soft, hard)

    def draw(self, rng: np.random.Generator, max_tries: int = 20) -> Window:
        """A random window; flat windows (every component constant: dead or clipped stretches,
        which carry no phase and normalise to all zeros) are redrawn."""
        for _ in range(max_tries):
            source = self.sources[rng.choice(len(self.sources), p=self.source_p)]
            recs = self.by_source[source]
            record = recs[rng.choice(len(recs), p=self.record_p[source])]
            offset = int(rng.integers(0, record.n_samples - self.window_len + 1))
            window = self.cut(record, offset)
            if not is_flat(window.waveform):
                return window
        raise DataError("could not draw a non-flat training window in 20 tries: is the data all constant?")

    def draw_onset_at(self, rng: np.random.Generator, lo: int, hi: int) -> Window:
        """A window with an onset (an analyst pick, or a teacher peak >= 0.5) at a random
        sample in ``[lo, hi)`` of the window: early-warning students learn to pick with
        little data after the onset. A plain random window when no record has one."""
        if not hasattr(self, "_onsets"):
            self._onsets = [(r, onset_samples(r)) for recs in self.by_source.values() for r in recs]
            self._onsets = [(r, o) for r, o in self._onsets if o.size]
        if not self._onsets:
            return self.draw(rng)
        record, onsets = self._onsets[int(rng.integers(len(self._onsets)))]
        onset = int(onsets[int(rng.integers(onsets.size))])
        offset = onset - int(rng.integers(lo, hi))
        offset = int(np.clip(offset, 0, record.n_samples - self.window_len))
        window = self.cut(record, offset)
        return window if not is_flat(window.waveform) else self.draw(rng)

    def draw_event(self, rng: np.random.Generator) -> Window | None:
        if not self.events:
            return None
        record = self.events[int(rng.integers(len(self.events)))]
        p = float(record.p_samples[0])
        lo = int(max(0, p - self.window_len + 100))
        hi = int(min(record.n_samples - self.window_len, p - 100))
        offset = int(rng.integers(lo, hi + 1)) if hi >= lo else int(rng.integers(0, record.n_samples - self.window_len + 1))
        return self.cut(record, offset)

    def draw_noise(self, rng: np.random.Generator) -> np.ndarray | None:
        if not self.noise_windows:
            return None
        record, offset = self.noise_windows[int(rng.integers(len(self.noise_windows)))]
        return record.waveform[:, offset: offset + self.window_len].astype(np.float32, copy=True)
