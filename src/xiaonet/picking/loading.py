"""The one picker factory: a spec, weights and a runtime -> a picker (:func:`load_picker`).

Every command that picks (``pick``, archive runs, ``stream``, ``detect``) and the Python API
build their picker here, so which picker and which runtime is decided in one place:

* a student (a preset with shipped weights, or a weights path ``NAME.json`` + ``NAME.pt``)
  runs through ONNX Runtime by default (numpy only, no torch: the ONNX file is built once
  from the weights and cached, :mod:`xiaonet.picking.student_onnx`), through the generated C
  library with ``runtime="c"``, and through torch / SeisBench with ``runtime="torch"``;
* an ONNX file from ``xiaonet export`` runs through ONNX Runtime (or ``runtime="c"``, which
  also takes a ``xiaonet export --format c`` folder);
* the SeisBench teachers run through torch; ``stalta`` needs no model runtime at all.

It lives apart from the picker classes so that those never import each other: STA/LTA
subclasses :class:`xiaonet.picking.pickers.Picker`, and this module knows them all. Nothing
heavy is imported before the picker asks for it.
"""

from __future__ import annotations

import json
from pathlib import Path

TEACHER_NAMES = ("phasenet", "eqtransformer", "gpd")
RUNTIMES = ("onnx", "c", "torch")


def available_picker_names() -> list[str]:
    from xiaonet.models.presets import PRESETS

    return sorted(PRESETS) + list(TEACHER_NAMES) + ["stalta"]


def default_picker_name() -> str:
    """The shipped default student, or ``stalta`` when no trained student is shipped."""
    from xiaonet.models.presets import DEFAULT_PRESET, shipped_weights

    return DEFAULT_PRESET if shipped_weights(DEFAULT_PRESET) is not None else "stalta"


def onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def load_picker(
    spec: str,
    weights: str = "original",
    thresholds: dict[str, float] | None = None,
    stalta_options: dict | None = None,
    runtime: str | None = None,
    threads: int = 1,
):
    """Build a picker from its name.

    ``spec``: a student preset or weights path (``xiaonet``: the default student), an ONNX
    file, ``stalta``, or a teacher (``phasenet``, ``eqtransformer``, ``gpd``; its ``weights``
    load through SeisBench's cache, ``SEISBENCH_CACHE_ROOT``; also ``phasenet:stead``).
    ``runtime``: ``onnx``, ``c`` or ``torch``; None is the fast one the picker has (ONNX
    Runtime for students and ONNX files, torch for teachers). ``threads``: of the runtime.
    The whole spec grammar (``@window=``) is :func:`xiaonet.picking.specs.picker_from_text`.
    Raises ValueError / FileNotFoundError / RuntimeError with a message a person can act on.
    """
    from xiaonet.models.presets import DEFAULT_PRESET

    if runtime is not None and runtime not in RUNTIMES:
        raise ValueError(f"Unknown runtime '{runtime}'. Known: {', '.join(RUNTIMES)}.")
    name, _, weights_in_spec = spec.partition(":")
    name = DEFAULT_PRESET if name.lower() == "xiaonet" else name
    return _load(name, weights_in_spec or weights, thresholds, stalta_options, runtime, max(1, int(threads)))


