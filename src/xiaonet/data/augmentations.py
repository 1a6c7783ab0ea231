"""Training augmentations: small composable callables over a :class:`~xiaonet.data.windows.Window`.

Each augmentation takes ``(window, rng)`` with an explicit ``numpy.random.Generator`` and
returns the (possibly new) window; anything that moves or removes samples moves or removes
the labels with them, so waveform, teacher targets and analyst targets stay aligned.
``str(pipeline)`` describes the whole chain.

>>> import numpy as np
>>> from xiaonet.data.windows import Window
>>> pipeline = AugmentPipeline([Normalize(method="zscore"), AddNoise(noise_level=0.1)])
>>> window = Window(np.ones((3, 100), dtype=np.float32), None, None)
>>> pipeline(window, np.random.default_rng(0)).waveform.shape
(3, 100)
>>> print(pipeline)
AugmentPipeline([Normalize(method='zscore'), AddNoise(noise_level=0.1, probability=1.0)])
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from xiaonet.data.windows import Window, phase_targets


def _fields(window: Window):
    return [a for a in (window.soft, window.hard) if a is not None]


class Augmentation:
    """Base class: ``probability`` of applying, ``__str__`` from the constructor arguments."""

    probability: float = 1.0

    def __call__(self, window: Window, rng: np.random.Generator) -> Window:
        if self.probability < 1.0 and rng.random() >= self.probability:
            return window
        return self.apply(window, rng)

    def apply(self, window: Window, rng: np.random.Generator) -> Window:  # pragma: no cover
        raise NotImplementedError

    def _args(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and not callable(v)}

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._args().items())
        return f"{type(self).__name__}({args})"

    __repr__ = __str__


class AugmentPipeline:
    """Applies augmentations in order."""

    def __init__(self, augmentations: Sequence[Callable]):
        self.augmentations = list(augmentations)

    def __call__(self, window: Window, rng: np.random.Generator) -> Window:
        for augmentation in self.augmentations:
            window = augmentation(window, rng)
        return window

    def __str__(self) -> str:
        return f"AugmentPipeline([{', '.join(str(a) for a in self.augmentations)}])"

    __repr__ = __str__


class Normalize(Augmentation):
    """Demean and scale each window: ``zscore`` (std) or ``peak`` (largest absolute value).

    XiaoNet normalises inside ``forward``, so this is only needed for other students.
    """

    def __init__(self, method: str = "zscore"):
        if method not in ("zscore", "peak"):
            raise ValueError(f"Normalize method '{method}' unknown; expected 'zscore' or 'peak'")
        self.method = method

    def apply(self, window, rng):
        x = window.waveform - window.waveform.mean(axis=-1, keepdims=True)
        scale = x.std() if self.method == "zscore" else np.abs(x).max()
        window.waveform = (x / scale if scale > 0 else x).astype(np.float32)
        return window


class AddNoise(Augmentation):
    """Gaussian noise with std ``noise_level`` x the window's std."""

    def __init__(self, noise_level: float = 0.1, probability: float = 1.0):
        self.noise_level = noise_level
        self.probability = probability

    def apply(self, window, rng):
        x = window.waveform
        std = float(x.std()) or 1.0
        window.waveform = (x + rng.normal(0.0, self.noise_level * std, x.shape)).astype(np.float32)
        return window


class Gain(Augmentation):
    """Random overall gain, log-uniform over ``decades`` orders of magnitude around 1."""

    def __init__(self, decades: float = 8.0, probability: float = 1.0):
        self.decades = decades
        self.probability = probability

    def apply(self, window, rng):
        gain = 10.0 ** rng.uniform(-self.decades / 2, self.decades / 2)
        window.waveform = (window.waveform.astype(np.float64) * gain).astype(np.float32)
        return window


class RealNoise(Augmentation):
    """Adds a real noise window (``draw_noise(rng)``) at a random SNR in dB (std ratio)."""

    def __init__(self, draw_noise: Callable, snr_db: tuple[float, float] = (-5.0, 20.0),
                 probability: float = 0.3):
        self._draw_noise = draw_noise
        self.snr_db = tuple(snr_db)
        self.probability = probability

    def apply(self, window, rng):
        noise = self._draw_noise(rng)
        if noise is None:
            return window
        x = window.waveform
        signal_std, noise_std = float(x.std()), float(noise.std())
        if signal_std == 0 or noise_std == 0:
            return window
        snr = 10.0 ** (rng.uniform(*self.snr_db) / 20.0)
        present = np.any(x != 0, axis=-1, keepdims=True)  # keep dead components dead
        window.waveform = (x + present * noise[:, : x.shape[-1]] * (signal_std / (snr * noise_std))).astype(np.float32)
        return window


