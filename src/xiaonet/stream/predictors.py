"""What the streaming engine needs from a model: a batch of windows in, probabilities out
(:class:`WindowPredictor`). ONNX and C models come through :class:`ArrayWindowPredictor`;
a torch model picker brings its own (:meth:`xiaonet.picking.pickers.ModelPicker.window_predictor`),
so the engine never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from xiaonet.edge.windowing import overlap_samples


# --- What the engine needs from a model --------------------------------------------------


class WindowPredictor(Protocol):
    """A model as the streaming engine sees it: raw windows in, probabilities out.

    ``predict`` maps float32 (batch, components, samples) raw windows, components in
    ``component_order``, to (batch, labels, samples) probabilities, NaN where a window's
    edges are blinded. ``dynamic_length`` models also take records shorter than one window.
    """

    name: str
    labels: str | tuple[str, ...]
    component_order: str
    sampling_rate: float
    in_samples: int
    overlap: int
    stacking: str
    dynamic_length: bool
    min_record_s: float
    thresholds: dict[str, float]

    def predict(self, windows: np.ndarray) -> np.ndarray: ...


@dataclass
class ArrayWindowPredictor:
    """A numpy callable (e.g. the ONNX edge runtime) with the metadata the engine needs."""

    predict_fn: Callable[[np.ndarray], np.ndarray]
    name: str
    labels: tuple[str, ...]
    component_order: str
    sampling_rate: float
    in_samples: int
    overlap: int
    stacking: str = "avg"
    dynamic_length: bool = False
    min_record_s: float = 1.0
    thresholds: dict[str, float] = field(default_factory=dict)
    blinding: tuple[int, int] = (0, 0)
    window_grid: str = "record"

    def predict(self, windows: np.ndarray) -> np.ndarray:
        out = np.array(self.predict_fn(np.ascontiguousarray(windows, dtype=np.float32)),
                       dtype=np.float32)
        before, after = self.blinding
        if before > 0:
            out[..., :before] = np.nan
        if after > 0:
            out[..., -after:] = np.nan
        return out


def predictor_from_edge_model(edge_model) -> ArrayWindowPredictor:
    """Wrap an object with ``predict(windows)`` and ``metadata`` (the ONNX edge runtime)."""
    meta = edge_model.metadata
    if getattr(meta, "stream_filter", None):
        raise ValueError(
            f"{meta.name}: this model filters whole streams before windowing "
            f"({meta.stream_filter}); streaming it is not supported"
        )
    return ArrayWindowPredictor(
        predict_fn=edge_model.predict,
        name=meta.name,
        labels=tuple(meta.labels),
        component_order=meta.component_order,
        sampling_rate=float(meta.sampling_rate),
        in_samples=int(meta.in_samples),
        overlap=overlap_samples(meta.overlap, int(meta.in_samples)),
        stacking=str(getattr(meta, "stacking", "avg")).lower(),
        dynamic_length=bool(meta.dynamic_length),
        min_record_s=float(meta.min_record_s),
        thresholds={"P": 0.3, "S": 0.3, **dict(meta.thresholds)},
        blinding=tuple(meta.blinding),
        window_grid=str(getattr(meta, "window_grid", "record")),
    )
