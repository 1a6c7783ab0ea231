"""``xiaonet benchmark WHAT``: every benchmark under one command, each printing figures measured
in the same run (never a test that asserts a time).

- ``runtimes``: parameters, MACs, latency, throughput and memory of the students, the teachers
  and STA/LTA, and whole ``xiaonet pick`` processes;
- ``stream``: streaming latency, stations per core, memory per station, event declarations and
  false alerts;
- ``association``: association and location time of a synthetic pick table;
- ``archive``: an SDS archive picked on Dask with 1..N workers.
"""

from __future__ import annotations

import argparse

from xiaonet.cli.benchmark import archive, association, runtimes, stream

BENCHMARKS = {"runtimes": runtimes, "stream": stream, "association": association, "archive": archive}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "benchmark",
        help="speed and memory figures: runtimes, stream, association, archive",
        description="Benchmarks that print figures measured in one run: " + ", ".join(BENCHMARKS) + ".",
    )
    kinds = parser.add_subparsers(dest="benchmark", metavar="WHAT", required=True)
    for module in BENCHMARKS.values():
        module.add_parser(kinds).set_defaults(benchmark_run=module.run)
    return parser


def run(args: argparse.Namespace) -> int:
    return args.benchmark_run(args)
