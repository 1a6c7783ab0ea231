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
    parser.add_argument("--dataset", action="append", default=[], metavar="PATH",
                        help="dataset folder (repeat for several); or use --protocol")
    parser.add_argument("--protocol", metavar="CONFIG", default=None,
                        help="score on the held-out networks of this training config instead of --dataset "
                        "(e.g. configs/xiaonet-s.json): every reference pick of a kind (analyst-picked, "
                        "teachers' consensus) of a split pooled into one P and one S F1 with a bootstrap "
                        "interval over records, and the paired difference against --baseline")
    parser.add_argument("--split", action="append", default=[], metavar="SPLIT",
                        help="with --protocol: validation (choose on these), test (report only), dev (held-out "
                        "stations of the training networks, analyst picks) or fit (the "
                        "last 20%% of every continuous record of the training networks, against the teachers' "
                        "consensus: does a student reproduce its teachers where it learns?); repeat or "
                        "separate by commas (default: validation)")
    parser.add_argument("--baseline", default=None, metavar="SPEC",
                        help="with --protocol: the picker every other is compared with (F1 difference on the "
                        "same resampled records), e.g. phasenet")
    parser.add_argument("--sensitivity", action="store_true",
                        help="with --protocol: instead of the pooled table, recall and precision against SNR: "
                        "every analyst-picked event (P and S) of the test networks buried in real noise of the "
                        "validation networks' continuous stations (where both teachers are quiet) at each --snr; "
                        "writes sensitivity.md, .csv and .png")
    parser.add_argument("--snr", default="-5,0,5,10,15,20", metavar="DB,DB,...",
                        help="with --sensitivity: SNR levels in dB (default -5,0,5,10,15,20)")
    parser.add_argument("--max-events", type=int, default=None,
                        help="with --sensitivity: only the first N events (a quick look)")
    parser.add_argument("--resamples", type=int, default=1000,
                        help="with --protocol: bootstrap resamples of the records (default 1000; 90%% interval)")
    from xiaonet.cli.options import add_picker_list_option

    add_picker_list_option(parser, "a picker to evaluate, as xiaonet pick --picker reads it "
                           "(NAME[:WEIGHTS][@window=SAMPLES]); default: "
                           "xiaonet,phasenet,eqtransformer,stalta")
    parser.add_argument("--reference", choices=("analyst", "consensus"), default="analyst",
                        help="analyst: --dataset folders are SeisBench datasets scored against their "
                        "analyst picks. consensus: --dataset folders (or files) hold continuous "
                        "waveforms scored against the picks PhaseNet and EQTransformer agree on "
                        "(within 0.3 s; a pick only one teacher made is neither rewarded nor "
                        "penalised), one table row per network")
    parser.add_argument("--tolerance", type=float, default=0.5,
                        help="a pick within this many seconds of the analyst pick is a hit (0.5)")
    parser.add_argument("--out", default="evaluation", metavar="DIR", help="output folder (default: evaluation)")
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

    if args.protocol:
        return run_protocol(args)
    if not args.dataset:
        print("xiaonet evaluate: give --dataset PATH (labelled or continuous data) or --protocol CONFIG",
              file=sys.stderr)
        return 2

    from xiaonet.models.model import set_torch_threads

    from xiaonet.evaluate.evaluation import evaluate, EvaluationSettings
    from xiaonet.data.records import DataError
    from xiaonet.evaluate.traces import LabelledDataset, training_records
    from xiaonet.picking.specs import parse_picker_spec
    from xiaonet.evaluate.pick_benchmark import BenchmarkSettings, benchmark_pickers
    from xiaonet.evaluate.reports import write_evaluation_outputs

    set_torch_threads(args.threads)
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
        except DataError as error:
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
        except DataError as error:
            problems.append(str(error))
    for path in args.dataset if args.reference == "analyst" else ():
        for gain in [1.0, *args.gain]:
            try:
                datasets.append(LabelledDataset(path, gain=gain, exclude=exclude))
            except DataError as error:
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


