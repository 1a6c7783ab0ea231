"""``xiaonet benchmark archive``: an SDS archive picked on Dask with 1..N workers: station-days
per minute and per CPU-second, parallel efficiency, peak memory per worker (docs/archive.md)."""

from __future__ import annotations

import argparse
import os


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "archive",
        help="archive picking on Dask: throughput, parallel efficiency, memory",
        description="Build an SDS archive of real records (or reuse --archive DIR), pick it as xiaonet pick --sds "
        "does with each number of --workers for each --picker, and a plain xiaonet pick of one day file.",
    )
    parser.add_argument("--shared", default=os.environ.get("XIAONET_SHARED", "../shared"),
                        help="the shared data folder the archive is built from (default $XIAONET_SHARED or ../shared)")
    parser.add_argument("--picker", default="xiaonet-s,ONNX,phasenet,stalta",
                        help="pickers to measure, comma-separated (the grammar of xiaonet pick --picker); "
                        "ONNX = xiaonet-s exported to ONNX here")
    parser.add_argument("--workers", default="1,2", help="numbers of Dask workers, comma-separated (default 1,2)")
    parser.add_argument("--stations", type=int, default=2, help="stations in the archive (default 2)")
    parser.add_argument("--days", type=int, default=2, help="days per station (default 2)")
    parser.add_argument("--rate", type=float, default=200.0, help="sampling rate of the archive (default 200 Hz)")
    parser.add_argument("--repeats", type=int, default=3, help="runs; medians are reported (default 3)")
    parser.add_argument("--block", type=float, default=3600.0, help="seconds read per block (default 3600)")
    parser.add_argument("--before", default=None, metavar="SRC", help="another checkout's src/ for the plain-pick row")
    parser.add_argument("--out", default=None, metavar="JSON", help="also write the rows as JSON")
    parser.add_argument("--archive", default=None, metavar="DIR",
                        help="build the archive here and keep it (reused when it exists)")
    return parser


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xiaonet.archive.benchmark import run_archive_benchmark

    return run_archive_benchmark(Path(args.shared), args.picker, args.workers, args.stations, args.days, args.rate,
                                 args.repeats, args.block, args.before, args.out, args.archive)
