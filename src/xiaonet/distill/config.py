"""Typed training configuration: nested dataclasses read from JSON, with dotted overrides.

A config file is a JSON object whose keys mirror :class:`TrainConfig`. Unknown keys are
refused with the list of valid ones, values are checked against the field types, and
``--set train.lr=1e-3`` style overrides are applied before validation. The resolved config
(:func:`config_to_dict`) is written into every run folder and every checkpoint.

>>> config = TrainConfig()
>>> config = apply_overrides(config, ["train.lr=0.001", "loss.temperature=2"])
>>> config.train.lr, config.loss.temperature
(0.001, 2.0)

The schema is one dataclass per config section with every field documented where it is
declared; the strict loader of every typed file of the project
(:func:`xiaonet.data.config_files.dataclass_from_dict`) checks it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xiaonet.data.config_files import ConfigError, dataclass_from_dict, read_json_object


def default_shared_dir() -> Path:
    """The folder holding ``data/`` and the teacher cache: ``$XIAONET_SHARED``, else the
    ``shared`` folder beside the checkout (``<repo>/../shared``). The one place that knows."""
    if os.environ.get("XIAONET_SHARED"):
        return Path(os.environ["XIAONET_SHARED"])
    return Path(__file__).resolve().parents[3].parent / "shared"  # src/xiaonet/distill/config.py


#: Roles of a data source (or of one of its networks) in the network-held-out protocol.
SOURCE_ROLES = ("train", "validation", "test")
#: How the members' P and S probabilities become one training target.
TEACHER_COMBINATIONS = ("mean", "max")


@dataclass
class TeacherMember:
    """One SeisBench teacher: ``phasenet`` or ``eqtransformer`` and its weights name."""

    name: str = "phasenet"
    weights: str = "original"


@dataclass
class TeacherConfig:
    #: Ensemble members; the ensemble label combines their P and S probabilities.
    members: list[TeacherMember] = field(
        default_factory=lambda: [TeacherMember("phasenet"), TeacherMember("eqtransformer")]
    )
    #: ``mean`` (a pick needs both teachers to be sure) or ``max`` (either teacher's pick is a
    #: target: keeps the weak arrivals a conservative teacher is silent on).
    combine: str = "mean"
    #: Folder for the on-disk cache of teacher probabilities (relative to the working dir).
    cache_dir: str = "runs/teacher-cache"
    #: Batch size for teacher annotation.
    batch_size: int = 64


@dataclass
class SourceConfig:
    """One data folder: a SeisBench WaveformDataset (``labelled``) or miniSEED (``continuous``)."""

    #: Folder, relative to ``data.shared_dir`` unless absolute.
    path: str = ""
    kind: str = "labelled"
    #: Share of training windows drawn from this source (weights are normalised).
    weight: float = 1.0
    #: Use the analyst picks as hard labels (labelled sources only).
    hard_labels: bool = True
    #: Fraction of this source's stations held out as the dev split (labelled sources only):
    #: never trained on, never used to choose anything; the figures of the model card.
    dev_fraction: float = 0.0
    #: Fraction of this source's stations (after dev) held out as the validation split
    #: (labelled sources only): chooses the epoch, early stopping and the pick thresholds.
    val_fraction: float = 0.0
    #: The network-held-out protocol: ``train`` (trained on, with the station split above),
    #: ``validation`` (never trained on; chooses epochs, thresholds and recipes) or ``test``
    #: (never trained on, never used to choose anything; only reported). Continuous sources
    #: in validation or test are scored against the teachers' consensus.
    #: ``data.networks`` overrides it for the networks it names.
    role: str = "train"


@dataclass
class DataConfig:
    #: Folder holding ``data/``; null means ``$XIAONET_SHARED`` or ``<repo>/../shared``.
    shared_dir: str | None = None
    sources: list[SourceConfig] = field(default_factory=list)
    #: Network code -> role (train / validation / test) in every source: a network is held out
    #: wherever it appears (e.g. ``{"BK": "test"}`` leaves BK out of the labelled sets and of the
    #: strong-motion records alike). Networks not named take their source's ``role``.
    networks: dict[str, str] = field(default_factory=dict)
    #: Samples per training window at 100 Hz.
    window_len: int = 3001
    sampling_rate: float = 100.0
    #: Shape of hard labels around analyst picks: gaussian, triangle or box.
    label_shape: str = "gaussian"
    #: Width of hard labels (Gaussian sigma, triangle half-width / 2, box half-width), seconds.
    label_sigma_s: float = 0.15
    #: A continuous window counts as noise for the real-noise bank when the teacher's P and S
    #: stay below this everywhere in it.
    quiet_threshold: float = 0.05
    #: The last fraction of every continuous record of the training networks held out of
    #: training (``fit`` split): the fit figure, agreement with the teachers' consensus on
    #: hours of the training stations the student never saw (``xiaonet evaluate --protocol
    #: CONFIG --split fit``). 0: nothing held out, and the fit figure is in-sample.
    fit_fraction: float = 0.0


@dataclass
class AugmentConfig:
    #: Random gain spanning this many decades (10**-d/2 ... 10**d/2).
    gain_decades: float = 8.0
    #: Probability of adding real noise from continuous data at a random SNR.
    real_noise_probability: float = 0.3
    #: SNR range (dB, signal std over noise std) for real noise.
    real_noise_snr_db: tuple[float, float] = (-5.0, 20.0)
    #: Probability of Gaussian noise (AddNoise) and its level relative to the window std.
    gaussian_noise_probability: float = 0.1
    gaussian_noise_level: float = 0.1
    #: Probability of a circular time shift of waveform and labels.
    shift_probability: float = 0.2
    #: Probability of keeping only the vertical component (single-component stations).
    component_dropout_probability: float = 0.15
    #: Probability of zeroing a random gap, and its maximum length in seconds.
    gap_probability: float = 0.1
    gap_max_s: float = 5.0
    #: Probability of superposing a second labelled event window.
    superpose_probability: float = 0.1
    #: Probability of flipping the polarity.
    polarity_probability: float = 0.5
    #: Probability of a random instrument response / band limit (RandomResponse): low-pass
    #: corner range, high-pass corner range (Hz) and the chance of differentiating or integrating.
    response_probability: float = 0.0
    lowpass_hz: tuple[float, float] = (8.0, 45.0)
    highpass_hz: tuple[float, float] = (0.2, 5.0)
    tilt_probability: float = 0.15
    #: Probability of rotating the horizontals by a random angle (unrotated 1/2 sensors).
    rotate_probability: float = 0.0
    #: Probability of zeroing one random component (a dead channel).
    channel_dropout_probability: float = 0.0


@dataclass
class LossConfig:
    #: Weight of the soft (teacher) term; 1 - alpha weighs the hard (analyst) term.
    alpha: float = 0.5
    temperature: float = 2.0


@dataclass
class ModelConfig:
    preset: str = "xiaonet-s"
    #: Extra XiaoNet constructor arguments overriding the preset's.
    overrides: dict[str, Any] = field(default_factory=dict)
    #: Start from these weights (a shipped preset name or a weights path) instead of a random
    #: initialisation, e.g. an early-warning student fine-tuned from the offline xiaonet-s.
    #: The layers must match: the same preset; window and streaming settings may differ.
    init_weights: str | None = None


@dataclass
class OptimConfig:
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    steps_per_epoch: int = 200
    max_epochs: int = 40
    #: Wall-clock cap (minutes); the run stops after the epoch that crosses it.
    max_minutes: float = 55.0
    #: Early stopping: epochs without dev F1 improvement by ``min_delta``.
    patience: int = 10
    min_delta: float = 0.002
    warmup_epochs: int = 1
    device: str = "cpu"
    threads: int = 1
    deterministic: bool = True
    progress: bool = True
    #: Early-warning students (``model.overrides.lookahead_s``): share of training windows
    #: drawn with an onset among the samples the student decides (the rest are random).
    onset_share: float = 0.5
    #: Early-warning students with ``model.overrides.padded_start``: share of training windows
    #: whose record starts inside them (before the samples the student decides), as a
    #: record's first windows are streamed.
    record_start_share: float = 0.0
    #: Score the selection split every N epochs (and after the last): early-warning
    #: students stream every record, which costs more than offline picking.
    score_every: int = 1


@dataclass
class EvalConfig:
    #: A pick within this many seconds of the analyst pick is a hit.
    tolerance_s: float = 0.5
    #: Thresholds tried when tuning P/S thresholds (on the validation split, else training traces).
    threshold_grid: list[float] = field(
        default_factory=lambda: [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7]
    )
    #: Threshold used for the per-epoch validation (or, without one, dev) F1.
    dev_threshold: float = 0.3
    #: Without a validation split, at most this many training traces per source tune the thresholds.
    tuning_traces_per_source: int = 120
    #: 0: keep the epoch with the best validation (else dev) F1. N > 0: keep the weights after
    #: epoch N, chosen beforehand (a refit on train + validation stations with the epoch a
    #: validation run chose); training stops there and no split is scored per epoch.
    keep_epoch: int = 0
    #: P and S thresholds chosen beforehand (e.g. by a validation run); null: tuned.
    p_threshold: float | None = None
    s_threshold: float | None = None


@dataclass
class TrainConfig:
    name: str = "xiaonet-s"
    seed: int = 20261127
    model: ModelConfig = field(default_factory=ModelConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def shared_path(self) -> Path:
        """The folder holding ``data/`` (config value, ``$XIAONET_SHARED``, ``<repo>/../shared``)."""
        return Path(self.data.shared_dir) if self.data.shared_dir else default_shared_dir()

    def source_path(self, source: SourceConfig) -> Path:
        path = Path(source.path)
        return path if path.is_absolute() else self.shared_path() / path


def config_from_dict(data: dict) -> TrainConfig:
    """Build and validate a :class:`TrainConfig`; unknown keys raise :class:`ConfigError`."""
    config = dataclass_from_dict(TrainConfig, data)
    validate_config(config)
    return config


def config_to_dict(config: TrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a JSON config file, apply ``KEY=VALUE`` overrides, validate."""
    path = Path(path)
    data = read_json_object(path)
    try:
        data = _apply_overrides_to_dict(data, overrides or [])
        return config_from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _apply_overrides_to_dict(data: dict, overrides: list[str]) -> dict:
    data = json.loads(json.dumps(data))
    defaults = config_to_dict(TrainConfig())
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not KEY=VALUE (e.g. train.lr=1e-3)")
        parts = key.strip().split(".")
        node, default_node = data, defaults
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                index = int(part) if part.isdigit() else -1
                if not 0 <= index < len(node):
                    raise ConfigError(f"override '{key}': index {part} out of range (0..{len(node) - 1})")
                node = node[index]
                default_node = default_node[0] if default_node else {}
                continue
            if part not in node:
                source = default_node if isinstance(default_node, dict) else {}
                if part not in source:
                    where = ".".join(parts[:depth]) or "config"
                    valid = ", ".join(sorted(source)) if source else "(none)"
                    raise ConfigError(f"override '{key}': unknown key '{part}' in {where}. Valid keys: {valid}.")
                node[part] = json.loads(json.dumps(source[part]))
            node = node[part]
            default_node = default_node.get(part, {}) if isinstance(default_node, dict) else {}
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ConfigError(f"override '{key}': index {last} out of range")
            node[int(last)] = _parse_value(text)
        else:
            node[last] = _parse_value(text)
    return data


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """A new config with dotted ``KEY=VALUE`` overrides applied (values parsed as JSON)."""
    return config_from_dict(_apply_overrides_to_dict(config_to_dict(config), overrides))


