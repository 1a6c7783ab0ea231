"""Augmentations keep shapes, keep labels aligned with the waveform, and describe themselves."""

from __future__ import annotations

import numpy as np
import pytest

from xiaonet.data.augmentations import (AddNoise, AugmentPipeline, ChannelDropout, ComponentDropout, Gain, Normalize,
                                   PolarityFlip, RandomResponse, RealNoise, RotateHorizontals, SuperposeEvent,
                                   TimeShift, ZeroGap, build_pipeline)
from xiaonet.distill.config import AugmentConfig
from xiaonet.data.windows import Window, hard_label_curve, phase_targets

N = 1000
P, S = 300, 600


def event_window(p=P, s=S) -> Window:
    """A synthetic event whose P and S onsets sit exactly where its labels peak."""
    t = np.arange(N)
    wave = np.zeros((3, N), dtype=np.float32)
    wave += 0.01 * np.sin(t / 3.0)
    wave[:, p:] += 1.0 * np.exp(-(t[p:] - p) / 50.0)
    wave[:, s:] += 3.0 * np.exp(-(t[s:] - s) / 80.0)
    targets = phase_targets(hard_label_curve(N, np.array([p]), "gaussian", 10),
                            hard_label_curve(N, np.array([s]), "gaussian", 10))
    return Window(wave, targets.copy(), targets.copy())


def onset(waveform) -> int:
    return int(np.argmax(np.abs(np.diff(waveform[0])) > 0.5)) + 1


ALL = [Normalize("zscore"), Normalize("peak"), AddNoise(0.1), Gain(8.0), TimeShift(0.5, 1.0), ComponentDropout(1.0),
       ZeroGap(200, 1.0), PolarityFlip(1.0),
       RealNoise(lambda rng: rng.normal(size=(3, N)).astype(np.float32), (0.0, 10.0), 1.0),
       SuperposeEvent(lambda rng: event_window(100, 200), (0.1, 0.5), 1.0),
       RandomResponse(probability=1.0), RotateHorizontals(1.0), ChannelDropout(1.0)]


@pytest.mark.parametrize("augmentation", ALL, ids=lambda a: type(a).__name__)
def test_shapes_dtype_and_valid_targets(augmentation):
    rng = np.random.default_rng(0)
    out = augmentation(event_window(), rng)
    assert out.waveform.shape == (3, N) and out.waveform.dtype == np.float32
    for target in (out.soft, out.hard):
        assert target.shape == (3, N)
        np.testing.assert_allclose(target.sum(axis=0), 1.0, atol=1e-5)
        assert target.min() >= 0
    assert str(augmentation).startswith(type(augmentation).__name__ + "(")


def test_time_shift_moves_labels_with_the_waveform():
    for seed in range(5):
        out = TimeShift(0.3, 1.0)(event_window(), np.random.default_rng(seed))
        shift = (onset(out.waveform) - P) % N
        assert int(np.argmax(out.hard[0])) == (P + shift) % N
        assert int(np.argmax(out.soft[1])) == (S + shift) % N


def test_zero_gap_turns_labels_in_the_gap_into_noise():
    out = ZeroGap(N, 1.0)(event_window(), np.random.default_rng(3))
    gap = np.all(out.waveform == 0, axis=0)
    assert gap.any()
    assert np.all(out.hard[2, gap] == 1.0) and np.all(out.soft[:2, gap] == 0)


def test_superposed_event_adds_its_labels():
    out = SuperposeEvent(lambda rng: event_window(100, 200), (0.5, 0.5), 1.0)(event_window(), np.random.default_rng(0))
    peaks = sorted(np.flatnonzero(out.hard[0] > 0.5).tolist())
    assert 100 in peaks and P in peaks


def test_gain_polarity_dropout_leave_labels_untouched():
    rng = np.random.default_rng(1)
    reference = event_window()
    for augmentation in (Gain(8.0), PolarityFlip(1.0), ComponentDropout(1.0)):
        out = augmentation(event_window(), rng)
        np.testing.assert_array_equal(out.hard, reference.hard)
    out = ComponentDropout(1.0)(event_window(), rng)
    assert not out.waveform[1:].any() and out.waveform[0].any()


def test_gain_spans_orders_of_magnitude():
    rng = np.random.default_rng(0)
    gains = [np.abs(Gain(8.0)(event_window(), rng).waveform).max() for _ in range(200)]
    assert max(gains) / min(gains) > 1e5


def test_probability_zero_is_identity_and_pipeline_prints():
    window = event_window()
    same = AddNoise(0.5, probability=0.0)(window, np.random.default_rng(0))
    np.testing.assert_array_equal(same.waveform, event_window().waveform)
    pipeline = AugmentPipeline([Normalize(method="zscore"), AddNoise(noise_level=0.1)])
    assert str(pipeline) == "AugmentPipeline([Normalize(method='zscore'), AddNoise(noise_level=0.1, probability=1.0)])"
    with pytest.raises(ValueError, match="Normalize method"):
        Normalize("minmax")


def test_pipeline_is_reproducible_with_the_same_generator():
    pipeline = build_pipeline(AugmentConfig())
    a = pipeline(event_window(), np.random.default_rng(42))
    b = pipeline(event_window(), np.random.default_rng(42))
    np.testing.assert_array_equal(a.waveform, b.waveform)
    np.testing.assert_array_equal(a.hard, b.hard)


def test_random_response_band_limits_without_moving_the_onset():
    """Zero-phase filters: the labels stay right; a low-pass removes what lies above it."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        window = event_window()
        before = window.hard.copy()
        out = RandomResponse(lowpass_hz=(10.0, 10.0), tilt_probability=0.0, probability=1.0)(window, rng)
        np.testing.assert_array_equal(out.hard, before)
        steepest = P - 50 + int(np.argmax(np.abs(np.diff(out.waveform[0][P - 50: P + 50]))))
        assert abs(steepest - P) <= 2  # the onset's steepest point stays on the label
        spectrum = np.abs(np.fft.rfft(out.waveform[0]))
        frequencies = np.fft.rfftfreq(N, 0.01)
        assert spectrum[frequencies > 30].max() < 0.05 * spectrum.max()


def test_rotating_horizontals_keeps_horizontal_energy_and_the_vertical():
    window = event_window()
    window.waveform[1] *= 0.3
    energy = float((window.waveform[1:] ** 2).sum())
    vertical = window.waveform[0].copy()
    out = RotateHorizontals(1.0)(window, np.random.default_rng(1))
    np.testing.assert_allclose(float((out.waveform[1:] ** 2).sum()), energy, rtol=1e-5)
    np.testing.assert_array_equal(out.waveform[0], vertical)


def test_channel_dropout_zeroes_exactly_one_component():
    rng = np.random.default_rng(0)
    for _ in range(10):
        out = ChannelDropout(1.0)(event_window(), rng)
        assert sum(not np.any(c) for c in out.waveform) == 1


def test_domain_augmentations_are_in_the_pipeline_only_when_asked():
    plain = str(build_pipeline(AugmentConfig()))
    assert "RandomResponse" not in plain and "RotateHorizontals" not in plain
    config = AugmentConfig(response_probability=0.5, rotate_probability=0.5, channel_dropout_probability=0.1)
    described = str(build_pipeline(config))
    assert "RandomResponse(lowpass_hz=(8.0, 45.0)" in described
    assert "RotateHorizontals(probability=0.5)" in described and "ChannelDropout(probability=0.1)" in described
