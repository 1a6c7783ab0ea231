"""The streaming engine's window predictor for a torch model picker (the student on torch,
PhaseNet, EQTransformer): a batch of windows through the model's own
``annotate_batch_pre`` / ``forward`` / ``annotate_batch_post``, as SeisBench's ``annotate``
does. Lives with the pickers so that :mod:`xiaonet.stream` needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xiaonet.edge.windowing import overlap_samples
from xiaonet.models.annotate_settings import annotate_setting, default_threshold, min_record_seconds


@dataclass
class TorchWindowPredictor:
    """Any SeisBench array ``WaveformModel`` (the student, PhaseNet, EQTransformer).

    Uses the model's own ``annotate_batch_pre`` / ``forward`` / ``annotate_batch_post``, as
    ``annotate`` does, so normalisation and blinding are the model's.
    """

    model: object
    name: str
    labels: tuple[str, ...]
    component_order: str
    sampling_rate: float
    in_samples: int
    overlap: int
    stacking: str
    dynamic_length: bool
    min_record_s: float
    thresholds: dict[str, float]
    argdict: dict = field(default_factory=dict)
    #: Where offline windows start (``record`` or ``absolute``, :mod:`xiaonet.edge.windowing`).
    window_grid: str = "record"
    #: The model's whole-stream filter (EQTransformer: zero-phase 1-45 Hz band-pass). A
    #: stream cannot be filtered zero-phase as it arrives, so it is applied to each window
    #: instead; picks then differ slightly from offline ones (see docs/streaming.md).
    window_filter: tuple | None = None

    def predict(self, windows: np.ndarray) -> np.ndarray:
        import torch

        if self.window_filter is not None:
            windows = _filter_windows(windows, self.window_filter, self.sampling_rate)
        batch = torch.as_tensor(np.ascontiguousarray(windows, dtype=np.float32))
        with torch.no_grad():
            pre = self.model.annotate_batch_pre(batch, argdict=self.argdict)
            piggyback = None
            if isinstance(pre, tuple):
                pre, piggyback = pre
            out = self.model(pre)
            out = self.model.annotate_batch_post(out, piggyback=piggyback, argdict=self.argdict)
        if isinstance(out, (tuple, list)):
            out = torch.stack(list(out), dim=-1)
        return out.numpy().transpose(0, 2, 1)  # (batch, samples, labels) -> (batch, labels, samples)


def _filter_windows(windows: np.ndarray, window_filter: tuple, rate: float) -> np.ndarray:
    """Apply an ObsPy filter (``filter_args``, ``filter_kwargs``) along the sample axis."""
    import obspy.signal.filter as filters

    args, kwargs = window_filter
    kind, *rest = args
    kwargs = dict(kwargs)
    data = np.asarray(windows, dtype=np.float64)
    if kind == "bandpass":
        return filters.bandpass(data, kwargs.pop("freqmin"), kwargs.pop("freqmax"), rate, axis=-1, **kwargs)
    if kind == "highpass":
        return filters.highpass(data, kwargs.pop("freq"), rate, axis=-1, **kwargs)
    if kind == "lowpass":
        return filters.lowpass(data, kwargs.pop("freq"), rate, axis=-1, **kwargs)
    raise ValueError(f"stream filter '{kind}' is not supported in streaming")


def predictor_from_model_picker(picker) -> TorchWindowPredictor:
    """The window predictor behind a :class:`xiaonet.picking.pickers.ModelPicker`.

    Overlap, stacking and thresholds are resolved as the picker's offline ``classify``
    resolves them (picker thresholds, then the model's ``default_args``, then the model
    class defaults).
    """
    model = picker.model
    if getattr(model, "output_type", None) != "array":
        raise ValueError(
            f"{picker.name}: streaming supports array models (per-sample probabilities, e.g. "
            f"the student, PhaseNet, EQTransformer); this model's output type is "
            f"'{getattr(model, 'output_type', None)}'"
        )
    argdict = dict(model.default_args)
    argdict.update({k: v for k, v in picker.annotate_args.items() if k != "batch_size"})
    overlap = overlap_samples(annotate_setting(model, "overlap", argdict), model.in_samples)
    stacking = str(annotate_setting(model, "stacking", argdict)).lower()
    thresholds = {phase: float(picker.thresholds.get(phase, default_threshold(model, phase, argdict)))
                  for phase in ("P", "S")}
    dynamic = bool(getattr(model, "fully_convolutional", False))
    window_filter = None
    if getattr(model, "filter_args", None):
        if isinstance(model.filter_args, dict):
            raise ValueError(f"{picker.name}: per-channel stream filters are not supported in streaming")
        window_filter = (tuple(model.filter_args), dict(model.filter_kwargs or {}))
    min_record_s = min_record_seconds(model)
    return TorchWindowPredictor(
        model=model.eval(),
        name=picker.name,
        labels=tuple(model.labels),
        component_order=model.component_order,
        sampling_rate=float(model.sampling_rate),
        in_samples=int(model.in_samples),
        overlap=overlap,
        stacking=stacking,
        dynamic_length=dynamic,
        min_record_s=min_record_s,
        thresholds=thresholds,
        argdict=argdict,
        window_grid=str(getattr(model, "window_grid", "record")),
        window_filter=window_filter,
    )
