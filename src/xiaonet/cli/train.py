"""``xiaonet train``: distil a XiaoNet student from SeisBench teachers, from a JSON config."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train (distil) a student from a config",
        description=(
            "Train a XiaoNet student from PhaseNet / EQTransformer teachers and analyst picks. "
            "Writes the resolved config, data manifest, split, per-epoch logs, curves, "
            "checkpoints, final weights and a model card into the run folder."
        ),
    )
    parser.add_argument("--config", help="JSON config (see configs/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config value, e.g. --set train.lr=1e-3 (repeatable)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads: the same as --set train.threads=N (part of the run's config)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars: the same as --set train.progress=false")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    parser.add_argument("--run-dir", help="run folder (default: runs/<name>)")
    parser.add_argument("--ship", action="store_true",
                        help="copy the final weights and model card into the package (xiaonet/weights)")
    parser.add_argument("--no-baselines", action="store_true",
                        help="do not score PhaseNet / EQTransformer / STA/LTA on dev for the model card")
    return parser


def run(args) -> int:
    import logging

    from xiaonet.data.config_files import ConfigError
    from xiaonet.data.records import DataError
    from xiaonet.distill.training_run import TrainingRequest, TrainingRequestError, run_training
    from xiaonet.models.teachers import TeacherUnavailable

    log = logging.getLogger(__name__)
    overrides = list(args.overrides)
    if args.threads is not None:
        overrides.append(f"train.threads={args.threads}")
    if args.no_progress:
        overrides.append("train.progress=false")
    request = TrainingRequest(config=args.config, overrides=tuple(overrides), resume=args.resume,
                              run_dir=args.run_dir, ship=args.ship, baselines=not args.no_baselines)
    try:
        outcome = run_training(request, note=log.info, warn=log.warning)
    except (TrainingRequestError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (DataError, TeacherUnavailable) as error:  # e.g. no source with labels: one line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(outcome.summary())
    if outcome.shipped_to:
        print(f"shipped into {outcome.shipped_to} (weights, card, split, ONNX)")
    return 0
