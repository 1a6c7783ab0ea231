"""Distillation training: seeded batches, the loop, checkpoints, resume, validation F1, thresholds.

:func:`train` runs one config into a run folder::

    run_dir/config.json       resolved config          run_dir/manifest.json  data manifest
    run_dir/split.csv         train/val/dev records    run_dir/version.txt    code version
    run_dir/history.csv/json  one row per epoch        run_dir/curves.png     loss and val F1
    run_dir/checkpoint.pt     last finished epoch      run_dir/best.pt        best val F1
    run_dir/model/<name>.*    final weights (tuned thresholds), run_dir/metrics.json

The validation split (held-out networks, and stations of ``val_fraction``) chooses the epoch
and the thresholds (:mod:`xiaonet.distill.selection`); the test networks and the dev
stations are only scored at the end, for the model card. Configs without a validation split
fall back to choosing on dev (and say so). The folder's history and curves are
:mod:`xiaonet.distill.run_folder`.

Every batch of epoch ``e`` is drawn from ``numpy.random.default_rng([seed, e])``, so the
data order does not depend on how many processes came before: a run killed at any point
and resumed from its last checkpoint ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from xiaonet.data.augmentations import build_pipeline
from xiaonet.distill.config import TrainConfig, config_to_dict, write_config
from xiaonet.distill.splits import DataBundle
from xiaonet.data.records import Record
from xiaonet.data.windows import WindowSampler
from xiaonet.distill.distillation import DistillationLoss
from xiaonet.distill.batches import decided_samples, make_batch
from xiaonet.distill.run_folder import code_version, plot_curves, write_history
from xiaonet.distill.selection import score_records, tune_thresholds

logger = logging.getLogger(__name__)


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's legacy and torch's global generators (for third-party code).

    XiaoNet's own randomness uses explicit generators derived from the config seed.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def setup_device(name: str = "cpu", threads: int | None = None, deterministic: bool = False) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto`` as a torch device, checked.

    :param threads: torch CPU threads (the training machines are shared: 1 is polite).
    :param deterministic: make torch use deterministic algorithms only.
    """
    if threads:
        torch.set_num_threads(int(threads))
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device '{name}' requested but torch {torch.__version__} sees no CUDA GPU; use 'cpu'")
    if name == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("device 'mps' requested but it is not available; use 'cpu'")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device '{name}'; expected cpu, cuda, cuda:N, mps or auto") from None


@dataclass
class EarlyStopping:
    """Stops when the monitored value has not improved by ``min_delta`` for ``patience`` epochs.

    ``mode='max'`` for scores (F1), ``'min'`` for losses.
    """

    patience: int = 10
    min_delta: float = 0.0
    mode: str = "max"
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0

    def step(self, value: float, epoch: int) -> bool:
        """Record an epoch's value; True when it is a new best."""
        sign = 1.0 if self.mode == "max" else -1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = float(value), int(epoch), 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("patience", "min_delta", "mode", "best", "best_epoch", "bad_epochs")}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


# --- batches -----------------------------------------------------------------------------


def epoch_generator(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), 1, int(epoch)])


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


@dataclass
class TrainingResult:
    run_dir: Path
    model: torch.nn.Module
    history: list[dict]
    best_epoch: int
    thresholds: dict = field(default_factory=dict)
    dev_scores: dict = field(default_factory=dict)


