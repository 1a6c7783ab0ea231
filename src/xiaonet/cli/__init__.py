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
COMMANDS = ["pick", "detect", "models", "train", "adapt", "export", "evaluate", "benchmark", "stream", "stream_benchmark", "study"]


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
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