def _load(name, weights, thresholds, stalta_options, runtime, threads):
    from xiaonet.models.presets import PRESETS, shipped_weights, weights_file

    lowered = name.lower()
    if lowered == "stalta":
        if runtime is not None:
            raise ValueError(f"--runtime {runtime} applies to model pickers; stalta runs no model")
        from xiaonet.picking.stalta import StaLtaPicker

        return StaLtaPicker(**(stalta_options or {}))
    if stalta_options:
        raise ValueError(f"--stalta applies to --picker stalta only, not to '{name}'")
    if lowered in TEACHER_NAMES:
        if runtime not in (None, "torch"):
            raise ValueError(f"{lowered} runs with torch (SeisBench); for --runtime {runtime} export it "
                             f"first (`xiaonet export {lowered} --out {lowered}.onnx`) and pick with that file")
        from xiaonet.models.model import set_torch_threads
        from xiaonet.models.teachers import load_teacher
        from xiaonet.picking.pickers import ModelPicker

        set_torch_threads(threads)
        return ModelPicker(load_teacher(lowered, weights), name=f"{lowered}:{weights}",
                           thresholds=thresholds or {"P": 0.3, "S": 0.3})
    if name.endswith(".onnx") or (runtime == "c" and Path(name).is_dir()):
        if runtime == "torch":
            raise ValueError(f"{name} is an exported model: it runs with --runtime onnx or c, not torch "
                             "(give the weights NAME.json + NAME.pt for torch)")
        if not Path(name).exists():
            raise FileNotFoundError(f"{name}: no such ONNX file (write one with `xiaonet export`)")
        return _exported_picker(name, runtime or "onnx", thresholds, threads)
    if name in PRESETS:
        prefix = shipped_weights(name)
    else:  # a weights path, with or without its .json / .pt suffix
        prefix = Path(name).with_suffix("") if Path(name).suffix in (".json", ".pt") else Path(name)
    if prefix is None or not (weights_file(prefix, ".json").is_file() and weights_file(prefix, ".pt").is_file()):
        if name not in PRESETS and not weights_file(name, ".json").exists() and not Path(name).exists():
            raise ValueError(f"Unknown picker '{name}'. Choose one of: {', '.join(available_picker_names())}, "
                             "or a path to XiaoNet weights (NAME.json + NAME.pt) or an ONNX file.")
        prefix = None  # load_student says what is missing
    label = name if name in PRESETS else Path(name).name
    if runtime is None:
        runtime = "onnx" if prefix is not None and onnxruntime_available() else "torch"
    if runtime == "torch" or prefix is None:
        from xiaonet.models.model import set_torch_threads
        from xiaonet.models.presets import load_student
        from xiaonet.picking.pickers import ModelPicker

        set_torch_threads(threads)
        return ModelPicker(load_student(name), name=label, thresholds=thresholds)
    from xiaonet.picking.student_onnx import cache_dir, student_onnx

    try:
        path = student_onnx(prefix, label)
    except OSError as error:  # an unwritable cache: the same picks, on torch
        import logging

        logging.getLogger(__name__).warning("%s: no ONNX file in %s (%s); picking with torch", label,
                                            cache_dir(), error)
        return _load(name, weights, thresholds, None, "torch", threads)
    picker = _exported_picker(path, runtime, thresholds, threads)
    picker.name = label  # the student's name, as the torch path writes it in pick tables
    if hasattr(picker, "picker"):  # an early-warning student's StreamedPicker: the engine's picker too
        picker.picker.name = label
    return picker


def _exported_picker(path, runtime: str, thresholds, threads: int):
    if runtime == "c":
        from xiaonet.edge.c_runtime import CPicker

        picker = CPicker(path, thresholds=thresholds or None)
    else:
        from xiaonet.edge.picker import EdgePicker

        picker = EdgePicker(path, thresholds=thresholds or None, threads=threads)
    from xiaonet.stream.settings import early_warning_config, early_warning_settings

    settings = early_warning_settings(picker)
    if settings is None:
        return picker
    # An early-warning student picks whole files as it streams (windows every hop_s, picks at
    # confirmation), on ONNX Runtime or C as on torch; the streaming engine takes the inner picker.
    from xiaonet.picking.pickers import StreamedPicker

    return StreamedPicker(picker, early_warning_config(settings), name=picker.name)


def make_streaming_picker(picker, config=None, note=None):
    """The streaming engine for any picker: :class:`xiaonet.stream.streaming_stalta.StreamingStaLta`
    for STA/LTA, :class:`xiaonet.stream.engine.StreamingPicker` for a model picker or a
    window predictor (``config`` a :class:`xiaonet.stream.settings.StreamingConfig`)."""
    from xiaonet.picking.pickers import StreamedPicker
    from xiaonet.picking.stalta import StaLtaPicker

    if isinstance(picker, StreamedPicker):  # an exported early-warning student: the engine runs its model
        picker = picker.picker
    if isinstance(picker, StaLtaPicker):
        from xiaonet.stream.streaming_stalta import StreamingStaLta

        return StreamingStaLta(picker, config, note)
    from xiaonet.stream.engine import StreamingPicker

    return StreamingPicker(picker, config, note)