def validate_config(config: TrainConfig) -> None:
    """Value checks that types alone cannot express."""
    for i, source in enumerate(config.data.sources):
        if source.kind not in ("labelled", "continuous"):
            raise ConfigError(f"data.sources.{i}.kind: expected 'labelled' or 'continuous', got '{source.kind}'")
        if source.weight < 0:
            raise ConfigError(f"data.sources.{i}.weight: must be >= 0, got {source.weight}")
        if not 0 <= source.dev_fraction < 1:
            raise ConfigError(f"data.sources.{i}.dev_fraction: must be in [0, 1), got {source.dev_fraction}")
        if source.role not in SOURCE_ROLES:
            raise ConfigError(f"data.sources.{i}.role: expected one of {', '.join(SOURCE_ROLES)}, "
                              f"got '{source.role}'")
        if not 0 <= source.val_fraction < 1 or source.dev_fraction + source.val_fraction >= 1:
            raise ConfigError(f"data.sources.{i}.val_fraction: must be in [0, 1) and leave stations to train on "
                              f"beside dev_fraction {source.dev_fraction}, got {source.val_fraction}")
    if not 0 <= config.data.fit_fraction < 1:
        raise ConfigError(f"data.fit_fraction: must be in [0, 1), got {config.data.fit_fraction}")
    for network, role in config.data.networks.items():
        if role not in SOURCE_ROLES:
            raise ConfigError(f"data.networks.{network}: expected one of {', '.join(SOURCE_ROLES)}, got '{role}'")
    if config.data.label_shape not in ("gaussian", "triangle", "box"):
        raise ConfigError(
            f"data.label_shape: expected gaussian, triangle or box, got '{config.data.label_shape}'"
        )
    if not 0 <= config.loss.alpha <= 1:
        raise ConfigError(f"loss.alpha: must be in [0, 1], got {config.loss.alpha}")
    if config.loss.temperature <= 0:
        raise ConfigError(f"loss.temperature: must be > 0, got {config.loss.temperature}")
    if config.teacher.combine not in TEACHER_COMBINATIONS:
        raise ConfigError(f"teacher.combine: expected one of {', '.join(TEACHER_COMBINATIONS)}, "
                          f"got '{config.teacher.combine}'")
    for member in config.teacher.members:
        if member.name not in ("phasenet", "eqtransformer"):
            raise ConfigError(
                f"teacher.members: unknown teacher '{member.name}' (expected phasenet or eqtransformer)"
            )
    if config.eval.keep_epoch < 0 or config.eval.keep_epoch > config.train.max_epochs:
        raise ConfigError(f"eval.keep_epoch: must be in [0, train.max_epochs={config.train.max_epochs}], "
                          f"got {config.eval.keep_epoch}")
    if (config.eval.p_threshold is None) != (config.eval.s_threshold is None):
        raise ConfigError("eval.p_threshold and eval.s_threshold: give both or neither")
    if config.data.window_len < 256:
        raise ConfigError(f"data.window_len: must be >= 256 samples, got {config.data.window_len}")
    from xiaonet.models.presets import PRESETS

    if config.model.preset not in PRESETS:
        raise ConfigError(f"model.preset: unknown preset '{config.model.preset}'; known: "
                          f"{', '.join(sorted(PRESETS))}")