def _lr_factor(config: TrainConfig):
    steps = config.train.steps_per_epoch
    warmup = max(1, config.train.warmup_epochs * steps)
    total = max(warmup + 1, config.train.max_epochs * steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / (total - warmup))
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def train(config: TrainConfig, run_dir: str | Path, bundle: DataBundle, resume: bool = False,
          note: Callable[[str], None] | None = None) -> TrainingResult:
    """Train a student on ``bundle`` (records with teacher labels attached) into ``run_dir``.

    With ``resume=True`` the run continues from ``run_dir/checkpoint.pt``.
    """
    from xiaonet.models.presets import build_student

    note = note or logger.info
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = setup_device(config.train.device, config.train.threads, config.train.deterministic)
    set_seed(config.seed)

    torch_generator = torch.Generator().manual_seed(config.seed)
    model = build_student(config.model.preset, **config.model.overrides)
    with torch.no_grad():  # initialise from the config's seed, not the global state
        for parameter in model.parameters():
            bound = 1.0 / math.sqrt(max(1, parameter[0].numel())) if parameter.dim() > 1 else 0.05
            parameter.uniform_(-bound, bound, generator=torch_generator)
    if config.model.init_weights:
        from xiaonet.distill.config import initial_state

        model.load_state_dict(initial_state(model, config.model.init_weights))
        note(f"starting from the weights of {config.model.init_weights} (model.init_weights)")
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(config))
    stopper = EarlyStopping(config.train.patience, config.train.min_delta, "max")
    criterion = DistillationLoss(config.loss.alpha, config.loss.temperature)

    weights = {Path(config.source_path(s)).name: s.weight for s in config.data.sources}
    sampler = WindowSampler(
        bundle.train, weights, config.data.window_len, config.data.label_shape,
        config.data.label_sigma_s * config.data.sampling_rate, config.data.quiet_threshold,
    )
    pipeline = build_pipeline(config.augment, sampler, config.data.sampling_rate)
    decided = decided_samples(model, config.data.window_len, config.data.sampling_rate)
    if decided:
        note(f"early-warning student: loss on window samples {decided[0]}-{decided[1]} of "
             f"{config.data.window_len}; {config.train.onset_share:.0%} of windows with an onset there"
             + (f", {config.train.record_start_share:.0%} starting their record inside"
                if config.train.record_start_share > 0 else ""))

    history: list[dict] = []
    start_epoch, elapsed_before = 0, 0.0
    checkpoint_path = run_dir / "checkpoint.pt"
    if resume:
        if not checkpoint_path.is_file():
            raise FileNotFoundError(f"{checkpoint_path}: no checkpoint to resume from")
        state = torch.load(checkpoint_path, weights_only=True)  # tensors and plain data only, like every weights path
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        stopper.load_state_dict(state["early_stopping"])
        history = state["history"]
        start_epoch, elapsed_before = state["epoch"], state["elapsed_s"]
        torch_generator.set_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        torch.set_rng_state(state["rng"]["torch_global"])
        note(f"resuming {run_dir} after epoch {start_epoch}")
    else:
        write_config(config, run_dir / "config.json")
        (run_dir / "version.txt").write_text(code_version() + "\n")
        bundle.write_split(run_dir / "split.csv")
        manifest = bundle.manifest()
        manifest["sampler"] = {"noise_windows": len(sampler.noise_windows), "event_records": len(sampler.events),
                               "sources": dict(zip(sampler.sources, sampler.source_p.round(4).tolist()))}
        manifest["augmentations"] = str(pipeline)
        (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    note(f"augmentations: {pipeline}")

    from xiaonet.picking.pickers import ModelPicker

    split, selection_records = bundle.selection
    keep_epoch = config.eval.keep_epoch
    if keep_epoch:
        note(f"keeping the weights after epoch {keep_epoch} (eval.keep_epoch, chosen beforehand)")
        split, selection_records = ("val", bundle.val) if bundle.val else ("none", [])
    elif split == "dev":
        note("no validation split (data.sources.*.val_fraction): epoch chosen on dev, so dev figures are optimistic")
    started = time.monotonic()
    last_epoch = keep_epoch or config.train.max_epochs  # the schedule still spans max_epochs
    for epoch in range(start_epoch, last_epoch):
        if stopper.should_stop and not keep_epoch:
            break
        if elapsed_before + (time.monotonic() - started) > 60 * config.train.max_minutes:
            note(f"stopping: max_minutes={config.train.max_minutes} reached")
            break
        rng = epoch_generator(config.seed, epoch)
        model.train()
        losses = []
        steps = range(config.train.steps_per_epoch)
        if config.train.progress:
            from tqdm import tqdm

            steps = tqdm(steps, desc=f"epoch {epoch + 1}/{config.train.max_epochs}", unit="batch", leave=False,
                         mininterval=5.0)
        for _ in steps:
            x, teacher, teacher_mask, labels, label_mask = make_batch(
                sampler, pipeline, rng, config.train.batch_size, decided, config.train.onset_share,
                config.train.record_start_share)
            logits = model(x.to(device), logits=True)
            if decided:
                a, b = decided
                logits, teacher, labels = logits[..., a:b], teacher[..., a:b], labels[..., a:b]
            loss = criterion(logits, teacher.to(device), teacher_mask.to(device), labels.to(device),
                             label_mask.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            if config.train.progress:
                steps.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", refresh=False)
        model.eval()
        picker = ModelPicker(copy.deepcopy(model).cpu(), name=config.name,
                             thresholds={"P": config.eval.dev_threshold, "S": config.eval.dev_threshold})
        scored = bool(selection_records) and ((epoch + 1) % max(1, config.train.score_every) == 0
                                              or epoch + 1 == last_epoch)
        dev = score_records(picker, selection_records, config.eval.tolerance_s) if scored else {}
        # each held-out network weighs the same (macro): epochs are chosen for a new network
        p_f1 = dev.get("macro", {}).get("P", 0.0)
        s_f1 = dev.get("macro", {}).get("S", 0.0)
        monitored = (p_f1 + s_f1) / 2
        if keep_epoch:
            improved = epoch + 1 == keep_epoch
        else:
            improved = stopper.step(monitored, epoch + 1) if scored else False
        row = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)),
            "lr": float(scheduler.get_last_lr()[0]),
            f"{split}_p_f1": p_f1,
            f"{split}_s_f1": s_f1,
            f"{split}_p_precision": dev.get("P", {}).get("precision", 0.0),
            f"{split}_p_recall": dev.get("P", {}).get("recall", 0.0),
            f"{split}_s_precision": dev.get("S", {}).get("precision", 0.0),
            f"{split}_s_recall": dev.get("S", {}).get("recall", 0.0),
            f"{split}_p_mae_s": dev.get("P", {}).get("residual_mae", float("nan")),
            "elapsed_s": round(elapsed_before + time.monotonic() - started, 1),
        }
        if not scored:  # a refit with nothing to score, or an epoch between scorings: no F1 columns
            row = {k: v for k, v in row.items() if not k.startswith(f"{split}_")}
        history.append(row)
        note(
            f"epoch {epoch + 1}: loss {row['train_loss']:.4f}"
            + (f", {split} P F1 {p_f1:.3f}, S F1 {s_f1:.3f}" if scored else "")
            + (" (best)" if improved else "")
        )
        if improved:
            _save_atomic({"epoch": epoch + 1, "model": model.state_dict(), "dev": dev}, run_dir / "best.pt")
        _save_atomic(
            {
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "early_stopping": stopper.state_dict(),
                "history": history,
                "elapsed_s": elapsed_before + time.monotonic() - started,
                "rng": {"torch": torch_generator.get_state(), "python": random.getstate(),
                        "torch_global": torch.get_rng_state(), "numpy_epoch": rng.bit_generator.state},
                "config": config_to_dict(config),
            },
            checkpoint_path,
        )
        write_history(history, run_dir)
        plot_curves(history, run_dir / "curves.png")

    return finish_run(config, run_dir, bundle, history, note)


