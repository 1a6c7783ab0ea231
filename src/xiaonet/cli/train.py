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
    import json
    import logging
    import shlex
    import shutil
    from pathlib import Path

    from xiaonet.data.config_files import ConfigError

    from xiaonet.distill.config import check_trainable, load_config
    from xiaonet.data.records import DataError
    from xiaonet.distill.splits import load_data
    from xiaonet.models.teachers import TeacherUnavailable

    log = logging.getLogger(__name__)
    if args.threads is not None:
        args.overrides.append(f"train.threads={args.threads}")
    if args.no_progress:
        args.overrides.append("train.progress=false")
    try:
        if args.resume:
            run_dir = Path(args.resume)
            if not (run_dir / "config.json").is_file():
                print(f"error: {run_dir}: not a run folder (no config.json)", file=sys.stderr)
                return 2
            if args.overrides:
                print("error: --set / --threads / --no-progress cannot change a resumed run (its config is fixed)",
                      file=sys.stderr)
                return 2
            config = load_config(run_dir / "config.json")
        else:
            if not args.config:
                print("error: --config is required (or --resume RUN_DIR)", file=sys.stderr)
                return 2
            config = load_config(args.config, args.overrides)
            check_trainable(config)
            run_dir = Path(args.run_dir or Path("runs") / config.name)
            if (run_dir / "checkpoint.pt").exists():
                print(f"error: {run_dir} already holds a run; use --resume {run_dir} or another --run-dir",
                      file=sys.stderr)
                return 2
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    import torch

    from xiaonet.distill.teacher_labels import attach_teacher_labels, consensus_members
    from xiaonet.distill.run_folder import code_version
    from xiaonet.distill.training import train

    torch.set_num_threads(max(1, config.train.threads))
    try:
        log.info("reading data from %s", config.shared_path())
        bundle = load_data(config, note=log.debug)
        held_out = [r for r in bundle.val + bundle.test if r.category == "continuous"]
        if held_out:  # the consensus reference needs each consensus teacher's own curves
            attach_teacher_labels(
                held_out, consensus_members(), config.teacher.cache_dir, config.teacher.batch_size,
                note=log.info, progress=config.train.progress, keep_members=True,
            )
        counts = attach_teacher_labels(
            bundle.train + bundle.dev, config.teacher.members, config.teacher.cache_dir,
            config.teacher.batch_size, note=log.info, progress=config.train.progress,
            combine=config.teacher.combine,
        )
    except (DataError, TeacherUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    log.info("%d train / %d validation / %d dev / %d test records, %d with teacher labels (%d computed now)",
             len(bundle.train), len(bundle.val), len(bundle.dev), len(bundle.test), counts["labelled"],
             counts["computed"])
    try:
        result = train(config, run_dir, bundle, resume=bool(args.resume), note=log.info)
    except DataError as error:  # e.g. no source with labels to train on: one line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 1

    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["code_version"] = code_version()
    metrics["teacher_labels"] = counts
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    baselines = {}
    if not args.no_baselines and (bundle.dev or bundle.test):
        from xiaonet.distill.model_card import score_baselines

        baseline_file = run_dir / "baselines.json"
        if baseline_file.is_file():
            baselines = json.loads(baseline_file.read_text())
        else:
            log.info("scoring PhaseNet, EQTransformer and STA/LTA on the same test and dev records")
            baselines = score_baselines(bundle, config, note=log.warning)
            baseline_file.write_text(json.dumps(baselines, indent=1) + "\n")
    from xiaonet.distill.model_card import write_model_card

    command = "xiaonet train " + (f"--config {shlex.quote(str(args.config))} " if args.config else "") + \
        " ".join(f"--set {shlex.quote(o)}" for o in args.overrides) + (" --ship" if args.ship else "")
    card = write_model_card(config, run_dir, result.model, metrics, baselines, command.strip())
    test = metrics.get("test", {}).get("macro", {})
    dev = result.dev_scores
    print(f"{config.name}: held-out networks (mean over networks) P F1 {test.get('P', float('nan')):.3f}, "
          f"S F1 {test.get('S', float('nan')):.3f}; dev stations P F1 "
          f"{dev.get('P', {}).get('f1', float('nan')):.3f}, S F1 {dev.get('S', {}).get('f1', float('nan')):.3f}; "
          f"weights {run_dir / 'model'}; card {card}")
    if args.ship:
        from xiaonet.models.presets import weights_dir

        target = weights_dir()
        for suffix in (".json", ".pt", ".md"):
            shutil.copy2(run_dir / "model" / f"{config.name}{suffix}", target / f"{config.name}{suffix}")
        # which records trained it, so evaluations can leave them out on any checkout
        shutil.copy2(run_dir / "split.csv", target / f"{config.name}.split.csv")
        # the ONNX file the torch-free install picks with, for these weights (checked against torch)
        from xiaonet.picking.student_onnx import write_shipped

        write_shipped(config.name)
        print(f"shipped into {target} (weights, card, split, ONNX)")
    return 0
