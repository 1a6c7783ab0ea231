"""Export to ONNX for the edge runtime: fp32 with a dynamic time axis, and static int8.

* :func:`export_onnx` writes a model (the student, or a SeisBench teacher with its
  normalisation folded in) with everything :mod:`xiaonet.edge` needs in ``metadata_props``.
* :func:`max_abs_difference` runs ONNX Runtime and torch on the same windows.
* :func:`quantize_int8` quantises the convolutions to int8 (QDQ, per channel), calibrated
  on real windows cut from continuous miniSEED by :func:`calibration_windows`.

Scoring the exported files' picks is evaluation's (:mod:`xiaonet.evaluate.exported_models`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Iterable

import numpy as np

from xiaonet.edge.onnx_model import EdgeModelMetadata
from xiaonet.models.annotate_settings import annotate_setting, default_threshold, min_record_seconds

logger = logging.getLogger(__name__)

STUDENT_NORMALISATION = (
    "in graph: constant channels to zero, demean, /peak, /(std + 1e-3 max channel std) per window; feed raw samples"
)
CAUSAL_STUDENT_NORMALISATION = (
    "in graph: constant channels to zero, /peak, running demean and /(running rms + 1e-3 max channel rms) "
    "up to each sample; feed raw samples"
)
TEACHER_NORMALISATION = (
    "in graph: SeisBench annotate_batch_pre (demean, /(std + 1e-10) per channel and "
    "window); feed raw samples"
)


class ExportError(RuntimeError):
    """Export or quantisation failed; the message says which step and why."""


def _fully_convolutional(model) -> bool:
    return bool(getattr(model, "fully_convolutional", False))


def _normalises_in_forward(model) -> bool:
    return bool(getattr(model, "normalises_in_forward", False))


def _threshold_defaults(model) -> dict[str, float]:
    return {phase: default_threshold(model, phase) for phase in ("P", "S")}


def model_metadata(model, name: str, thresholds: dict[str, float] | None = None,
                   precision: str = "fp32") -> EdgeModelMetadata:
    """The runtime metadata of a SeisBench ``WaveformModel`` (student or teacher)."""
    overlap = annotate_setting(model, "overlap")
    stacking = str(annotate_setting(model, "stacking")).lower()
    blinding = annotate_setting(model, "blinding", default=(0, 0))
    stream_filter = None
    if model.filter_args is not None or model.filter_kwargs is not None:
        if isinstance(model.filter_args, dict):
            raise ExportError(f"{name}: per-channel stream filters are not supported by the edge runtime")
        args = list(model.filter_args or ())
        stream_filter = {"type": args[0], **dict(model.filter_kwargs or {})}
    labels = model.labels if isinstance(model.labels, (list, tuple)) else list(model.labels)
    return EdgeModelMetadata(
        name=name,
        sampling_rate=float(model.sampling_rate),
        component_order=model.component_order,
        labels=tuple(labels),
        in_samples=int(model.in_samples),
        overlap=float(overlap),
        dynamic_length=_fully_convolutional(model),
        stacking=stacking,
        thresholds={**_threshold_defaults(model), **(thresholds or {})},
        blinding=tuple(int(b) for b in blinding),
        stream_filter=stream_filter,
        min_record_s=min_record_seconds(model),
        normalisation=(TEACHER_NORMALISATION if not _normalises_in_forward(model)
                       else CAUSAL_STUDENT_NORMALISATION if getattr(model, "causal", False)
                       else STUDENT_NORMALISATION),
        precision=precision,
        window_grid=str(getattr(model, "window_grid", "record")),
        early_warning=getattr(model, "early_warning", None),
    )


#: Models whose probabilities are a softmax over the class axis of ``forward(x, logits=True)``.
SOFTMAX_MODELS = ("XiaoNet", "PhaseNet")


def export_graph(model):
    """The torch module that is exported: raw windows in, (batch, labels, samples) out.

    Teachers get their SeisBench per-window normalisation (``annotate_batch_pre``) in front.
    For softmax models the softmax over the class axis is written out (max, exp, sum,
    divide): ONNX Runtime's ``Softmax`` on a non-last axis transposes the tensor and took
    ~40% of the student's graph time; the explicit form gives the same probabilities
    (within 1e-7) several times faster. Teachers get the same treatment, so ONNX rows of
    the benchmark compare like with like.
    """
    import torch

    class ProbabilityGraph(torch.nn.Module):
        def __init__(self, wrapped):
            super().__init__()
            self.wrapped = wrapped
            self.normalise = not _normalises_in_forward(wrapped)
            self.softmax = type(wrapped).__name__ in SOFTMAX_MODELS

        def forward(self, x):
            if self.normalise:
                x = self.wrapped.annotate_batch_pre(x, {})
            if self.softmax:
                z = self.wrapped(x, logits=True)
                e = torch.exp(z - z.amax(dim=1, keepdim=True))
                return e / e.sum(dim=1, keepdim=True)
            y = self.wrapped(x)
            if isinstance(y, (tuple, list)):
                y = torch.stack(list(y), dim=1)
            return y

    return ProbabilityGraph(model.eval()).eval()


def reference_probabilities(model, windows):
    """What the torch path (SeisBench ``annotate``) computes for raw windows: (batch, labels, n)."""
    import torch

    with torch.no_grad():
        x = torch.as_tensor(windows, dtype=torch.float32)
        y = model.eval()(model.annotate_batch_pre(x, {}))
        if isinstance(y, (tuple, list)):
            y = torch.stack(list(y), dim=1)
    return y.numpy()


def write_metadata(path: str | Path, metadata: EdgeModelMetadata) -> None:
    """Replace the ``xiaonet.*`` metadata_props of an ONNX file."""
    import onnx

    onnx_model = onnx.load(str(path))
    kept = [p for p in onnx_model.metadata_props if not p.key.startswith("xiaonet.")]
    del onnx_model.metadata_props[:]
    onnx_model.metadata_props.extend(kept)
    for key, value in metadata.to_props().items():
        onnx_model.metadata_props.add(key=key, value=value)
    onnx_model.producer_name = "xiaonet"
    onnx.save(onnx_model, str(path))


def compact_names(path: str | Path) -> None:
    """Shorten the tensor and node names of an ONNX file (saves ~half of a student's file).

    The exporter names tensors after module paths (``/down.0/Conv_output_0_QuantizeLinear``);
    for a 10k-parameter model those strings weigh more than the int8 weights. Graph inputs
    and outputs keep their names; shapes recorded in ``value_info`` are dropped (ONNX Runtime
    infers them again).
    """
    import onnx

    onnx_model = onnx.load(str(path))
    graph = onnx_model.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output} | {""}
    renamed: dict[str, str] = {}

    def short(name: str, prefix: str) -> str:
        if name in keep:
            return name
        if name not in renamed:
            renamed[name] = f"{prefix}{len(renamed):x}"
        return renamed[name]

    for initializer in graph.initializer:
        initializer.name = short(initializer.name, "w")
        initializer.ClearField("doc_string")
    for node in graph.node:
        node.ClearField("name")  # optional in ONNX; proto2 would store an empty string
        node.ClearField("doc_string")
        node.input[:] = [short(name, "t") for name in node.input]
        node.output[:] = [short(name, "t") for name in node.output]
    del graph.value_info[:]
    graph.ClearField("doc_string")
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, str(path))


def export_onnx(model, path: str | Path, name: str, thresholds: dict[str, float] | None = None,
                opset: int = 17) -> Path:
    """Write ``model`` as ONNX with its runtime metadata; returns the path.

    The student is exported with dynamic batch and time axes (it is fully convolutional);
    teachers with a dynamic batch axis and their fixed window length.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = export_graph(model)
    dynamic = {0: "batch", 2: "samples"} if _fully_convolutional(model) else {0: "batch"}
    example = torch.zeros(1, len(model.component_order), model.in_samples)
    example[:, :, ::7] = 1.0  # not constant, so no normalisation branch is degenerate
    import warnings

    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            # The TorchScript-based exporter: torch.export cannot express the student's
            # pad-to-a-multiple-of-64 on a symbolic length.
            torch.onnx.export(
                graph, (example,), str(path), dynamo=False, opset_version=opset,
                input_names=["waveforms"], output_names=["probabilities"],
                dynamic_axes={"waveforms": dynamic, "probabilities": dynamic},
            )
    except Exception as error:
        raise ExportError(f"ONNX export of {name} failed: {type(error).__name__}: {error}") from error
    compact_names(path)
    write_metadata(path, model_metadata(model, name, thresholds))
    return path


def max_abs_difference(model, path: str | Path, windows: np.ndarray) -> float:
    """Largest |ONNX Runtime - torch| over the probabilities of ``windows`` (batch, 3, n)."""
    from xiaonet.edge.onnx_model import EdgeModel

    edge = EdgeModel(path)
    return float(np.abs(edge.predict(windows) - reference_probabilities(model, windows)).max())


def calibration_windows(paths: Iterable[str | Path], n_windows: int, in_samples: int,
                        component_order: str, sampling_rate: float,
                        rng: np.random.Generator) -> np.ndarray:
    """``n_windows`` real windows (n, components, in_samples), cut at random offsets.

    ``paths`` are waveform files, folders or globs (anything :func:`xiaonet.data.waveforms.expand_inputs`
    takes); every contiguous block of at least one window contributes, in equal shares.
    Unreadable files are skipped with a warning naming them.
    """
    from xiaonet.data.waveforms import file_blocks, waveform_files
    from xiaonet.edge.windowing import stream_to_grid_array

    blocks = []
    for block in file_blocks(waveform_files(paths), lambda message: None, sampling_rate,
                             unreadable=lambda message: logger.warning("calibration: %s", message)):
        converted = stream_to_grid_array(block.stream, component_order, sampling_rate)
        if converted is not None and converted[1].shape[-1] >= in_samples:
            blocks.append(converted[1])
    if not blocks:
        raise ExportError(
            f"no calibration data: no block of >= {in_samples} samples in {list(map(str, paths))} "
            "(give miniSEED files or folders with --calibration)"
        )
    windows = np.empty((n_windows, len(component_order), in_samples), dtype=np.float32)
    choice = rng.integers(0, len(blocks), size=n_windows)
    for i, b in enumerate(choice):
        data = blocks[b]
        offset = int(rng.integers(0, data.shape[-1] - in_samples + 1))
        windows[i] = data[:, offset : offset + in_samples]
    return windows


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, windows: np.ndarray,
                  per_channel: bool = False) -> Path:
    """Static int8 quantisation of the convolutions (QDQ format).

    Activations are calibrated (min/max) on ``windows`` (n, components, samples) of real
    data. Only Conv / ConvTranspose are quantised: the normalisation and softmax stay fp32,
    which keeps the model scale-invariant. Weights get one scale per tensor by default
    (``per_channel=True``: one per output channel, ~2 KB more for the default student).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from xiaonet.edge.onnx_model import EdgeModel

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    metadata = EdgeModel(fp32_path).metadata

    class WindowReader(CalibrationDataReader):
        def __init__(self, data: np.ndarray, batch: int = 16):
            self.batches = iter([data[i : i + batch] for i in range(0, len(data), batch)])

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"waveforms": np.ascontiguousarray(batch, np.float32)}

    prepared = int8_path.with_suffix(".prep.onnx")
    try:
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(int8_path), WindowReader(windows),
            quant_format=QuantFormat.QDQ, per_channel=per_channel,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv", "ConvTranspose"],
            calibrate_method=CalibrationMethod.MinMax,
        )
    except Exception as error:
        raise ExportError(f"int8 quantisation of {fp32_path} failed: {type(error).__name__}: {error}") from error
    finally:
        prepared.unlink(missing_ok=True)
    compact_names(int8_path)
    write_metadata(int8_path, dataclasses.replace(metadata, precision="int8"))
    onnx.checker.check_model(str(int8_path))
    return int8_path
