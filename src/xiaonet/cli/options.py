"""Options shared by every command that picks (``pick``, ``stream``): one ``--picker`` grammar,
``--weights``, ``--threshold`` and ``--stalta``, with a clear error where a flag does not
apply to the chosen picker."""

from __future__ import annotations

import argparse


def add_data_selection_options(parser, verb: str) -> None:
    """``--sds / --start / --end / --select``: the same words for the same selection in every
    command that reads an archive (``pick`` picks it, ``adapt`` trains on it)."""
    parser.add_argument("--sds", default=None, metavar="ROOT",
                        help="SDS archive root (ROOT/YEAR/NET/STA/CHA.D/...) instead of files")
    parser.add_argument("--start", default=None, help=f"first time to {verb} (UTC, e.g. 2020-01-01)")
    parser.add_argument("--end", default=None, help=f"{verb} up to this time (UTC, exclusive)")
    parser.add_argument("--select", action="append", default=[], metavar="NET.STA.LOC.CHA",
                        help=f"channels to {verb}, wildcards * and ? (repeatable; default all)")
PICKER_HELP = (
    "NAME[:WEIGHTS][@window=SAMPLES]: a student preset or weights path (xiaonet = the default "
    "student), 'stalta', or a teacher ('phasenet', 'eqtransformer', 'gpd', optionally "
    "'phasenet:WEIGHTS'), or an ONNX file from `xiaonet export`; @window=SAMPLES runs a student "
    "with another prediction window. "
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
    parser.add_argument("--runtime", choices=["onnx", "c", "torch"], default=None,
                        help="where a model runs: onnx (ONNX Runtime, numpy only), c (the generated C library "
                        "through ctypes; also takes a `xiaonet export --format c` folder) or torch. Default: "
                        "onnx for students and ONNX files (built once from the weights and cached), torch "
                        "for the teachers")


def picker_from_args(args: argparse.Namespace):
    """The picker the options ask for, from the one factory (raises ValueError /
    FileNotFoundError / RuntimeError)."""
    from xiaonet.picking.specs import picker_from_options

    return picker_from_options(args.picker, args.weights, args.threshold, args.stalta,
                               getattr(args, "runtime", None), getattr(args, "threads", 1))


def add_picker_list_option(parser: argparse.ArgumentParser, help_text: str, metavar: str = "SPEC") -> None:
    """``--picker SPEC`` for commands that run several pickers: repeat it, or give a
    comma-separated list."""
    parser.add_argument("--picker", dest="picker", action="extend", type=split_picker_list, default=[],
                        metavar=metavar, help=help_text + " (repeat, or separate by commas)")


def split_picker_list(text: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``: the value of one ``--picker`` option.

    >>> split_picker_list("xiaonet-s, phasenet,")
    ['xiaonet-s', 'phasenet']
    """
    return [part.strip() for part in text.split(",") if part.strip()]


def picker_texts(args: argparse.Namespace, default: list[str]) -> list[str]:
    """The picker specs given with ``--picker``, else ``default``."""
    return list(args.picker or default)


def add_mqtt_options(parser: argparse.ArgumentParser) -> None:
    """How ``stream --publish`` and ``detect --subscribe`` log in to an MQTT broker."""
    group = parser.add_argument_group("MQTT broker (--publish / --subscribe)")
    group.add_argument("--mqtt-user", default=None, help="user name (or USER@ in the URL)")
    group.add_argument("--mqtt-password-env", default="XIAONET_MQTT_PASSWORD", metavar="VAR",
                       help="environment variable holding the password (default XIAONET_MQTT_PASSWORD; "
                       "kept off the command line)")
    group.add_argument("--mqtt-cafile", default=None, metavar="PEM",
                       help="mqtts://: CA certificate(s) of the broker (default: the system's)")
    group.add_argument("--mqtt-backoff-max", type=float, default=10.0,
                       help="longest wait between reconnect attempts (s, default 10)")


def mqtt_options_from_args(args: argparse.Namespace):
    import os

    from xiaonet.realtime.mqtt import ConnectionOptions

    return ConnectionOptions(username=args.mqtt_user, password=os.environ.get(args.mqtt_password_env) or None,
                             cafile=args.mqtt_cafile, backoff_max_s=args.mqtt_backoff_max)
