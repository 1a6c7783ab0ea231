"""Training batches: windows drawn by the sampler, augmented, stacked into tensors; and the
samples whose loss counts for an early-warning student."""

from __future__ import annotations

import numpy as np
import torch

from xiaonet.data.windows import WindowSampler
from xiaonet.edge.windowing import fill_record_start
from xiaonet.models.model import PHASE_LABELS


def make_batch(sampler: WindowSampler, pipeline, rng: np.random.Generator, batch_size: int,
               onsets_in: tuple[int, int] | None = None, onset_share: float = 0.0,
               record_start_share: float = 0.0):
    """(waveforms, teacher, teacher_mask, labels, label_mask) tensors of one batch.

    ``onsets_in``: a share ``onset_share`` of the windows have an onset in this sample range
    (the samples an early-warning student decides). A share ``record_start_share`` of the
    windows start their record inside them (:func:`record_starts`): the samples before are
    filled as streaming fills a record's start (:func:`xiaonet.edge.windowing.fill_record_start`)
    and their targets are noise."""
    def draw():
        if onsets_in is not None and rng.random() < onset_share:
            return sampler.draw_onset_at(rng, *onsets_in)
        return sampler.draw(rng)

    windows = [pipeline(draw(), rng) for _ in range(batch_size)]
    n = sampler.window_len
    x = np.stack([w.waveform for w in windows]).astype(np.float32)
    starts = record_starts(rng, batch_size, onsets_in, record_start_share) if record_start_share > 0 else {}
    for i, start in starts.items():
        x[i] = fill_record_start(x[i], start)
    teacher = np.zeros((batch_size, 3, n), dtype=np.float32)
    labels = np.zeros((batch_size, 3, n), dtype=np.float32)
    teacher_mask = np.zeros(batch_size, dtype=bool)
    label_mask = np.zeros(batch_size, dtype=bool)
    for i, w in enumerate(windows):
        if w.soft is not None:
            teacher[i], teacher_mask[i] = w.soft, True
        if w.hard is not None:
            labels[i], label_mask[i] = w.hard, True
        if i in starts:  # before its record there is nothing to pick
            for target in (teacher[i], labels[i]):
                target[:, : starts[i]] = NOISE_ONLY
    return (torch.from_numpy(x), torch.from_numpy(teacher), torch.from_numpy(teacher_mask),
            torch.from_numpy(labels), torch.from_numpy(label_mask))


#: The target of a sample with nothing to pick: noise 1, every phase 0 (rows in ``PHASE_LABELS`` order).
NOISE_ONLY = np.array([[float(label == "N")] for label in PHASE_LABELS], dtype=np.float32)


def record_starts(rng: np.random.Generator, batch_size: int, decided: tuple[int, int],
                  share: float) -> dict[int, int]:
    """Where a share of a batch's windows start their record (window index -> first sample of
    the record). Streaming pads ``(window - lookahead) / hop`` windows at a record's start, one
    for each hop of its first window: half of these starts are anywhere before the decided
    samples, half within one decided span of them or among them, where the record's very
    first samples are decided (the start of the data must not look like an onset)."""
    a, b = decided
    out = {}
    for i in np.flatnonzero(rng.random(batch_size) < share):
        late = rng.random() < 0.5
        out[int(i)] = int(rng.integers(max(0, a - (b - a)), b) if late else rng.integers(0, a + 1))
    return out


def decided_samples(model, window_len: int, sampling_rate: float) -> tuple[int, int] | None:
    """Samples of a training window whose loss counts for an early-warning student: those
    that see ``lookahead_s`` to ``lookahead_s + hop_s + EARLY_WARNING_MARGIN_S`` of data after
    them, as the windows of its streaming do. None (every sample) for an offline student.

    A causal student (``causal``) sees ``lookahead_s`` after every sample wherever it lies in
    the window, so its loss counts every sample from the middle of the window (at least half a
    window of data before it, as streaming gives) to ``lookahead_s`` before the end: ~50% of
    the window where a non-causal student has ~4%."""
    settings = getattr(model, "early_warning", None)
    if not settings:
        return None
    end = window_len - int(round(settings["lookahead_s"] * sampling_rate))
    if settings.get("causal"):
        return window_len // 2, end
    width = int(round((settings["hop_s"] + EARLY_WARNING_MARGIN_S) * sampling_rate))
    return max(0, end - width), end


#: Early-warning students also learn on samples up to this much further from the window end
#: than their streaming uses (more supervision per window, the same task).
EARLY_WARNING_MARGIN_S = 0.3
