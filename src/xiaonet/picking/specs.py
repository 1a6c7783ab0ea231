"""The picker-spec grammar: ``NAME[:WEIGHTS][@window=SAMPLES]`` -> a loaded picker.

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
    """Run a fully convolutional student with another prediction window (``@window=``)."""
    from xiaonet.picking.pickers import ModelPicker

    model = getattr(picker, "model", None)
    if not isinstance(picker, ModelPicker) or not getattr(model, "fully_convolutional", False):
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


def build_picker(spec: PickerSpec):
    """Load the picker of a spec (raises ValueError / FileNotFoundError / RuntimeError)."""
    from xiaonet.picking.loading import load_picker

    picker = load_picker(resolve_name(spec.spec), thresholds=spec.thresholds)
    if spec.window_len is not None:
        set_window(picker, spec.window_len, spec.spec)
    picker.name = spec.name
    return picker
