"""``xiaonet`` command line: one module per subcommand, dispatched by :func:`main`.

Each subcommand module provides ``add_parser(subparsers)`` and ``run(args) -> int`` and keeps
its heavy imports inside ``run`` so that ``xiaonet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Subcommand modules under xiaonet.cli, in the order `xiaonet --help` lists them.
COMMANDS = ["pick", "detect", "models", "train", "adapt", "export", "evaluate", "benchmark", "stream", "study"]

# What the `train` extra adds (pyproject.toml): a command that needs one of them says so in one line.
TRAIN_PACKAGES = ("torch", "seisbench", "onnx", "onnxscript")


def build_parser() -> argparse.ArgumentParser:
    from xiaonet import __version__

    parser = argparse.ArgumentParser(
        prog="xiaonet",
        description="XiaoNet: lightweight seismic phase picking (P and S arrivals).",
    )
    parser.add_argument("--version", action="version", version=f"xiaonet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"xiaonet.cli.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args) or 0)
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in TRAIN_PACKAGES:
            raise
        print(f"xiaonet {args.command}: needs {missing}, which this install lacks (the light base picks "
              f"with the shipped students only): pip install 'xiaonet[train]' (torch==2.13.0 first, see README)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