def run_protocol(args: argparse.Namespace) -> int:
    """``--protocol CONFIG``: pooled figures with intervals on the held-out networks of a config."""
    import time
    from pathlib import Path

    from xiaonet.models.model import set_torch_threads

    from xiaonet.cli.options import picker_texts, split_picker_list
    from xiaonet.evaluate.pooled import SPLITS, evaluate_protocol, pooled_table, source_table, write_pooled
    from xiaonet.picking.specs import build_picker, parse_picker_spec

    set_torch_threads(args.threads)
    splits = [s for text in (args.split or ["validation"]) for s in split_picker_list(text)]
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or args.gain or args.exclude_training or args.reference != "analyst" or args.dataset:
        reason = (f"unknown split {', '.join(unknown)}; known: {', '.join(SPLITS)}" if unknown else
                  "--protocol takes its records from the config: no --dataset, --reference, --gain or "
                  "--exclude-training (students' training records are left out by their split.csv)")
        print(f"xiaonet evaluate: {reason}", file=sys.stderr)
        return 2
    if not Path(args.protocol).is_file():
        print(f"xiaonet evaluate: --protocol {args.protocol}: no such training config", file=sys.stderr)
        return 2
    texts = picker_texts(args, ["xiaonet", "phasenet", "eqtransformer"])
    if args.baseline and args.baseline not in texts:
        texts.append(args.baseline)
    pickers, problems = [], []
    for text in texts:
        try:
            spec = parse_picker_spec(text)
            spec.label = text
            pickers.append((text, build_picker(spec)))
        except (ValueError, FileNotFoundError, RuntimeError) as error:
            problems.append(f"{text}: not evaluated: {error}")
    if not pickers:
        print("xiaonet evaluate: no picker could be loaded:", *problems, sep="\n  ", file=sys.stderr)
        return 2
    started = time.monotonic()
    if args.sensitivity:
        return run_sensitivity_study(args, pickers, problems, started)
    result = evaluate_protocol(args.protocol, splits, pickers, args.baseline, args.tolerance, args.seed,
                               args.resamples, progress=not args.no_progress)
    out = Path(args.out)
    write_pooled(result.figures, result.scores, out)
    records = ", ".join(f"{split}: {result.records[split]} records" +
                        (f" ({result.left_out[split]} left out: a student trained on them)"
                         if result.left_out[split] else "") for split in splits)
    lines = [f"Pooled over the records of {args.protocol} ({records}); F1 of all reference picks of a "
             f"kind with a bootstrap 90% interval over records ({args.resamples} resamples, seed {args.seed}); "
             f"a pick within {args.tolerance:g} s is a hit. On consensus records the teachers are the "
             "reference.", "", pooled_table(result.figures, args.baseline), "",
             "What each pooled figure is made of (F1 per held-out source, no interval):", "",
             source_table(result.scores), "",
             f"{time.monotonic() - started:.0f} s"]
    if "fit" in splits:
        from xiaonet.distill.config import load_config
        from xiaonet.evaluate.generalisation import FIT_FRACTION

        fraction = load_config(args.protocol).data.fit_fraction or FIT_FRACTION
        lines[1:1] = ["", f"Fit: the last {100 * fraction:g}% of every continuous record of the training "
                      "networks, against the "
                      "teachers' consensus. " + ("**In-sample**: the config holds none of it out "
                      "(data.fit_fraction), so the students trained on these hours; it measures fit, not "
                      "generalisation." if result.in_sample else "Held out of training by data.fit_fraction.")]
    text = "\n".join(lines) + "\n"
    (out / "pooled.md").write_text(text)
    print(text)
    problems += result.notes
    print(f"tables written to {out}/ (pooled.md, pooled.csv, records.csv)", file=sys.stderr)
    if problems:
        print(f"{len(problems)} note(s):", *problems, sep="\n  ", file=sys.stderr)
    return 0


def run_sensitivity_study(args: argparse.Namespace, pickers: list, problems: list[str], started: float) -> int:
    """``--protocol CONFIG --sensitivity``: recall against SNR (:mod:`xiaonet.evaluate.sensitivity`)."""
    import time
    from pathlib import Path

    from xiaonet.evaluate.generalisation import load_protocol
    from xiaonet.evaluate.pooled import students_records
    from xiaonet.evaluate.sensitivity import SIGNAL_S, run_sensitivity, sensitivity_table, write_sensitivity

    try:
        levels = tuple(float(v) for v in args.snr.split(",") if v.strip())
    except ValueError:
        print(f"xiaonet evaluate: --snr {args.snr}: expected dB values separated by commas, e.g. -5,0,10",
              file=sys.stderr)
        return 2
    _, bundle = load_protocol(args.protocol)
    leave = students_records([spec for spec, _ in pickers], "test", problems.append)
    rows, made = run_sensitivity(bundle, pickers, levels, args.seed, args.tolerance, args.max_events, leave,
                                 progress=not args.no_progress, note=problems.append)
    out = Path(args.out)
    title = (f"Events of the test networks of {args.protocol} ({made.events}) in real noise of the validation "
             "networks")
    files = write_sensitivity(rows, out, title, levels)
    text = "\n".join([
        f"Sensitivity: {made.events} analyst-picked events (P and S) of the test networks of {args.protocol}, "
        "each buried in one quiet noise window of the validation networks' continuous stations, scaled to each "
        f"P SNR (std from P to {SIGNAL_S:g} s after it over std of the noise; seed {args.seed}). Recall [90% bootstrap "
        f"interval over events] / precision; a pick within {args.tolerance:g} s of the analyst pick is a hit.",
        "", sensitivity_table(rows, levels), "", f"{time.monotonic() - started:.0f} s"]) + "\n"
    (out / "sensitivity.md").write_text(text)
    print(text)
    print(f"written: {', '.join(str(f) for f in [out / 'sensitivity.md', *files])}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} note(s):", *problems[:20], sep="\n  ", file=sys.stderr)
    return 0 if made.events else 1
