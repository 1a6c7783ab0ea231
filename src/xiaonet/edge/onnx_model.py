"""An exported XiaoNet (or teacher) ONNX file and the metadata it carries, on ONNX Runtime.

Everything the runtime needs to turn raw counts into probabilities is in the file's
``metadata_props`` (written by :func:`xiaonet.export.onnx_files.export_onnx`): sampling rate, component
order, output labels, window length, overlap and stacking (avg / max), whether the time axis is dynamic, trigger
thresholds, window blinding and the stream filter of the teacher, if any. Normalisation is
part of the graph, so windows go in as raw samples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

METADATA_VERSION = "1"


class EdgeModelError(ValueError):
    """An ONNX file that cannot be used by the edge runtime; the message names the file."""


@dataclass(frozen=True)
class EdgeModelMetadata:
    """What the runtime needs to know about an exported model."""

    name: str
    sampling_rate: float
    component_order: str
    labels: tuple[str, ...]
    in_samples: int
    overlap: float
    dynamic_length: bool
    stacking: str = "avg"
    thresholds: dict[str, float] = field(default_factory=dict)
    blinding: tuple[int, int] = (0, 0)
    stream_filter: dict | None = None
    min_record_s: float = 1.0
    normalisation: str = ""
    precision: str = "fp32"
    #: Where windows start (:data:`xiaonet.edge.windowing.WINDOW_GRIDS`); files written before
    #: this key existed used SeisBench's ``record`` grid.
    window_grid: str = "record"
    #: An early-warning student's streaming settings (lookahead_s, hop_s, confirm), None for
    #: an offline model: such a model is only run by the streaming engine in that mode.
    early_warning: dict | None = None

    def to_props(self) -> dict[str, str]:
        """String key/value pairs for ONNX ``metadata_props``."""
        return {
            "xiaonet.metadata_version": METADATA_VERSION,
            "xiaonet.name": self.name,
            "xiaonet.sampling_rate": repr(float(self.sampling_rate)),
            "xiaonet.component_order": self.component_order,
            "xiaonet.labels": json.dumps(list(self.labels)),
            "xiaonet.in_samples": str(int(self.in_samples)),
            "xiaonet.overlap": repr(self.overlap),
            "xiaonet.dynamic_length": json.dumps(bool(self.dynamic_length)),
            "xiaonet.stacking": self.stacking,
            "xiaonet.thresholds": json.dumps(self.thresholds),
            "xiaonet.blinding": json.dumps(list(self.blinding)),
            "xiaonet.stream_filter": json.dumps(self.stream_filter),
            "xiaonet.min_record_s": repr(float(self.min_record_s)),
            "xiaonet.normalisation": self.normalisation,
            "xiaonet.precision": self.precision,
            "xiaonet.window_grid": self.window_grid,
            "xiaonet.early_warning": json.dumps(self.early_warning),
        }

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "<model>") -> "EdgeModelMetadata":
        missing = [
            key
            for key in ("sampling_rate", "component_order", "labels", "in_samples", "overlap")
            if f"xiaonet.{key}" not in props
        ]
        if missing:
            raise EdgeModelError(
                f"{source}: not an ONNX file written by `xiaonet export` (metadata "
                f"{', '.join('xiaonet.' + k for k in missing)} missing). Export the model with "
                "`xiaonet export MODEL --format onnx --out FILE`."
            )
        version = props.get("xiaonet.metadata_version", "?")
        if version != METADATA_VERSION:
            raise EdgeModelError(
                f"{source}: metadata version {version}; this runtime reads version "
                f"{METADATA_VERSION}. Re-export the model with this xiaonet version."
            )
        return cls(
            name=props.get("xiaonet.name", Path(source).stem),
            sampling_rate=float(props["xiaonet.sampling_rate"]),
            component_order=props["xiaonet.component_order"],
            labels=tuple(json.loads(props["xiaonet.labels"])),
            in_samples=int(props["xiaonet.in_samples"]),
            overlap=float(props["xiaonet.overlap"]),
            dynamic_length=bool(json.loads(props.get("xiaonet.dynamic_length", "false"))),
            stacking=props.get("xiaonet.stacking", "avg"),
            thresholds={k: float(v) for k, v in json.loads(props.get("xiaonet.thresholds", "{}")).items()},
            blinding=tuple(json.loads(props.get("xiaonet.blinding", "[0, 0]"))),
            stream_filter=json.loads(props.get("xiaonet.stream_filter", "null")),
            min_record_s=float(props.get("xiaonet.min_record_s", "1.0")),
            normalisation=props.get("xiaonet.normalisation", ""),
            precision=props.get("xiaonet.precision", "fp32"),
            window_grid=props.get("xiaonet.window_grid", "record"),
            early_warning=json.loads(props.get("xiaonet.early_warning", "null")),
        )


def session_options(threads: int = 1):
    """ONNX Runtime options: ``threads`` intra-op threads, one inter-op thread, no spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Busy-waiting threads would count as CPU time the model did not use.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


class EdgeModel:
    """An exported model on ONNX Runtime: raw windows in, per-sample probabilities out.

    :param path: ONNX file written by ``xiaonet export``.
    :param threads: ONNX Runtime intra-op threads (1 = one core).
    """

    def __init__(self, path: str | Path, threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError(
                "xiaonet.edge needs onnxruntime: pip install onnxruntime (or xiaonet[edge])"
            ) from None
        self.path = Path(path)
        if not self.path.is_file():
            raise EdgeModelError(f"{self.path}: no such ONNX file")
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=session_options(threads),
                providers=["CPUExecutionProvider"],
            )
        except Exception as error:  # ORT raises its own exception types
            raise EdgeModelError(
                f"{self.path}: ONNX Runtime cannot load it ({type(error).__name__}: {error})"
            ) from None
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata = EdgeModelMetadata.from_props(props, source=str(self.path))
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def __repr__(self) -> str:
        return f"EdgeModel({self.path.name}, {self.metadata.name}, {self.metadata.precision})"

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """(batch, components, samples) raw windows -> (batch, labels, samples) probabilities."""
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        if windows.ndim != 3 or windows.shape[1] != len(self.metadata.component_order):
            raise ValueError(
                f"expected windows shaped (batch, {len(self.metadata.component_order)}, samples) "
                f"in component order {self.metadata.component_order}, got {windows.shape}"
            )
        return self.session.run([self.output_name], {self.input_name: windows})[0]
