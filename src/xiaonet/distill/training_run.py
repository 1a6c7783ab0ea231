"""One training run from start to shipped weights (``xiaonet train``), as a library call.

:func:`run_training` resolves the config (or the run folder's, to resume), reads the data,
attaches teacher labels, trains (:func:`xiaonet.distill.training.train`), scores the teachers
and STA/LTA on the same records for the model card, writes the card and, with ``ship``,
copies weights, card, split and the student's ONNX file into the package. The command line
only turns its options into a :class:`TrainingRequest`.

Errors: :class:`TrainingRequestError` or ``ConfigError`` for a request that cannot start (the
command exits 2), ``DataError`` / ``TeacherUnavailable`` for data it cannot use (exit 1).
"""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


class TrainingRequestError(ValueError):
    """A training request that cannot start (no config, a resumed run given overrides, ...)."""


@dataclass(frozen=True)
class TrainingRequest:
    config: str | None = None  # JSON config path; None with ``resume``
    overrides: tuple[str, ...] = ()  # KEY=VALUE, as --set
    resume: str | None = None  # a run folder to continue from its last checkpoint
    run_dir: str | None = None  # default runs/<name>
    ship: bool = False
    baselines: bool = True  # score PhaseNet / EQTransformer / STA/LTA for the model card

    def command(self) -> str:
        """The ``xiaonet train`` command line that makes this run (for the model card)."""
        parts = ["xiaonet train"]
        if self.config:
            parts.append(f"--config {shlex.quote(str(self.config))}")
        parts += [f"--set {shlex.quote(o)}" for o in self.overrides]
        return " ".join(parts + (["--ship"] if self.ship else []))


@dataclass
class TrainingOutcome:
    run_dir: Path
    name: str
    metrics: dict
    dev_scores: dict
    card: Path
    shipped_to: Path | None = None
    teacher_labels: dict = field(default_factory=dict)

    def summary(self) -> str:
        test = self.metrics.get("test", {}).get("macro", {})
        dev = self.dev_scores
        return (f"{self.name}: held-out networks (mean over networks) P F1 {test.get('P', float('nan')):.3f}, "
                f"S F1 {test.get('S', float('nan')):.3f}; dev stations P F1 "
                f"{dev.get('P', {}).get('f1', float('nan')):.3f}, S F1 "
                f"{dev.get('S', {}).get('f1', float('nan')):.3f}; weights {self.run_dir / 'model'}; card {self.card}")


def resolve_run(request: TrainingRequest):
    """(config, run folder) of a request, before anything heavy is imported."""
    from xiaonet.distill.config import check_trainable, load_config

    if request.resume:
        run_dir = Path(request.resume)
        if not (run_dir / "config.json").is_file():
            raise TrainingRequestError(f"{run_dir}: not a run folder (no config.json)")
        if request.overrides:
            raise TrainingRequestError("--set / --threads / --no-progress cannot change a resumed run "
                                       "(its config is fixed)")
        return load_config(run_dir / "config.json"), run_dir
    if not request.config:
        raise TrainingRequestError("--config is required (or --resume RUN_DIR)")
    config = load_config(request.config, list(request.overrides))
    check_trainable(config)
    run_dir = Path(request.run_dir or Path("runs") / config.name)
    if (run_dir / "checkpoint.pt").exists():
        raise TrainingRequestError(f"{run_dir} already holds a run; use --resume {run_dir} or another --run-dir")
    return config, run_dir


def run_training(request: TrainingRequest, note: Callable[[str], None] = print,
                 warn: Callable[[str], None] | None = None) -> TrainingOutcome:
    config, run_dir = resolve_run(request)

    import torch

    from xiaonet.distill.model_card import score_baselines, write_model_card
    from xiaonet.distill.run_folder import code_version
    from xiaonet.distill.splits import load_data
    from xiaonet.distill.teacher_labels import attach_teacher_labels, consensus_members
    from xiaonet.distill.training import train

    torch.set_num_threads(max(1, config.train.threads))
    note(f"reading data from {config.shared_path()}")
    bundle = load_data(config, note=lambda message: None)
    held_out = [r for r in bundle.val + bundle.test if r.category == "continuous"]
    if held_out:  # the consensus reference needs each consensus teacher's own curves
        attach_teacher_labels(held_out, consensus_members(), config.teacher.cache_dir, config.teacher.batch_size,
                              note=note, progress=config.train.progress, keep_members=True)
    counts = attach_teacher_labels(bundle.train + bundle.dev, config.teacher.members, config.teacher.cache_dir,
                                   config.teacher.batch_size, note=note, progress=config.train.progress,
                                   combine=config.teacher.combine)
    note(f"{len(bundle.train)} train / {len(bundle.val)} validation / {len(bundle.dev)} dev / {len(bundle.test)} "
         f"test records, {counts['labelled']} with teacher labels ({counts['computed']} computed now)")
    result = train(config, run_dir, bundle, resume=bool(request.resume), note=note)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["code_version"] = code_version()
    metrics["teacher_labels"] = counts
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    baselines = {}
    if request.baselines and (bundle.dev or bundle.test):
        baseline_file = run_dir / "baselines.json"
        if baseline_file.is_file():
            baselines = json.loads(baseline_file.read_text())
        else:
            note("scoring PhaseNet, EQTransformer and STA/LTA on the same test and dev records")
            baselines = score_baselines(bundle, config, note=warn or note)
            baseline_file.write_text(json.dumps(baselines, indent=1) + "\n")
    card = write_model_card(config, run_dir, result.model, metrics, baselines, request.command())
    outcome = TrainingOutcome(run_dir, config.name, metrics, result.dev_scores, card, teacher_labels=counts)
    if request.ship:
        outcome.shipped_to = ship(run_dir, config.name)
    return outcome


def ship(run_dir: Path, name: str) -> Path:
    """Copy a run's weights, card and split into the package, and write the ONNX file the
    torch-free install picks with (checked against torch)."""
    from xiaonet.models.presets import weights_dir
    from xiaonet.picking.student_onnx import write_shipped

    target = weights_dir()
    for suffix in (".json", ".pt", ".md"):
        shutil.copy2(run_dir / "model" / f"{name}{suffix}", target / f"{name}{suffix}")
    # which records trained it, so evaluations can leave them out on any checkout
    shutil.copy2(run_dir / "split.csv", target / f"{name}.split.csv")
    write_shipped(name)
    return target