class TimeShift(Augmentation):
    """Circular shift of waveform and labels by up to ``max_fraction`` of the window."""

    def __init__(self, max_fraction: float = 0.5, probability: float = 0.2):
        self.max_fraction = max_fraction
        self.probability = probability

    def apply(self, window, rng):
        n = window.waveform.shape[-1]
        shift = int(rng.integers(-int(self.max_fraction * n), int(self.max_fraction * n) + 1))
        window.waveform = np.roll(window.waveform, shift, axis=-1)
        if window.soft is not None:
            window.soft = np.roll(window.soft, shift, axis=-1)
        if window.hard is not None:
            window.hard = np.roll(window.hard, shift, axis=-1)
        return window


class ComponentDropout(Augmentation):
    """Keeps only the vertical component (single-component stations), labels unchanged."""

    def __init__(self, probability: float = 0.15):
        self.probability = probability

    def apply(self, window, rng):
        window.waveform = window.waveform.copy()
        window.waveform[1:] = 0.0
        return window


class ZeroGap(Augmentation):
    """Zeroes a random stretch of all components (a telemetry gap); labels there become noise."""

    def __init__(self, max_samples: int = 500, probability: float = 0.1):
        self.max_samples = max_samples
        self.probability = probability

    def apply(self, window, rng):
        n = window.waveform.shape[-1]
        length = int(rng.integers(1, min(self.max_samples, n) + 1))
        start = int(rng.integers(0, n - length + 1))
        window.waveform = window.waveform.copy()
        window.waveform[:, start: start + length] = 0.0
        for name in ("soft", "hard"):
            target = getattr(window, name)
            if target is not None:
                target = target.copy()
                target[0:2, start: start + length] = 0.0
                target[2, start: start + length] = 1.0
                setattr(window, name, target)
        return window


class SuperposeEvent(Augmentation):
    """Adds a second labelled event window (``draw_event(rng)``) at a random relative amplitude.

    Labels are combined per phase (sum, renormalised, noise = 1 - P - S); a target is kept
    only where both windows have it.
    """

    def __init__(self, draw_event: Callable, amplitude: tuple[float, float] = (0.1, 1.0),
                 probability: float = 0.1):
        self._draw_event = draw_event
        self.amplitude = tuple(amplitude)
        self.probability = probability

    def apply(self, window, rng):
        other = self._draw_event(rng)
        if other is None:
            return window
        x, y = window.waveform, other.waveform
        sx, sy = float(x.std()), float(y.std())
        if sx == 0 or sy == 0:
            return window
        scale = rng.uniform(*self.amplitude) * sx / sy
        present = np.any(x != 0, axis=-1, keepdims=True)
        window.waveform = (x + present * y * scale).astype(np.float32)

        def combine(a, b):
            if a is None or b is None:
                return None
            return phase_targets(a[0] + b[0], a[1] + b[1])

        window.soft = combine(window.soft, other.soft)
        window.hard = combine(window.hard, other.hard)
        return window


class PolarityFlip(Augmentation):
    """Multiplies the waveform by -1 (labels unchanged)."""

    def __init__(self, probability: float = 0.5):
        self.probability = probability

    def apply(self, window, rng):
        window.waveform = -window.waveform
        return window


