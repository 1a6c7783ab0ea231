"""``xiaonet study``: run study configs and regenerate ``docs/results.md`` with its figures.

A study config (``configs/studies/*.json``) names a question, the datasets, the pickers and
the kind of figure that answers it:

* ``baseline``: teachers and STA/LTA on every labelled dataset (the FINDINGS sanity check);
* ``size``: F1 against parameters and MACs per 30 s (how small can a picker be?);
* ``window``: F1 per input window length (10 s, 30 s, 60 s);
* ``distillation``: P and S residual distributions, distilled vs trained on analyst labels;
* ``generalisation``: the network-held-out protocol of a training config (``protocol``):
  every student variant on the validation networks, the finalists (``test: true``) and the
  teachers and STA/LTA on the test networks (:mod:`xiaonet.evaluate.generalisation`).

Each study runs :func:`xiaonet.evaluate.evaluation.evaluate` (and the pick benchmark), keeps the full
output in ``runs/studies/<name>/`` and writes its figures into ``docs/figures/``. A picker
whose weights do not exist yet is listed under "not measured yet" with the command that
makes them; no figure is ever filled in by hand.

    xiaonet study configs/studies/*.json --results docs/results.md
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

STUDY_KINDS = ("baseline", "size", "window", "distillation", "generalisation")


@dataclass
class StudyPicker:
    #: As ``xiaonet evaluate --picker`` reads it (preset, weights path, teacher, stalta).
    spec: str
    #: Name in tables and figures (default: from the spec).
    label: str | None = None
    #: Input window length in seconds (``window`` studies; the x axis).
    window_s: float | None = None
    #: The command that produces the weights, shown while they do not exist.
    how_to_make: str | None = None
    #: ``generalisation`` studies: the recipe this run belongs to (its seeds share it) and
    #: whether it is a finalist reported on the test networks (teachers and STA/LTA always are).
    variant: str | None = None
    test: bool = False


@dataclass
class StudyConfig:
    name: str
    title: str
    question: str
    kind: str
    #: Dataset folders, relative to the shared folder (``$XIAONET_SHARED``, ``<repo>/../shared``).
    pickers: list[StudyPicker]
    datasets: list[str] = field(default_factory=list)
    #: ``generalisation`` studies: the training config whose network split is the protocol.
    protocol: str | None = None
    tolerance: float = 0.5
    #: Extra copies of every dataset multiplied by these factors (physical-units test).
    gain: list[float] = field(default_factory=list)
    #: Globs of training ``split.csv`` files; their training records are left out.
    exclude_training: list[str] = field(default_factory=list)
    benchmark: bool = True
    seed: int = 20261127
    gallery: int = 3
    max_traces: int | None = None
    notes: str = ""
    #: Figures measured before, to compare with: objects with dataset, picker, phase, f1, source.
    reference: list[dict] = field(default_factory=list)


def load_study(path: str | Path) -> StudyConfig:
    """Read and check a study config (unknown keys and kinds are refused)."""
    from xiaonet.data.config_files import ConfigError, dataclass_from_dict, read_json_object

    path = Path(path)
    config = dataclass_from_dict(StudyConfig, read_json_object(path, "study config"), str(path))
    if config.kind not in STUDY_KINDS:
        raise ConfigError(f"{path}: kind '{config.kind}' is not one of {', '.join(STUDY_KINDS)}")
    if config.kind == "generalisation":
        if not config.protocol or not config.pickers:
            raise ConfigError(f"{path}: a generalisation study needs 'protocol' (a training config) and pickers")
    elif not config.datasets or not config.pickers:
        raise ConfigError(f"{path}: needs at least one dataset and one picker")
    if config.tolerance <= 0:
        raise ConfigError(f"{path}: tolerance must be > 0 s")
    return config


def shared_dir() -> Path:
    from xiaonet.distill.config import default_shared_dir

    return default_shared_dir()


# --- running one study ----------------------------------------------------------------------


def model_size(picker) -> tuple[float, float]:
    """(parameters, MACs per 3001-sample window) of a model picker; MACs only where every
    layer with weights is a convolution (XiaoNet, PhaseNet), else NaN. STA/LTA: (0, 0)."""
    import torch.nn as nn

    from xiaonet.models.model import count_macs, count_parameters

    model = getattr(picker, "model", None)
    if model is None:
        return 0.0, 0.0
    params = float(count_parameters(model))
    weighted = [m for m in model.modules() if list(m.parameters(recurse=False))]
    convolutional = all(isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.BatchNorm1d)) for m in weighted)
    if not convolutional:
        return params, float("nan")
    return params, float(count_macs(model, 3001))


def _row(evaluation, dataset: str, picker: str, phase: str) -> dict:
    for row in evaluation.rows:
        if row["dataset"] == dataset and row["picker"] == picker and row["phase"] == phase:
            return row
    return {}


def data_statement(evaluation) -> str:
    """One line naming the data a figure was measured on."""
    parts = []
    for d in evaluation.datasets:
        held_out = f", {d['excluded_training_rows']} training rows left out" if d.get("excluded_training_rows") else ""
        parts.append(f"{d['dataset']} ({d['evaluated_traces']} traces{held_out})")
    return "; ".join(parts)


def run_study(config: StudyConfig, runs_dir: Path, figures_dir: Path, progress: bool = True) -> str:
    """Run one study and return its markdown section for ``docs/results.md``."""
    import glob
    import shutil

    from xiaonet.evaluate.evaluation import evaluate, EvaluationSettings
    from xiaonet.data.records import DataError
    from xiaonet.evaluate.traces import LabelledDataset, training_records
    from xiaonet.picking.specs import parse_picker_spec, PickerSpec
    from xiaonet.evaluate.pick_benchmark import BenchmarkSettings, benchmark_pickers
    from xiaonet.evaluate.figures import plot_accuracy_vs_size, plot_f1_bars, plot_residual_comparison
    from xiaonet.evaluate.reports import (
        BENCHMARK_COLUMNS,
        benchmark_table_rows,
        markdown_table,
        metric_table_rows,
        write_evaluation_outputs,
    )
    from xiaonet.scoring.matching import score_picks

    lines = [f"## {config.title}", "", f"*Question.* {config.question}", ""]
    if config.notes:
        lines += [config.notes, ""]
    if config.kind == "generalisation":
        return "\n".join(lines + generalisation_section(config, progress)) + "\n"
    exclude: set[str] = set()
    split_files = sorted({p for pattern in config.exclude_training for p in glob.glob(pattern)})
    for path in split_files:
        exclude |= training_records(path)
    students_blocked = bool(config.exclude_training) and not split_files
    specs: list[PickerSpec] = []
    blocked: list[dict] = []
    for entry in config.pickers:
        spec = parse_picker_spec(entry.spec)
        spec.label = entry.label
        is_model_student = entry.spec not in ("stalta",) and entry.spec.split(":")[0] not in (
            "phasenet", "eqtransformer", "gpd")
        if students_blocked and is_model_student:
            blocked.append({"picker": spec.name, "reason": "no training split file matches "
                            f"{config.exclude_training}: a student is not scored without knowing its "
                            "training records"})
            continue
        specs.append(spec)
    datasets = []
    problems = []
    for folder in config.datasets:
        path = Path(folder) if Path(folder).is_absolute() else shared_dir() / folder
        for gain in [1.0, *config.gain]:
            try:
                datasets.append(LabelledDataset(path, gain=gain, exclude=exclude or None))
            except DataError as error:
                problems.append(str(error))
                break
    if not datasets:
        lines += ["**Not measured:** no dataset could be read:", ""] + [f"- {p}" for p in problems] + [""]
        return "\n".join(lines) + "\n"
    settings = EvaluationSettings(tolerance=config.tolerance, progress=progress)
    evaluation = evaluate(specs, datasets, settings, max_traces=config.max_traces,
                          note=lambda message: None)  # unavailable pickers are listed below
    evaluation.unavailable = blocked + evaluation.unavailable
    summaries = records = None
    out = runs_dir / config.name
    if config.benchmark and evaluation.pickers:
        summaries, records, _ = benchmark_pickers(
            evaluation.pickers, datasets, BenchmarkSettings(seed=config.seed),
            out / "benchmark_windows.csv", progress=progress)
    write_evaluation_outputs(evaluation, out, summaries, records, config.gallery, config.seed)
    primary = evaluation.datasets[0]["dataset"]
    statement = data_statement(evaluation)
    first = evaluation.datasets[0]
    held_out = (f", {first['excluded_training_rows']} training rows left out"
                if first.get("excluded_training_rows") else "")
    figure_data = f"{primary} ({first['evaluated_traces']} traces{held_out})"
    lines += [f"*Data.* {statement}. Split files: "
              f"{', '.join(split_files) if split_files else 'none (all rows)'}. Tolerance "
              f"{config.tolerance:g} s.", ""]

    # the study's own figure
    figures: list[tuple[str, Path]] = []
    label = f"{config.name}.png"
    measured = [p.name for p in evaluation.pickers]
    if config.kind == "size":
        points = []
        for picker in evaluation.pickers:
            params, macs = model_size(picker)
            points.append({"picker": picker.name, "params": params if math.isnan(params) else int(params),
                           "macs": macs if math.isnan(macs) else int(macs),
                           "P_f1": _row(evaluation, primary, picker.name, "P").get("f1", float("nan")),
                           "S_f1": _row(evaluation, primary, picker.name, "S").get("f1", float("nan"))
                           if "P only" not in _row(evaluation, primary, picker.name, "S").get("note", "")
                           else float("nan")})
        figures.append(("F1 against size", plot_accuracy_vs_size(
            points, figures_dir / label, f"F1 vs size on {primary} ({evaluation.datasets[0]['evaluated_traces']} "
            f"traces, tolerance {config.tolerance:g} s, each picker's operating threshold)")))
        lines += [markdown_table(points, [("picker", "picker"), ("params", "parameters"),
                                          ("macs", "MACs / 30 s window"), ("P_f1", f"P F1 ({primary})"),
                                          ("S_f1", f"S F1 ({primary})")]), "",
                  "MACs count convolutions only, so they are given for all-convolutional networks "
                  "(XiaoNet, PhaseNet) and n/a for EQTransformer (LSTM and attention layers).", ""]
    elif config.kind == "window":
        bars = []
        for entry in config.pickers:
            name = entry.label or parse_picker_spec(entry.spec).name
            if name in measured:
                bars.append({"picker": name, "window_s": entry.window_s,
                             "P_f1": _row(evaluation, primary, name, "P").get("f1", float("nan")),
                             "S_f1": _row(evaluation, primary, name, "S").get("f1", float("nan"))})
        figures.append(("F1 per window length", plot_f1_bars(
            bars, figures_dir / label, f"F1 per input window on {primary} "
            f"({evaluation.datasets[0]['evaluated_traces']} traces, tolerance {config.tolerance:g} s)")))
    elif config.kind == "distillation":
        residuals = {}
        for picker in evaluation.pickers:
            picks = [p for run in evaluation.runs if run.picker == picker.name and run.dataset == primary
                     for p in run.all_picks()]
            scores = score_picks(picks, evaluation.references(primary), config.tolerance)
            residuals[picker.name] = {phase: scores[phase].residuals for phase in "PS"}
        figures.append(("Residual distributions", plot_residual_comparison(
            residuals, figures_dir / label, f"Pick residuals on {primary} "
            f"({evaluation.datasets[0]['evaluated_traces']} traces, hits within {config.tolerance:g} s)",
            config.tolerance)))
    # the evaluation's own figures for the primary dataset, copied next to results.md
    safe = primary.replace("/", "_")
    for kind, caption in (("precision_recall", "Precision-recall"), ("residuals", "Residual histograms"),
                          ("gallery", "Example traces")):
        source = out / "figures" / f"{kind}_{safe}.png"
        if source.is_file():
            target = figures_dir / f"{config.name}_{kind}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            figures.append((caption, target))

    compact = [("dataset", "dataset"), ("picker", "picker"), ("phase", "phase"), ("threshold", "threshold"),
               ("precision", "precision"), ("recall", "recall"), ("f1", "F1"),
               ("residual_mae", "MAE (s)"), ("residual_rmse", "RMSE (s)"),
               ("residual_outlier_fraction", "outliers >0.2 s"), ("best_f1", "best F1"),
               ("best_threshold", "at"), ("note", "note")]
    lines += ["### Whole-trace picking", "", markdown_table(metric_table_rows(evaluation.rows), compact), ""]
    if config.reference:
        compared = []
        for ref in config.reference:
            row = _row(evaluation, ref.get("dataset", ""), ref.get("picker", ""), ref.get("phase", ""))
            measured = row.get("f1", float("nan"))
            compared.append({**ref, "measured": measured,
                             "difference": round(measured - float(ref.get("f1", "nan")), 3)})
        lines += ["### Against figures measured before", "",
                  markdown_table(compared, [("dataset", "dataset"), ("picker", "picker"), ("phase", "phase"),
                                            ("f1", "F1 before"), ("measured", "F1 now"),
                                            ("difference", "difference"), ("source", "source")]), ""]
    if summaries:
        lines += ["### Pick benchmark (tasks 1-3)", "",
                  markdown_table(benchmark_table_rows(summaries), BENCHMARK_COLUMNS), ""]
    if evaluation.unavailable:
        lines += ["### Not measured yet", ""]
        how = {(e.label or parse_picker_spec(e.spec).name): e.how_to_make for e in config.pickers}
        for item in evaluation.unavailable:
            hint = how.get(item["picker"])
            reason = item["reason"].rstrip(".")
            lines.append(f"- `{item['picker']}`: {reason}." + (f" Make it with `{hint}`." if hint else ""))
        lines.append("")
    for caption, path in figures:
        lines += [f"**{caption}**, measured on {figure_data}:", "",
                  f"![{caption}](figures/{Path(path).name})", ""]
    lines += [f"Full tables, CSV/JSON and the benchmark windows: `{out}/`.", ""]
    if problems:
        lines += ["Problems:", ""] + [f"- {p}" for p in problems] + [""]
    return "\n".join(lines) + "\n"


def generalisation_section(config: StudyConfig, progress: bool = True) -> list[str]:
    """Markdown lines of a ``generalisation`` study (see :mod:`xiaonet.evaluate.generalisation`)."""
    from tqdm import tqdm

    from xiaonet.picking.specs import build_picker, parse_picker_spec
    from xiaonet.evaluate.generalisation import (NETWORK_COLUMNS, SPREAD_COLUMNS, SUMMARY_COLUMNS, ProtocolScore,
                                        load_protocol, network_rows, score_protocol, split_statement,
                                        summary_row, variant_spread)
    from xiaonet.evaluate.reports import markdown_table
    from xiaonet.picking.loading import TEACHER_NAMES

    _, bundle = load_protocol(config.protocol)
    lines = [f"*Protocol.* The network split of `{config.protocol}`. Validation networks (recipes, epochs "
             f"and thresholds are chosen here): {split_statement(bundle, 'val')}. Test networks (never "
             f"trained on, never used to choose anything): {split_statement(bundle, 'test')}. Analyst-picked "
             "networks are scored against the analyst picks, continuous ones against the picks PhaseNet and "
             "EQTransformer agree on (within 0.3 s; a pick of one teacher alone is neither rewarded nor "
             "penalised). Every F1 is the mean over networks (sources) of that kind that have reference "
             f"picks of the phase; a pick within {config.tolerance:g} s is a hit; residuals are pooled.", ""]
    val_scores, test_scores, missing = [], [], []
    for entry in tqdm(config.pickers, desc="generalisation pickers", disable=not progress):
        spec = parse_picker_spec(entry.spec)
        spec.label = entry.label
        try:
            picker = build_picker(spec)
        except (ValueError, FileNotFoundError, RuntimeError) as error:
            missing.append((spec.name, str(error), entry.how_to_make))
            continue
        params, _ = model_size(picker)
        student = entry.spec.split(":")[0].lower() not in (*TEACHER_NAMES, "stalta")
        if student:
            val_scores.append(ProtocolScore(spec.name, "val", score_protocol(picker, bundle, "val", config.tolerance),
                                            int(params), entry.variant))
        if entry.test or not student:
            test_scores.append(ProtocolScore(spec.name, "test", score_protocol(picker, bundle, "test",
                                                                                config.tolerance),
                                             int(params) if params else None, entry.variant))
    lines += ["### Validation networks: every variant", "",
              markdown_table([summary_row(s) for s in val_scores], SUMMARY_COLUMNS), ""]
    spread = [row for row in variant_spread(val_scores) if row["runs"] > 1]
    if spread:
        lines += ["### Run-to-run spread (seeds of the same recipe, validation networks)", "",
                  markdown_table(spread, SPREAD_COLUMNS), ""]
    if test_scores:
        lines += ["### Test networks: the finalists against the teachers and STA/LTA", "",
                  "Teachers score 1 on the consensus networks by construction (they are the reference); "
                  "their rows there are marked *(reference)*.", "",
                  markdown_table([summary_row(s) for s in test_scores], SUMMARY_COLUMNS), "",
                  "Per held-out source:", "", markdown_table(network_rows(test_scores), NETWORK_COLUMNS), ""]
    if missing:
        lines += ["### Not measured yet", ""]
        for name, reason, how in missing:
            lines.append(f"- `{name}`: {reason.rstrip('.')}." + (f" Make it with `{how}`." if how else ""))
        lines.append("")
    return lines