def check_trainable(config: TrainConfig) -> None:
    """What a training run needs beyond valid values, checked before any data is loaded: at
    least one source, every source folder present, and a student the preset and
    ``model.overrides`` can build. Raises :class:`ConfigError` (one line)."""
    if not config.data.sources:
        raise ConfigError("data.sources: empty; name at least one data folder to train on "
                          '(e.g. {"path": "data/labeled/phasenet_ncedc2019", "kind": "labelled"})')
    for i, source in enumerate(config.data.sources):
        folder = config.source_path(source)
        if not folder.is_dir():
            raise ConfigError(f"data.sources.{i}.path: {folder} is not a folder")
    from xiaonet.models.presets import build_student

    try:
        model = build_student(config.model.preset, **config.model.overrides)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"model.overrides: the student cannot be built from preset "
                          f"'{config.model.preset}' with {config.model.overrides}: {error}") from None
    padded_start = bool((model.early_warning or {}).get("padded_start"))
    if padded_start != (config.train.record_start_share > 0):
        raise ConfigError(
            "train.record_start_share: a student with padded_start is streamed with padded record starts "
            "and must be trained on them (a share above 0), and only such a student is"
            f" (padded_start {padded_start}, record_start_share {config.train.record_start_share})")
    if config.model.init_weights:
        initial_state(model, config.model.init_weights)


def initial_state(model, init_weights: str) -> dict:
    """The state dict of ``model.init_weights`` for ``model``; a :class:`ConfigError` (one
    line) when it does not load or its layers do not match the student's."""
    from xiaonet.models.presets import load_student

    try:
        state = load_student(init_weights).state_dict()
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise ConfigError(f"model.init_weights: cannot load '{init_weights}': {error}") from None
    own = model.state_dict()
    mismatched = sorted(set(own) ^ set(state) | {name for name in set(own) & set(state)
                                                 if own[name].shape != state[name].shape})
    if mismatched:
        raise ConfigError(f"model.init_weights: '{init_weights}' has other layers than the student built from "
                          f"model.preset (first mismatch: {mismatched[0]})")
    return state


def write_config(config: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(json.dumps(config_to_dict(config), indent=2) + "\n")
