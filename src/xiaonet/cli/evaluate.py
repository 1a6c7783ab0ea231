"""``xiaonet evaluate``: score students, teachers and STA/LTA on labelled datasets.

Whole-trace picking against analyst picks (precision, recall, F1, residuals, threshold
sweep) and the SeisBench pick-benchmark tasks 1-3, every picker through the same picker
interface and the same scorer. Writes tables (markdown, CSV, JSON) and figures into --out.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="score pickers on labelled datasets, or on continuous data against the teachers' consensus",
        description=(
            "Evaluate pickers on SeisBench-format datasets (folders with metadata.csv + "
            "waveforms.hdf5): whole-trace picking scored against the analyst picks, and the "
            "SeisBench pick-benchmark tasks (detection ROC AUC, P-vs-S MCC, onset residuals)."
        ),
    )
    parser.add_argument("--dataset", action="append", required=True, metavar="PATH",
                        help="dataset folder (repeat for several)")
    from xiaonet.cli.options import add_picker_list_option

    add_picker_list_option(parser, "a picker to evaluate, as xiaonet pick --picker reads it "
                           "(NAME[:WEIGHTS][@window=SAMPLES]); default: "
                           "xiaonet,phasenet,eqtransformer,stalta", legacy=("--pickers",))
    parser.add_argument("--reference", choices=("analyst", "consensus"), default="analyst",
                        help="analyst: --dataset folders are SeisBench datasets scored against their "
                        "analyst picks. consensus: --dataset folders (or files) hold continuous "
                        "waveforms scored against the picks PhaseNet and EQTransformer agree on "
                        "(within 0.3 s; a pick only one teacher made is neither rewarded nor "
                        "penalised), one table row per network")
    parser.add_argument("--tolerance", type=float, default=0.5,
                        help="a pick within this many seconds of the analyst pick is a hit (0.5)")
    parser.add_argument("--out", default="evaluation", help="output folder (default: evaluation)")
    parser.add_argument("--gain", type=float, action="append", default=[], metavar="FACTOR",
                        help="also evaluate every dataset multiplied by FACTOR, named DATASETxFACTOR "
                        "(e.g. 1e-20 imitates data stored in m/s); the stored data is always evaluated")
    parser.add_argument("--max-traces", type=int, default=None, help="only the first N rows per dataset")
    parser.add_argument("--exclude-training", metavar="SPLIT_CSV", default=None,
                        help="leave out every record a training run used (its split.csv: rows whose "
                        "split is 'train' or 'val'), so students are scored on held-out stations and "
                        "networks only ('dev' and 'test' rows)")
    parser.add_argument("--no-benchmark", action="store_true", help="skip the pick-benchmark tasks")
    parser.add_argument("--seed", type=int, default=20261127, help="seed for benchmark windows and gallery")
    parser.add_argument("--windows", default=None, metavar="CSV",
                        help="reuse benchmark windows from this CSV (written as benchmark_windows.csv)")
    parser.add_argument("--gallery", type=int, default=4, help="example traces per dataset in the gallery")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from xiaonet.evaluate.evaluation import evaluate, EvaluationSettings
    from xiaonet.evaluate.traces import DatasetError, LabelledDataset, training_records
    from xiaonet.picking.specs import parse_picker_spec
    from xiaonet.evaluate.pick_benchmark import BenchmarkSettings, benchmark_pickers
    from xiaonet.evaluate.reports import write_evaluation_outputs

    torch.set_num_threads(max(1, args.threads))
    problems: list[str] = []
    try:
        from xiaonet.cli.options import picker_texts

        texts = picker_texts(args, ["xiaonet", "phasenet", "eqtransformer", "stalta"])
        specs = [parse_picker_spec(s) for s in texts]
    except ValueError as error:
        print(f"xiaonet evaluate: {error}", file=sys.stderr)
        return 2
    if args.tolerance <= 0:
        print(f"xiaonet evaluate: --tolerance must be > 0 s, got {args.tolerance}", file=sys.stderr)
        return 2
    exclude = None
    if args.exclude_training:
        try:
            exclude = training_records(args.exclude_training)
        except DatasetError as error:
            print(f"xiaonet evaluate: {error}", file=sys.stderr)
            return 2
    datasets = []
    if args.reference == "consensus":
        from xiaonet.evaluate.traces import ContinuousDataset

        if args.gain or args.exclude_training:
            print("xiaonet evaluate: --gain and --exclude-training apply to analyst-picked datasets only",
                  file=sys.stderr)
            return 2
    for path in args.dataset if args.reference == "consensus" else ():
        try:
            networks = ContinuousDataset.networks_in(path) or [None]
            datasets += [ContinuousDataset(path, network=n if len(networks) > 1 else None) for n in networks]
        except DatasetError as error:
            problems.append(str(error))
    for path in args.dataset if args.reference == "analyst" else ():
        for gain in [1.0, *args.gain]:
            try:
                datasets.append(LabelledDataset(path, gain=gain, exclude=exclude))
            except DatasetError as error:
                problems.append(str(error))
                break
    if not datasets:
        print("xiaonet evaluate: no readable dataset:", file=sys.stderr)
        for message in problems:
            print(f"  {message}", file=sys.stderr)
        return 2
    out = Path(args.out)
    settings = EvaluationSettings(tolerance=args.tolerance, progress=not args.no_progress)
    from xiaonet.models.teachers import TeacherUnavailable

    try:
        evaluation = evaluate(specs, datasets, settings, max_traces=args.max_traces, note=problems.append)
    except TeacherUnavailable as error:
        print(f"xiaonet evaluate: the consensus reference needs both teachers: {error}", file=sys.stderr)
        return 2
    summaries = records = None
    if not args.no_benchmark and evaluation.pickers and args.reference == "analyst":
        bench = BenchmarkSettings(seed=args.seed)
        windows_path = Path(args.windows) if args.windows else out / "benchmark_windows.csv"
        summaries, records, _ = benchmark_pickers(
            evaluation.pickers, datasets, bench, windows_path, reuse_windows=bool(args.windows),
            progress=not args.no_progress,
        )
        if args.windows:
            from xiaonet.evaluate.pick_benchmark import write_windows, read_windows

            write_windows(read_windows(windows_path), out / "benchmark_windows.csv")
    summary = write_evaluation_outputs(evaluation, out, summaries, records, args.gallery, args.seed)
    print(summary.read_text())
    for run_ in evaluation.runs:
        problems.extend(f"{run_.picker}: {message}" for message in run_.failures)
    print(f"tables and figures written to {out}/", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s):", file=sys.stderr)
        for message in problems:
            print(f"  {message}", file=sys.stderr)
        return 1
    return 0
