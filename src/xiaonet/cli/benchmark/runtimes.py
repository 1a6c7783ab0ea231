"""``xiaonet benchmark runtimes``: speed and memory of the students, the teachers and STA/LTA in one run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def default_data() -> list[str]:
    from xiaonet.distill.config import default_shared_dir

    hour = default_shared_dir() / "data" / "continuous" / "chile_CX_deepphasepick" / "CX.PB01..HH_.20140301T015959.mseed"
    return [str(hour)] if hour.is_file() else []


def add_parser(subparsers) -> argparse.ArgumentParser:
    from xiaonet.speed.benchmarking import DEFAULT_MODELS

    parser = subparsers.add_parser(
        "runtimes",
        help="parameters, MACs, latency, throughput and memory of every picker runtime",
        description=(
            "Measure the student presets (torch, ONNX fp32, ONNX int8), PhaseNet and "
            "EQTransformer (SeisBench, ONNX) and STA/LTA in one run on the same data, and print "
            "a markdown table with ratios against PhaseNet through SeisBench; then `xiaonet pick` "
            "as a user runs it (whole processes, start-up included) on the same data, against the "
            "PhaseNet and STA/LTA commands."
        ),
    )
    from xiaonet.cli.options import add_picker_list_option

    add_picker_list_option(
        parser, f"a picker to measure, optionally with one runtime (e.g. xiaonet-s:onnx-int8); "
        f"default: {','.join(DEFAULT_MODELS)}", metavar="MODEL[:RUNTIME]",
    )
    parser.add_argument("--data", nargs="+", default=None, metavar="PATH",
                        help="3-component waveform files/folders/globs (default: one hour of "
                        "$XIAONET_SHARED/data/continuous/chile_CX_deepphasepick)")
    parser.add_argument("--hours", type=float, default=1.0, help="station-hours of data to use (default 1)")
    parser.add_argument("--synthetic", type=float, default=None, metavar="SECONDS",
                        help="seeded synthetic noise instead of data (smoke test; labelled as such)")
    parser.add_argument("--threads", type=int, default=1, help="threads per runtime (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; medians are reported")
    parser.add_argument("--latency-calls", type=int, default=100, help="batch-1 calls for the latency percentiles")
    parser.add_argument("--no-rss", action="store_true", help="skip the fresh-process memory measurement")
    parser.add_argument("--no-cli", action="store_true",
                        help="skip the whole-process section (`xiaonet pick` as a user runs it, start-up included)")
    parser.add_argument("--seed", type=int, default=0, help="seed (calibration windows, synthetic data)")
    parser.add_argument("--weights", default="original", help="teacher weights name")
    parser.add_argument("--workdir", default=None, help="folder for the exported ONNX files (default: temp)")
    parser.add_argument("--out", default=None, metavar="JSON", help="write the full report as JSON")
    return parser


def run(args: argparse.Namespace) -> int:
    from xiaonet.cli.options import picker_texts
    from xiaonet.speed.benchmarking import DEFAULT_MODELS, BenchmarkConfig, run_benchmark
    from xiaonet.speed.data import BenchmarkError
    from xiaonet.speed.report import format_cli_markdown, format_markdown

    data = args.data if args.data is not None else ([] if args.synthetic else default_data())
    config = BenchmarkConfig(
        models=picker_texts(args, list(DEFAULT_MODELS)), data=data, hours=args.hours, synthetic_seconds=args.synthetic,
        threads=args.threads, repeats=args.repeats, latency_calls=args.latency_calls,
        measure_rss=not args.no_rss, seed=args.seed, teacher_weights=args.weights,
        workdir=args.workdir, cli=not args.no_cli,
    )
    try:
        report = run_benchmark(config, note=lambda message: print(message, file=sys.stderr))
    except BenchmarkError as error:
        print(f"xiaonet benchmark runtimes: {error}", file=sys.stderr)
        return 2
    print(format_markdown(report))
    if report["cli"]:
        print(format_cli_markdown(report["cli"], report["data"]["station_hours"]))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2, default=str))
        print(f"\nreport written to {args.out}", file=sys.stderr)
    failed = [f"{r['model']}:{r['runtime']}" for r in report["rows"] if r["error"]]
    failed += [r["label"] for r in (report["cli"] or {}).get("rows", []) if r["error"] and not r["error"].startswith("not run")]
    return 1 if failed else 0
