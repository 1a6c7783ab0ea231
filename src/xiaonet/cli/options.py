"""Options shared by every command that picks (``pick``, ``stream``): one ``--picker`` grammar,
``--weights``, ``--threshold`` and ``--stalta``, with a clear error where a flag does not
apply to the chosen picker."""

from __future__ import annotations

import argparse
from pathlib import Path

PICKER_HELP = (
    "NAME[:WEIGHTS][@window=SAMPLES]: a student preset or weights path (xiaonet = the default "
    "student), 'stalta', or a teacher ('phasenet', 'eqtransformer', 'gpd', optionally "
    "'phasenet:WEIGHTS'), an ONNX file from `xiaonet export` (MODEL.onnx: numpy + ONNX Runtime, "
    "no torch); @window=SAMPLES runs a student with another prediction window. "
    "Default: the shipped default student, or stalta when no trained student is shipped"
)


def add_picker_options(parser: argparse.ArgumentParser, extra_help: str = "") -> None:
    parser.add_argument("--picker", default=None, help=PICKER_HELP + extra_help)
    parser.add_argument("--weights", default="original", help="teacher weights name (default: original)")
    parser.add_argument("--threshold", action="append", default=[], metavar="PHASE=VALUE",
                        help="probability threshold per phase of a model picker, e.g. --threshold P=0.3 "
                        "(STA/LTA: --stalta trigger_on=...)")
    parser.add_argument("--stalta", action="append", default=[], metavar="KEY=VALUE",
                        help="STA/LTA option (method, sta, lta, trigger_on, trigger_off, freqmin, freqmax)")


def default_picker_name() -> str:
    from xiaonet.models.presets import DEFAULT_PRESET, shipped_weights

    return DEFAULT_PRESET if shipped_weights(DEFAULT_PRESET) is not None else "stalta"


def stalta_options(pairs: list[str]) -> dict:
    """``--stalta KEY=VALUE`` pairs as :class:`xiaonet.picking.stalta.StaLtaConfig` arguments."""
    from dataclasses import fields

    from xiaonet.picking.stalta import StaLtaConfig

    types = {f.name: f.type for f in fields(StaLtaConfig)}
    options = {}
    for pair in pairs:
        key, sep, value = (part.strip() for part in pair.partition("="))
        if not sep:
            raise ValueError(f"--stalta '{pair}' is not KEY=VALUE")
        if key not in types:
            raise ValueError(f"Unknown STA/LTA option '{key}'. Known: {', '.join(types)}.")
        options[key] = value if key == "method" else float(value)
    return options


def picker_from_args(args: argparse.Namespace):
    """The picker the options ask for (raises ValueError / FileNotFoundError / RuntimeError)."""
    from xiaonet.edge.picks import parse_thresholds

    thresholds = parse_thresholds(args.threshold)
    if str(args.picker or "").endswith(".onnx"):  # the torch-free runtime (`xiaonet export`): no torch import
        from xiaonet.edge.picker import EdgePicker

        if args.stalta:
            raise ValueError(f"--stalta applies to --picker stalta only, not to '{args.picker}'")
        if not Path(args.picker).is_file():
            raise FileNotFoundError(f"{args.picker}: no such ONNX file (write one with `xiaonet export`)")
        return EdgePicker(args.picker, thresholds=thresholds or None, threads=max(1, getattr(args, "threads", 1)))
    from xiaonet.picking.loading import load_picker
    from xiaonet.picking.specs import parse_picker_spec, resolve_name, set_window

    spec = parse_picker_spec(args.picker or default_picker_name())
    is_stalta = spec.spec.lower() == "stalta"
    if is_stalta and thresholds:
        raise ValueError("--threshold does not apply to STA/LTA (it has no probabilities); "
                         "use --stalta trigger_on=VALUE")
    if args.stalta and not is_stalta:
        raise ValueError(f"--stalta applies to --picker stalta only, not to '{spec.spec}'")
    picker = load_picker(resolve_name(spec.spec), weights=args.weights, thresholds=thresholds or None,
                         stalta_options=stalta_options(args.stalta))
    if spec.window_len is not None:
        set_window(picker, spec.window_len, spec.spec)
    return picker
