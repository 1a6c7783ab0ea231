"""``xiaonet benchmark association``: how long PyOcto association and location take on a
synthetic pick table (a network, random events, their picks and random noise picks)."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "association",
        help="association and location time of a synthetic pick table",
        description="Time xiaonet detect's association and location of a synthetic table of --picks picks; "
        "the median of --repeats runs.",
    )
    parser.add_argument("--picks", type=int, default=10_000, help="picks in the table (default 10000)")
    parser.add_argument("--repeats", type=int, default=5, help="runs; the median is reported (default 5)")
    parser.add_argument("--velocity", metavar="VP,VS|FILE", default=None,
                        help="velocity model, as xiaonet detect --velocity (default 0D 6.0,3.47)")
    return parser


def run(args: argparse.Namespace) -> int:
    from xiaonet.detect.velocity import DEFAULT_VELOCITY, VelocityModelError, velocity_model
    from xiaonet.speed.association_timing import run_association_benchmark

    try:
        model = velocity_model(args.velocity or DEFAULT_VELOCITY)
    except VelocityModelError as error:
        print(f"xiaonet benchmark association: {error}", file=sys.stderr)
        return 2
    print("\n".join(run_association_benchmark(args.picks, repeats=args.repeats, model=model).lines()))
    return 0
