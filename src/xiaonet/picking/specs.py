"""The picker-spec grammar: ``NAME[:WEIGHTS][@window=SAMPLES]`` -> a loaded picker (built by the one
factory, :func:`xiaonet.picking.loading.load_picker`).

>>> parse_picker_spec("xiaonet-s@window=1001").window_len
1001
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class PickerSpec:
    """A picker to evaluate: ``spec`` as :func:`xiaonet.picking.loading.load_picker` reads it.

    ``"xiaonet"`` means the default student preset. ``window_len`` (samples) changes a
    student's prediction window (fully convolutional, so any length works); written
    ``xiaonet-s@window=1001`` on the command line.
    """

    spec: str
    label: str | None = None
    window_len: int | None = None
    thresholds: dict[str, float] | None = None

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        base = Path(self.spec).name if "/" in self.spec else self.spec  # weights path: its stem
        return base if self.window_len is None else f"{base}@window={self.window_len}"


def parse_picker_spec(text: str) -> PickerSpec:
    """``NAME[:WEIGHTS][@window=SAMPLES]`` into a :class:`PickerSpec`."""
    spec, _, options = text.strip().partition("@")
    window_len = None
    if options:
        key, sep, value = options.partition("=")
        if key != "window" or not sep or not value.isdigit():
            raise ValueError(
                f"Picker option '@{options}' in '{text}' is not understood; the only option is "
                "@window=SAMPLES (a student's prediction window, e.g. xiaonet-s@window=1001)"
            )
        window_len = int(value)
    return PickerSpec(spec, window_len=window_len)


def set_window(picker, window_len: int, spec_text: str = "") -> None:
    """Run a fully convolutional student with another prediction window (``@window=``), on
    any runtime (torch model, ONNX or C file)."""
    import dataclasses

    model = getattr(picker, "model", None)
    meta = getattr(model, "metadata", None)
    if meta is not None and meta.dynamic_length:  # an exported student
        model.metadata = dataclasses.replace(meta, in_samples=int(window_len))
        return
    if meta is not None or not getattr(model, "fully_convolutional", False):
        raise ValueError(
            f"@window= only applies to XiaoNet students (fully convolutional); "
            f"'{spec_text or getattr(picker, 'name', picker)}' is not one"
        )
    model.in_samples = window_len
    model.pred_sample = (0, window_len)
    model.window_len = window_len


def resolve_name(name: str) -> str:
    """``xiaonet`` means the default student; a weights path must exist."""
    from xiaonet.models.presets import DEFAULT_PRESET, weights_file

    name = DEFAULT_PRESET if name.lower() == "xiaonet" else name
    if "/" in name and not Path(name).exists() and not weights_file(name, ".json").exists():
        raise FileNotFoundError(f"no XiaoNet weights at {name} (expected {name}.json + {name}.pt)")
    return name


def picker_from_text(text: str, weights: str = "original", thresholds: dict[str, float] | None = None,
                     stalta_options: dict | None = None, runtime: str | None = None, threads: int = 1):
    """``NAME[:WEIGHTS][@window=SAMPLES]`` -> a picker, through the one factory
    (:func:`xiaonet.picking.loading.load_picker`); raises ValueError / FileNotFoundError /
    RuntimeError."""
    from xiaonet.picking.loading import load_picker

    spec = parse_picker_spec(text)
    picker = load_picker(resolve_name(spec.spec), weights=weights, thresholds=thresholds,
                         stalta_options=stalta_options, runtime=runtime, threads=threads)
    if spec.window_len is not None:
        set_window(picker, spec.window_len, spec.spec)
    return picker


def picker_from_options(picker: str | None = None, weights: str = "original", threshold: list[str] | tuple = (),
                        stalta: list[str] | tuple = (), runtime: str | None = None, threads: int = 1):
    """The picker of the command-line options every picking command shares (``--picker``,
    ``--weights``, ``--threshold PHASE=VALUE``, ``--stalta KEY=VALUE``, ``--runtime``,
    ``--threads``); no ``--picker``: the shipped default student (STA/LTA without one)."""
    from xiaonet.edge.picks import parse_thresholds
    from xiaonet.picking.loading import default_picker_name
    from xiaonet.picking.stalta import parse_stalta_options

    text = picker or default_picker_name()
    thresholds = parse_thresholds(list(threshold))
    if text.lower() == "stalta" and thresholds:
        raise ValueError("--threshold does not apply to STA/LTA (it has no probabilities); "
                         "use --stalta trigger_on=VALUE")
    return picker_from_text(text, weights=weights, thresholds=thresholds or None,
                            stalta_options=parse_stalta_options(list(stalta)), runtime=runtime,
                            threads=max(1, int(threads or 1)))


def build_picker(spec: PickerSpec, runtime: str | None = None):
    """The picker of a parsed spec, named as the spec names it, for evaluation: a model runs
    on torch unless ``runtime`` says otherwise (evaluation reads its size and cost from the
    torch network; the picks are those of the fast path, to 1e-4)."""
    if runtime is None and spec.spec.lower() != "stalta" and not spec.spec.endswith(".onnx"):
        runtime = "torch"
    text = spec.spec if spec.window_len is None else f"{spec.spec}@window={spec.window_len}"
    picker = picker_from_text(text, thresholds=spec.thresholds, runtime=runtime)
    picker.name = spec.name
    return picker