def finish_run(config: TrainConfig, run_dir: Path, bundle: DataBundle, history: list[dict],
               note: Callable[[str], None]) -> TrainingResult:
    """Best weights, thresholds tuned on validation (else training) traces, dev scores, saved model."""
    from xiaonet.picking.pickers import ModelPicker
    from xiaonet.models.presets import build_student

    model = build_student(config.model.preset, **config.model.overrides)
    best_path = run_dir / "best.pt"
    best_epoch = 0
    if best_path.is_file():
        best = torch.load(best_path, weights_only=True)
        model.load_state_dict(best["model"])
        best_epoch = best["epoch"]
    model.eval()
    if config.eval.p_threshold is not None:
        tuned_on = "config"
        thresholds = {"P": {"threshold": config.eval.p_threshold}, "S": {"threshold": config.eval.s_threshold}}
        note(f"thresholds from the config: P {config.eval.p_threshold}, S {config.eval.s_threshold}")
    else:
        if bundle.val:
            tuning, tuned_on = bundle.val, "val"
        else:
            tuning, tuned_on = [], "train"
            for source, recs in _group(bundle.train).items():
                labelled = [r for r in recs if bundle.source_of[source].kind == "labelled"]
                tuning += labelled[: config.eval.tuning_traces_per_source]
        thresholds = tune_thresholds(model, tuning, config.eval.threshold_grid, config.eval.tolerance_s)
        note(f"thresholds tuned on {'validation' if tuned_on == 'val' else 'training'} traces: " +
             ", ".join(f"{p} {v['threshold']} (F1 {v['tuning_f1']:.3f})" for p, v in thresholds.items()))
    for value in thresholds.values():
        value["tuned_on"] = tuned_on
    model.default_args = {f"{p}_threshold": v["threshold"] for p, v in thresholds.items()}
    out = run_dir / "model"
    out.mkdir(exist_ok=True)
    model.save(str(out / config.name), weights_docstring=f"XiaoNet {config.name}, distilled; see the model card.")
    picker = ModelPicker(model, name=config.name)
    dev = score_records(picker, bundle.dev, config.eval.tolerance_s) if bundle.dev else {}
    test = score_records(picker, bundle.test, config.eval.tolerance_s) if bundle.test else {}
    val = score_records(picker, bundle.val, config.eval.tolerance_s) if bundle.val else {}
    metrics = {"best_epoch": best_epoch, "epochs_run": len(history), "thresholds": thresholds, "dev": dev,
               "test": test, "val": val,
               "selection_split": "fixed" if config.eval.keep_epoch else bundle.selection[0],
               "train_minutes": round(history[-1]["elapsed_s"] / 60, 1) if history else 0.0}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    return TrainingResult(run_dir, model, history, best_epoch, thresholds, dev)


def _group(records: list[Record]) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = {}
    for r in records:
        out.setdefault(r.source, []).append(r)
    return out
