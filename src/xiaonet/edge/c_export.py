"""``xiaonet export MODEL --format c``: the student as plain C99 (header + source + weights).

The generator reads the **exported ONNX file** (fp32, or the static int8 QDQ file of
``xiaonet export --int8``), not the torch state dict: the ONNX file is the edge artefact that
already carries the runtime metadata (window, overlap, thresholds, component order) and, for
int8, the activation scales calibrated on real data, so the C int8 model is the ONNX int8
model, and this module stays torch-free (it needs the ``onnx`` package, not ONNX Runtime).

The network is the XiaoNet U-Net: a strided stem, ``depth`` (down, refine) pairs, ``depth``
(transposed up, merge over [skip, up]) pairs and a transposed head with kernel == stride,
ReLU after every layer but the head, normalisation and softmax around it. The generator finds
exactly these layers in the graph (in order) and refuses anything else; the runtime
(``c/xiaonet.c``) is the same for every model, the generated ``xiaonet_model.h`` /
``xiaonet_weights.c`` carry sizes, buffer plan and weights.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xiaonet.edge.onnx_model import EdgeModelError, EdgeModelMetadata
from xiaonet.edge.windowing import overlap_samples

C_DIR = Path(__file__).parent / "c"
RUNTIME_FILES = ("xiaonet.h", "xiaonet.c")
GENERATED_FILES = ("xiaonet_model.h", "xiaonet_weights.c")
METADATA_FILE = "model.json"
DEFAULT_MAX_LEAD = 512


class CExportError(ValueError):
    """The ONNX file cannot be turned into C; the message names the file and the reason."""


@dataclass
class Layer:
    op: str                      # "Conv" or "ConvTranspose"
    weight: np.ndarray           # ONNX layout; float32 or int8
    bias: np.ndarray             # float32 or int32
    kernel: int
    stride: int
    pad: int
    relu: bool = True
    quant: dict = field(default_factory=dict)   # int8: scales and zero points
    skip_lut: np.ndarray | None = None

    @property
    def transposed(self) -> bool:
        return self.op == "ConvTranspose"

    @property
    def cin(self) -> int:
        return int(self.weight.shape[0 if self.transposed else 1])

    @property
    def cout(self) -> int:
        return int(self.weight.shape[1 if self.transposed else 0])


class _Graph:
    """Producers, consumers and constants of an ONNX graph."""

    def __init__(self, model):
        from onnx import numpy_helper

        self.nodes = list(model.graph.node)
        self.constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        for node in self.nodes:
            if node.op_type == "Constant" and node.attribute:
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.producer = {out: n for n in self.nodes for out in n.output}
        self.consumers: dict[str, list] = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def only_consumer(self, tensor: str, op: str, source: str):
        found = [n for n in self.consumers.get(tensor, []) if n.op_type == op]
        if not found:
            raise CExportError(f"{source}: expected a {op} after tensor {tensor}; not a XiaoNet graph")
        return found[0]

    def dequantised(self, tensor: str) -> tuple[np.ndarray, float, int]:
        """(integer values or None, scale, zero point) of a DequantizeLinear output."""
        node = self.producer.get(tensor)
        if node is None or node.op_type != "DequantizeLinear":
            raise CExportError(f"tensor {tensor} is not dequantised; expected a QDQ int8 graph")
        scale = self.constants[node.input[1]]
        if scale.size != 1:
            raise CExportError("per-channel int8 weights are not supported by the C runtime; "
                               "export int8 without --per-channel")
        zero = self.constants[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros(1)
        return self.constants.get(node.input[0]), float(scale.reshape(-1)[0]), int(np.asarray(zero).reshape(-1)[0])

    def quantise_params(self, node) -> tuple[float, int]:
        scale = self.constants[node.input[1]]
        zero = self.constants[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros(1, np.uint8)
        if np.asarray(zero).dtype != np.uint8:
            raise CExportError("the C runtime expects uint8 activations (QuantType.QUInt8)")
        return float(np.asarray(scale).reshape(-1)[0]), int(np.asarray(zero).reshape(-1)[0])


def _attributes(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _requantise_lut(scale_in: float, zp_in: int, scale_out: float, zp_out: int) -> np.ndarray:
    q = np.arange(256, dtype=np.float32)
    real = (q - np.float32(zp_in)) * np.float32(scale_in)
    return np.clip(np.rint(real / np.float32(scale_out)) + zp_out, 0, 255).astype(np.uint8)


def read_layers(path: str | Path) -> tuple[EdgeModelMetadata, list[Layer]]:
    """The student's layers, in execution order, from an ONNX file written by ``xiaonet export``."""
    try:
        import onnx
    except ImportError:
        raise ImportError("generating C from ONNX needs the onnx package: pip install onnx") from None
    path = Path(path)
    if not path.is_file():
        raise CExportError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path))
    except Exception as error:  # protobuf errors
        raise CExportError(f"{path}: not an ONNX file ({type(error).__name__}: {error})") from None
    props = {p.key: p.value for p in model.metadata_props}
    try:
        meta = EdgeModelMetadata.from_props(props, source=str(path))
    except EdgeModelError as error:
        raise CExportError(str(error)) from None
    if not meta.dynamic_length or "constant channels to zero" not in meta.normalisation:
        raise CExportError(f"{path}: {meta.name} is not a XiaoNet student; the C runtime implements "
                           "the student's U-Net only (teachers run on ONNX Runtime)")
    if (meta.early_warning or {}).get("causal"):
        raise CExportError(f"{path}: {meta.name} is a causal early-warning student (running normalisation, "
                           "causal padding), which the C runtime does not implement; run its ONNX file")
    graph = _Graph(model)
    int8 = meta.precision == "int8"
    layers: list[Layer] = []
    for node in graph.nodes:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        attrs = _attributes(node)
        kernel = int(attrs["kernel_shape"][0])
        stride = int(attrs.get("strides", [1])[0])
        pads = [int(p) for p in attrs.get("pads", [0, 0])]
        if pads[0] != pads[1] or int(attrs.get("group", 1)) != 1 or list(attrs.get("dilations", [1])) != [1]:
            raise CExportError(f"{path}: unsupported convolution attributes {attrs}")
        if node.op_type == "ConvTranspose":
            if kernel + int(attrs.get("output_padding", [0])[0]) - 2 * pads[0] != stride:
                raise CExportError(f"{path}: transposed convolution that does not upsample by its stride: {attrs}")
        if int8:
            weight, w_scale, _ = graph.dequantised(node.input[1])
            bias, _, _ = graph.dequantised(node.input[2])
            _, in_scale, in_zp = graph.dequantised(node.input[0])
            q_out = graph.only_consumer(node.output[0], "QuantizeLinear", str(path))
            out_scale, out_zp = graph.quantise_params(q_out)
            quant = {"in_scale": in_scale, "in_zp": in_zp, "w_scale": w_scale,
                     "out_scale": out_scale, "out_zp": out_zp}
            dq_out = graph.only_consumer(q_out.output[0], "DequantizeLinear", str(path))
            after = graph.consumers.get(dq_out.output[0], [])
        else:
            weight = graph.constants[node.input[1]]
            bias = graph.constants[node.input[2]] if len(node.input) > 2 else np.zeros(1)
            quant = {}
            after = graph.consumers.get(node.output[0], [])
        relu = [n for n in after if n.op_type == "Relu"]
        layer = Layer(node.op_type, np.asarray(weight), np.asarray(bias), kernel, stride, pads[0],
                      relu=bool(relu), quant=quant)
        if int8 and relu:  # how the output is stored: the next Q (or the Concat's Q)
            nxt = graph.consumers.get(relu[0].output[0], [])
            q_next = [n for n in nxt if n.op_type == "QuantizeLinear"]
            if not q_next:
                concat = [n for n in nxt if n.op_type == "Concat"]
                if not concat:
                    raise CExportError(f"{path}: cannot find how a layer output is quantised")
                q_next = [graph.only_consumer(concat[0].output[0], "QuantizeLinear", str(path))]
            quant["store_scale"], quant["store_zp"] = graph.quantise_params(q_next[0])
        if int8:  # merge layers: the skip branch is requantised to the concatenation's scale
            producer = graph.producer.get(graph.producer[node.input[0]].input[0])  # Q before the DQ
            if producer is not None and producer.op_type == "QuantizeLinear":
                concat = graph.producer.get(producer.input[0])
                if concat is not None and concat.op_type == "Concat":
                    _, s_skip, zp_skip = graph.dequantised(concat.input[0])
                    layer.skip_lut = _requantise_lut(s_skip, zp_skip, in_scale, in_zp)
        layers.append(layer)
    _check_topology(path, layers)
    return meta, layers