class RandomResponse(Augmentation):
    """A different instrument and sampling rate: random band limits and spectral tilt.

    What differs most between networks is the band a record carries: data sampled at
    40-50 Hz (resampled to 100 Hz for the model) holds nothing above 16-20 Hz, a 1 Hz
    short-period or a 4.5 Hz geophone little below its corner, an accelerometer weighs high
    frequencies up (acceleration is velocity differentiated). Each time it applies, this
    draws a low-pass corner from ``lowpass_hz`` (log-uniform), a high-pass corner from
    ``highpass_hz`` with probability 0.5, and differentiates (accelerometer-like) or
    integrates (displacement-like, after the high-pass) with probability ``tilt_probability``
    each. Filters are zero-phase (``sosfiltfilt``), so labels keep their samples.
    """

    def __init__(self, lowpass_hz: tuple[float, float] = (8.0, 45.0),
                 highpass_hz: tuple[float, float] = (0.2, 5.0), tilt_probability: float = 0.15,
                 sampling_rate: float = 100.0, probability: float = 0.5):
        self.lowpass_hz = tuple(lowpass_hz)
        self.highpass_hz = tuple(highpass_hz)
        self.tilt_probability = tilt_probability
        self.sampling_rate = sampling_rate
        self.probability = probability

    def apply(self, window, rng):
        from scipy.signal import butter, sosfiltfilt

        x = window.waveform.astype(np.float64)
        nyquist = self.sampling_rate / 2
        low = float(np.exp(rng.uniform(*np.log(self.lowpass_hz))))
        if low < 0.95 * nyquist:
            x = sosfiltfilt(butter(int(rng.integers(2, 7)), low / nyquist, "low", output="sos"), x, axis=-1)
        draw = rng.random()
        if draw < self.tilt_probability:
            x = np.gradient(x, axis=-1) * self.sampling_rate
        high = None
        if rng.random() < 0.5 or self.tilt_probability <= draw < 2 * self.tilt_probability:
            high = float(np.exp(rng.uniform(*np.log(self.highpass_hz))))
            x = sosfiltfilt(butter(2, high / nyquist, "high", output="sos"), x, axis=-1)
        if self.tilt_probability <= draw < 2 * self.tilt_probability:
            x = np.cumsum(x, axis=-1) / self.sampling_rate
            x -= x.mean(axis=-1, keepdims=True)
        window.waveform = x.astype(np.float32)
        return window


class RotateHorizontals(Augmentation):
    """Rotates the two horizontals by a random angle (unrotated 1/2 sensors, misoriented
    boreholes and ocean-bottom seismometers), and swaps them half of those times."""

    def __init__(self, probability: float = 0.5):
        self.probability = probability

    def apply(self, window, rng):
        angle = rng.uniform(0.0, 2 * np.pi)
        c, s = np.cos(angle), np.sin(angle)
        x = window.waveform.copy()
        n, e = x[1].copy(), x[2].copy()
        x[1], x[2] = c * n - s * e, s * n + c * e
        if rng.random() < 0.5:
            x[[1, 2]] = x[[2, 1]]
        window.waveform = x
        return window


class ChannelDropout(Augmentation):
    """Zeroes one random component (a dead or missing channel), labels unchanged."""

    def __init__(self, probability: float = 0.1):
        self.probability = probability

    def apply(self, window, rng):
        window.waveform = window.waveform.copy()
        window.waveform[int(rng.integers(0, 3))] = 0.0
        return window


def build_pipeline(augment, sampler=None, sampling_rate: float = 100.0) -> AugmentPipeline:
    """The training pipeline of an :class:`xiaonet.distill.config.AugmentConfig`.

    ``sampler`` (a :class:`xiaonet.data.windows.WindowSampler`) provides the real-noise and
    event banks; without it those two augmentations are left out.
    """
    steps: list[Augmentation] = []
    if sampler is not None and augment.superpose_probability > 0:
        steps.append(SuperposeEvent(sampler.draw_event, probability=augment.superpose_probability))
    if sampler is not None and augment.real_noise_probability > 0:
        steps.append(RealNoise(sampler.draw_noise, augment.real_noise_snr_db, augment.real_noise_probability))
    if augment.gaussian_noise_probability > 0:
        steps.append(AddNoise(augment.gaussian_noise_level, augment.gaussian_noise_probability))
    if augment.shift_probability > 0:
        steps.append(TimeShift(0.5, augment.shift_probability))
    if augment.gap_probability > 0:
        steps.append(ZeroGap(int(augment.gap_max_s * sampling_rate), augment.gap_probability))
    if augment.response_probability > 0:
        steps.append(RandomResponse(tuple(augment.lowpass_hz), tuple(augment.highpass_hz),
                                    augment.tilt_probability, sampling_rate, augment.response_probability))
    if augment.rotate_probability > 0:
        steps.append(RotateHorizontals(augment.rotate_probability))
    if augment.component_dropout_probability > 0:
        steps.append(ComponentDropout(augment.component_dropout_probability))
    if augment.channel_dropout_probability > 0:
        steps.append(ChannelDropout(augment.channel_dropout_probability))
    if augment.polarity_probability > 0:
        steps.append(PolarityFlip(augment.polarity_probability))
    if augment.gain_decades > 0:
        steps.append(Gain(augment.gain_decades))
    return AugmentPipeline(steps)
