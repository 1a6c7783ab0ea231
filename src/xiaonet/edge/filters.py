"""A teacher's stream filter on numpy arrays (scipy only; the student needs none).

EQTransformer band-passes its input (1-45 Hz, 2 corners, zero phase) before windowing.
:func:`bandpass` reproduces ObsPy's ``obspy.signal.filter.bandpass`` so that the ONNX teacher
can be run on arrays; the student's graph is self-contained and never calls it.
"""

from __future__ import annotations

import numpy as np


def bandpass(data: np.ndarray, freqmin: float, freqmax: float, df: float,
             corners: int = 4, zerophase: bool = False) -> np.ndarray:
    """Butterworth band-pass along the last axis, as ObsPy's ``bandpass``."""
    try:
        from scipy.signal import iirfilter, sosfilt, zpk2sos
    except ImportError:
        raise ImportError(
            "this model band-passes its input, which needs scipy on arrays: pip install scipy"
        ) from None
    fe = 0.5 * df
    low, high = freqmin / fe, freqmax / fe
    if high - 1.0 > -1e-6:  # ObsPy falls back to a high-pass above Nyquist
        z, p, k = iirfilter(corners, low, btype="highpass", ftype="butter", output="zpk")
    else:
        z, p, k = iirfilter(corners, [low, high], btype="band", ftype="butter", output="zpk")
    sos = zpk2sos(z, p, k)
    if zerophase:
        first = sosfilt(sos, data, axis=-1)
        return sosfilt(sos, first[..., ::-1], axis=-1)[..., ::-1]
    return sosfilt(sos, data, axis=-1)


def apply_stream_filter(data: np.ndarray, stream_filter: dict | None, df: float) -> np.ndarray:
    """Apply a model's ``stream_filter`` metadata to (components, samples) data."""
    if not stream_filter:
        return data
    options = dict(stream_filter)
    kind = options.pop("type")
    if kind != "bandpass":
        raise ValueError(f"stream filter '{kind}' is not supported on arrays (only bandpass)")
    return bandpass(data, df=df, **options)