def _check_topology(path: Path, layers: list[Layer]) -> None:
    n = len(layers)
    if n < 6 or (n - 2) % 4:
        raise CExportError(f"{path}: {n} convolutions; a XiaoNet U-Net has 2 + 4 x depth")
    depth = (n - 2) // 4
    ops = [layer.op for layer in layers]
    expected = ["Conv"] * (1 + 2 * depth) + ["ConvTranspose", "Conv"] * depth + ["ConvTranspose"]
    if ops != expected:
        raise CExportError(f"{path}: layer sequence {ops} is not the XiaoNet U-Net")
    head = layers[-1]
    if head.kernel != head.stride or head.pad != 0 or head.relu:
        raise CExportError(f"{path}: the head must be a transposed convolution with kernel == stride")
    if layers[0].cin != 3 or head.cout != 3:
        raise CExportError(f"{path}: expected 3 components in and 3 labels out")
    for i in range(depth):
        merge = layers[2 + 2 * depth + 2 * i]
        if merge.kernel != 2 * merge.pad + 1 or merge.stride != 1:
            raise CExportError(f"{path}: merge convolutions must keep the length")


def _c_float(value) -> str:
    """A float32 constant as C source (round-trips exactly)."""
    return f"{float(np.float32(value)):.9e}f"


