"""Named student sizes and the weights shipped with the package.

A preset is a set of constructor arguments for :class:`xiaonet.models.model.XiaoNet`. When trained
weights for a preset are shipped (``xiaonet/weights/<name>.json`` + ``.pt``, written by
``XiaoNet.save``), :func:`load_student` returns the trained model; otherwise it refuses,
unless ``allow_untrained=True`` is passed (tests, training from scratch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

#: The student `xiaonet pick` runs by default: the most accurate one within the edge budget
#: (<= 40k parameters, <= 2.0 M multiply-accumulates per 30 s at 100 Hz, a tenth of PhaseNet's),
#: chosen on the validation networks with pooled intervals (docs/training.md).
DEFAULT_PRESET = "xiaonet-m"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    model_args: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        # All three: centred upsampling and a finest level as wide as the next one, the two
        # architecture changes the network-held-out recipe study kept (docs/training.md).
        Preset("xiaonet-xs", "smallest student, 2.6k parameters",
               {"base_channels": 2, "width_multipliers": [2, 2, 3, 5], "aligned_upsampling": True}),
        Preset(
            "xiaonet-s",
            "microcontroller student, 9.9k parameters (<= 10k)",
            {"base_channels": 4, "width_multipliers": [2, 2, 3, 5], "aligned_upsampling": True},
        ),
        # The default: width where it is cheap. Channels at the coarse levels cost few
        # multiply-accumulates per input sample, so the two coarsest levels are 2.4x and 4.8x
        # the finest one (xiaonet-s: 1.5x and 2.5x): 4x xiaonet-s's parameters for 2x its MACs.
        Preset("xiaonet-m", "default student, 38.1k parameters, 1.9 M MACs per 30 s",
               {"base_channels": 2, "width_multipliers": [5, 5, 12, 24], "aligned_upsampling": True}),
        # xiaonet-m fine-tuned for streaming (docs/early-warning.md): a 10 s window every 0.1 s,
        # each deciding the samples 0.2 s before its end, a record's start padded, picks out at
        # confirmation.
        Preset("xiaonet-ew", "early-warning student (xiaonet-m fine-tuned), picks 0.2 s after the onset",
               {"base_channels": 2, "width_multipliers": [5, 5, 12, 24], "aligned_upsampling": True,
                "window_len": 1001, "lookahead_s": 0.2, "hop_s": 0.1, "confirm": 0.5, "padded_start": True}),
    ]
}


def weights_file(prefix: str | Path, suffix: str) -> Path:
    """``PREFIX.json`` / ``PREFIX.pt`` of a weights prefix, also when the prefix itself has a
    dot (``runs/ew-L0.2``: ``with_suffix`` would replace ``.2``).

    >>> str(weights_file("runs/ew-L0.2", ".json"))
    'runs/ew-L0.2.json'
    """
    return Path(f"{prefix}{suffix}")


def weights_dir() -> Path:
    return Path(str(resources.files("xiaonet") / "weights"))


def shipped_weights(name: str) -> Path | None:
    """Path prefix (without suffix) of the shipped weights of a preset, or None."""
    prefix = weights_dir() / name
    if weights_file(prefix, ".json").is_file() and weights_file(prefix, ".pt").is_file():
        return prefix
    return None


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"Unknown XiaoNet preset '{name}'. Known presets: {', '.join(sorted(PRESETS))}."
        ) from None


def build_student(name: str = DEFAULT_PRESET, **overrides: Any):
    """An untrained student of the named size."""
    from xiaonet.models.model import XiaoNet

    return XiaoNet(**{**get_preset(name).model_args, **overrides})


class WeightsError(ValueError):
    """Weights that cannot be loaded; the one-line message names the file and the reason."""


def load_weights(prefix: str | Path):
    """``XiaoNet.load`` of ``prefix.json`` + ``prefix.pt`` with every failure as one
    :class:`WeightsError` naming the file: a corrupt or foreign ``.json``, a truncated or
    non-torch ``.pt``, or a pickle that would run code (refused by ``weights_only=True``;
    nothing in it is executed)."""
    import json

    from xiaonet.models.model import XiaoNet

    prefix = Path(prefix)
    json_path, pt_path = weights_file(prefix, ".json"), weights_file(prefix, ".pt")
    try:
        with open(json_path) as handle:
            json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise WeightsError(f"{json_path}: not a readable XiaoNet model description "
                           f"(JSON written by XiaoNet.save): {type(error).__name__}: {error}") from None
    try:
        return XiaoNet.load(str(prefix), weights_only=True)
    except Exception as error:  # torch and pickle raise many types for bad files
        import re

        text = str(error)
        code = re.search(r"GLOBAL (\S+)", text)
        if code:
            what = f"holds Python code ({code.group(1)}), not only tensors; refused, nothing was run"
        else:
            first = next((line.strip() for line in text.splitlines() if line.strip()), "")
            if len(first) > 120 or "weights_only" in first:
                first = ""
            what = ("not loadable torch weights (truncated, corrupt or not written by XiaoNet.save): "
                    f"{type(error).__name__}" + (f": {first}" if first else ""))
        raise WeightsError(f"{pt_path}: {what}") from None


def load_student(name_or_path: str = DEFAULT_PRESET, allow_untrained: bool = False):
    """Load a student by preset name (shipped weights) or by a weights path.

    A path may be given with or without the ``.json`` / ``.pt`` suffix.
    """
    from xiaonet.models.model import XiaoNet

    path = Path(name_or_path)
    if path.suffix in (".json", ".pt"):
        path = path.with_suffix("")
    if weights_file(path, ".json").is_file() and weights_file(path, ".pt").is_file():
        return load_weights(path)
    if name_or_path not in PRESETS:
        if path.suffix or path.parent != Path(".") or weights_file(path, ".json").exists():
            raise FileNotFoundError(
                f"No XiaoNet weights at '{name_or_path}': expected '{path}.json' and "
                f"'{path}.pt' (as written by XiaoNet.save)."
            )
        get_preset(name_or_path)  # raises with the list of presets
    shipped = shipped_weights(name_or_path)
    if shipped is not None:
        return load_weights(shipped)
    if allow_untrained:
        return build_student(name_or_path)
    raise FileNotFoundError(
        f"Preset '{name_or_path}' has no trained weights shipped in {weights_dir()}. "
        "Train them with `xiaonet train` or pass a weights path."
    )
