"""``xiaonet adapt``: distil a shipped student further on your own unlabelled data."""

from __future__ import annotations

import argparse
import sys

from xiaonet.cli.options import add_data_selection_options


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "adapt",
        help="adapt a student to your network's own (unlabelled) data",
        description=(
            "Distil a shipped student further on your own waveforms (continuous days or event files of "
            ">= 30 s; no picks needed): PhaseNet and EQTransformer label a random sample within the time "
            "budget, the last 25% of each instrument's data is held out to choose thresholds and to report "
            "the agreement with the teachers before and after. Writes PREFIX.pt / PREFIX.json (for "
            "`xiaonet pick/stream/export --picker PREFIX`) and the card PREFIX.md. Rerun the same command "
            "to resume (run folder PREFIX.run). docs/training.md, 'Adapting to your network'."
        ),
    )
    parser.add_argument("inputs", nargs="*", help="waveform files, folders or globs")
    parser.add_argument("--out", required=True, metavar="PREFIX", help="writes PREFIX.pt, PREFIX.json, PREFIX.md")
    parser.add_argument("--from", dest="start_student", default=None, metavar="STUDENT",
                        help="starting student: a preset or weights prefix (default: the package's default student)")
    parser.add_argument("--teacher", default="max", metavar="COMBINE",
                        help="how PhaseNet's and EQTransformer's probabilities combine into the target: max "
                        "(default: keeps the weak arrivals only one teacher sees, measured better on low-SNR data) "
                        "or mean (an arrival both see, as in training)")
    parser.add_argument("--picks", default=None, metavar="FILE",
                        help="your analyst picks, optional (a CSV as `xiaonet pick` writes, or QuakeML): hard labels "
                        "on records holding a P and an S pick, and a second reference on the held-out part")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="wall-clock budget for everything, labelling included (default 10)")
    add_data_selection_options(parser, "use")
    parser.add_argument("--run-dir", default=None, help="run folder (default PREFIX.run); rerunning resumes it")
    parser.add_argument("--steps", type=int, default=6000,
                        help="training batches in all, at most (default 6000; fewer when --minutes runs out)")
    parser.add_argument("--seed", type=int, default=20261206, help="seed of the sample and the training")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def run(args: argparse.Namespace) -> int:
    import logging

    from xiaonet.distill.adaptation import adapt
    from xiaonet.distill.adaptation_data import AdaptError, AdaptSettings, plan_adaptation
    from xiaonet.models.teachers import TeacherUnavailable

    log = logging.getLogger(__name__)
    settings = AdaptSettings(
        inputs=list(args.inputs), out=args.out, sds=args.sds, start=args.start, end=args.end, select=args.select,
        start_student=args.start_student, teacher=args.teacher, picks=args.picks, minutes=args.minutes, run_dir=args.run_dir,
        steps=args.steps, seed=args.seed, threads=args.threads, progress=not args.no_progress,
    )
    try:
        plan = plan_adaptation(settings)
    except AdaptError as error:
        print(f"xiaonet adapt: {error}", file=sys.stderr)
        return 2
    print(f"xiaonet adapt: {len(plan.files)} instrument(s) in {plan.n_files} file(s), "
          f"{sum(s.duration for s in plan.segments) / 3600:.2f} station-hours; starting from "
          f"{settings.resolved_start()}, teachers' {settings.teacher}, budget {settings.minutes:g} min; "
          f"run folder {settings.run_path()}", file=sys.stderr)
    try:
        result = adapt(settings, note=log.info, plan=plan)
    except (AdaptError, TeacherUnavailable) as error:
        print(f"xiaonet adapt: {error}", file=sys.stderr)
        return 1
    before, after = result.summary["before"]["tuned"], result.summary["after"]

    def f1(scores, phase):
        return f"{scores.get(phase, {}).get('f1', float('nan')):.3f}"

    print(f"{result.summary['name']}: agreement with the teachers on held-out hours, P F1 {f1(before, 'P')} -> "
          f"{f1(after, 'P')}, S F1 {f1(before, 'S')} -> {f1(after, 'S')} (before: {settings.resolved_start()} "
          f"with thresholds tuned the same way); {result.summary['minutes']:.1f} min; weights "
          f"{result.prefix}.pt/.json, card {result.card}", file=sys.stderr)
    return 0