def _c_array(ctype: str, name: str, values: np.ndarray) -> str:
    flat = np.asarray(values).reshape(-1)
    if ctype == "float":
        items = [_c_float(v) for v in flat.astype(np.float32)]
    else:
        items = [str(int(v)) for v in flat]
    lines = [", ".join(items[i : i + 12]) for i in range(0, len(items), 12)]
    return f"static const {ctype} {name}[{len(items)}] = {{\n    " + ",\n    ".join(lines) + "\n};\n"


def buffer_plan(layers: list[Layer], window: int) -> dict:
    """Element offsets of the activation arena for windows up to ``window`` samples."""
    depth = (len(layers) - 2) // 4
    total_stride = layers[0].stride
    for level in range(1, depth + 1):
        total_stride *= layers[2 * level - 1].stride
    padded = -(-window // total_stride) * total_stride
    lengths = [padded // layers[0].stride]
    for level in range(1, depth + 1):
        lengths.append(lengths[-1] // layers[2 * level - 1].stride)
    widths = [layers[0].cout] + [layers[2 * level].cout for level in range(1, depth + 1)]
    offset, skip = 0, []
    for level in range(depth):
        skip.append(offset)
        offset += widths[level] * lengths[level]
    plan = {"skip": skip, "bottleneck": offset}
    offset += widths[depth] * lengths[depth]
    scratch = max(widths[level] * lengths[level] for level in range(1, depth + 1))
    plan["t"], plan["m"], plan["u0"] = offset, offset + scratch, offset + 2 * scratch
    plan["arena"] = plan["u0"] + widths[0] * lengths[0]
    plan.update(depth=depth, total_stride=total_stride, padded=padded, max_width=max(widths))
    return plan


def write_c_model(onnx_path: str | Path, out_dir: str | Path, window: int | None = None,
                  max_lead: int = DEFAULT_MAX_LEAD) -> dict:
    """Write the C runtime for an exported student into ``out_dir``; returns a summary."""
    meta, layers = read_layers(onnx_path)
    window = int(window or meta.in_samples)
    if not 64 <= window <= 1_000_000:
        raise CExportError(f"window of {window} samples is out of range (64 .. 1,000,000)")
    int8 = meta.precision == "int8"
    overlap = overlap_samples(meta.overlap, window)
    min_samples = max(1, int(np.ceil(meta.min_record_s * meta.sampling_rate)))
    plan = buffer_plan(layers, window)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_FILES:
        shutil.copyfile(C_DIR / name, out / name)
    labels = "".join(meta.labels)
    thresholds = {"P": 0.3, "S": 0.3, **meta.thresholds}
    header = f"""/* Generated by `xiaonet export --format c` from {Path(onnx_path).name}: model constants. */
#ifndef XIAONET_MODEL_H
#define XIAONET_MODEL_H

#define XN_NAME "{meta.name}"
#define XN_INT8 {1 if int8 else 0}
#define XN_CHANNELS 3
#define XN_COMPONENTS "{meta.component_order}"
#define XN_LABELS 3
#define XN_LABEL_NAMES "{labels}"
#define XN_P_INDEX {labels.index("P")}
#define XN_S_INDEX {labels.index("S")}
#define XN_SAMPLING_RATE {float(meta.sampling_rate)!r}
#define XN_WINDOW {window}
#define XN_OVERLAP {overlap}
#define XN_MIN_SAMPLES {min_samples}
#define XN_P_THRESHOLD {float(thresholds["P"])!r}
#define XN_S_THRESHOLD {float(thresholds["S"])!r}
#ifndef XN_MAX_LEAD
#define XN_MAX_LEAD {int(max_lead)}
#endif
#define XN_DEPTH {plan["depth"]}
#define XN_LAYERS {len(layers)}
#define XN_TOTAL_STRIDE {plan["total_stride"]}
#define XN_STEM_KERNEL {layers[0].kernel}
#define XN_STEM_STRIDE {layers[0].stride}
#define XN_WIDTH0 {layers[0].cout}
#define XN_MAX_KERNEL {max(layer.kernel for layer in layers)}
#define XN_MAX_WIDTH {plan["max_width"]}
/* activation arena ({"uint8" if int8 else "float"} elements) for windows up to XN_WINDOW samples */
#define XN_ARENA {plan["arena"]}
#define XN_OFF_BOTTLENECK {plan["bottleneck"]}
#define XN_OFF_T {plan["t"]}
#define XN_OFF_M {plan["m"]}
#define XN_OFF_U0 {plan["u0"]}

#endif
"""
    (out / "xiaonet_model.h").write_text(header)
    parts = [f"/* Generated by `xiaonet export --format c` from {Path(onnx_path).name}: "
             f"{sum(l.weight.size + l.bias.size for l in layers)} weights, {meta.precision}. */\n",
             '#include "xiaonet.h"\n\n',
             f"const uint32_t xn_skip_offset[XN_DEPTH] = {{{', '.join(map(str, plan['skip']))}}};\n\n"]
    entries = []
    for i, layer in enumerate(layers):
        wtype, btype = ("int8_t", "int32_t") if int8 else ("float", "float")
        parts.append(_c_array(wtype, f"xn_w{i}", layer.weight))
        parts.append(_c_array(btype, f"xn_b{i}", layer.bias))
        entry = (f"{layer.cin}, {layer.cout}, {layer.kernel}, {layer.stride}, {layer.pad}, "
                 f"{int(layer.transposed)}, {int(layer.relu)}, xn_w{i}, xn_b{i}")
        if int8:
            q = layer.quant
            f32 = np.float32
            out_mult = f32(q["in_scale"]) * f32(q["w_scale"]) / f32(q["out_scale"])
            store_scale = q.get("store_scale", 1.0)
            lut = "NULL"
            if layer.skip_lut is not None:
                parts.append(_c_array("uint8_t", f"xn_lut{i}", layer.skip_lut))
                lut = f"xn_lut{i}"
            entry += (f", {_c_float(q['in_scale'])}, {_c_float(1.0 / f32(q['in_scale']))}, {q['in_zp']}, "
                      f"{_c_float(out_mult)}, {q['out_zp']}, {_c_float(q['out_scale'])}, "
                      f"{_c_float(1.0 / f32(store_scale))}, {q.get('store_zp', 0)}, {lut}")
        entries.append("    {" + entry + "}")
    parts.append("\nconst xn_layer xn_layers[XN_LAYERS] = {\n" + ",\n".join(entries) + "\n};\n")
    (out / "xiaonet_weights.c").write_text("".join(parts))
    summary = {
        "metadata": meta.to_props(), "window": window, "overlap": overlap, "max_lead": int(max_lead),
        "parameters": int(sum(l.weight.size + l.bias.size for l in layers)),
        "arena_elements": plan["arena"], "source": Path(onnx_path).name,
    }
    (out / METADATA_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    (out / "README.md").write_text(readme(meta, summary, int8))
    return summary


def readme(meta: EdgeModelMetadata, summary: dict, int8: bool) -> str:
    template = (C_DIR / "README.template.md").read_text()
    return template.format(
        name=meta.name, precision=meta.precision, window=summary["window"], overlap=summary["overlap"],
        rate=meta.sampling_rate, components=meta.component_order, parameters=summary["parameters"],
        source=summary["source"], max_lead=summary["max_lead"],
        arena_bytes=summary["arena_elements"] * (1 if int8 else 4),
        p_threshold=meta.thresholds.get("P", 0.3), s_threshold=meta.thresholds.get("S", 0.3),
    )

