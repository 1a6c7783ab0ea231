"""Model cards for trained students: teacher, data, split, size, cost and dev metrics.

The baselines (PhaseNet, EQTransformer, STA/LTA) are scored on exactly the dev records of
the run and through the same code path as the student
(:func:`xiaonet.distill.training.score_records`: whole-trace picking, 0.5 s tolerance).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from xiaonet.distill.config import TrainConfig
from xiaonet.distill.splits import DataBundle

BASELINES = ("phasenet:original", "eqtransformer:original", "stalta")


def score_baselines(bundle: DataBundle, config: TrainConfig, names=BASELINES,
                    note: Callable[[str], None] | None = None) -> dict:
    """Test-network and dev scores of the teachers and STA/LTA (``{name: {split: scores}}``);
    a teacher that cannot be loaded is noted and skipped."""
    from xiaonet.picking.loading import load_picker
    from xiaonet.models.teachers import TeacherUnavailable
    from xiaonet.distill.selection import score_records

    results = {}
    for name in names:
        try:
            picker = load_picker(name)
        except TeacherUnavailable as error:
            if note:
                note(f"baseline {name} skipped: {error}")
            continue
        results[name] = {split: score_records(picker, records, config.eval.tolerance_s)
                         for split, records in (("test", bundle.test), ("dev", bundle.dev)) if records}
    return results


def _fmt(value, digits=3) -> str:
    if value is None:
        return "–"
    try:
        if value != value:  # NaN
            return "–"
    except TypeError:
        return str(value)
    return f"{value:.{digits}f}"


def _row(name: str, scores: dict) -> str:
    p, s = scores.get("P", {}), scores.get("S", {})
    return (f"| {name} | {_fmt(p.get('f1'))} | {_fmt(p.get('precision'))} | {_fmt(p.get('recall'))} | "
            f"{_fmt(p.get('residual_mae'))} | {_fmt(s.get('f1'))} | {_fmt(s.get('precision'))} | "
            f"{_fmt(s.get('recall'))} | {_fmt(s.get('residual_mae'))} |")


def _table(entries: dict[str, dict], source: str | None = None) -> list[str]:
    lines = [
        "| picker | P F1 | P precision | P recall | P MAE (s) | S F1 | S precision | S recall | S MAE (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, scores in entries.items():
        if source is not None:
            scores = scores.get("sources", {}).get(source)
            if scores is None:
                continue
        lines.append(_row(name, scores))
    return lines


def _shortfalls(entries: dict[str, dict], student: str) -> list[str]:
    """Sentences naming where the student is below a teacher on analyst-picked test networks
    (by more than 0.03 F1 against PhaseNet, 0.02 against EQTransformer), so no reader has to
    find them in the table."""
    mine = entries.get(student, {}).get("sources", {})
    lines = []
    for teacher, margin in (("phasenet:original", 0.03), ("eqtransformer:original", 0.02)):
        theirs = entries.get(teacher, {}).get("sources", {})
        below = []
        for source, scores in sorted(mine.items()):
            if scores.get("reference") != "analyst" or source not in theirs:
                continue
            for phase in "PS":
                a, b = scores.get(phase), theirs[source].get(phase)
                if a and b and a["tp"] + a["fn"] > 0 and a["f1"] < b["f1"] - margin:
                    below.append(f"{source} {phase} {a['f1']:.3f} vs {b['f1']:.3f}")
        name = teacher.split(":")[0]
        name = {"phasenet": "PhaseNet", "eqtransformer": "EQTransformer"}[name]
        if below:
            lines += [f"Below {name} by more than {margin:.2f} F1 on analyst-picked test networks: "
                      + "; ".join(below) + ".", ""]
        elif theirs:
            lines += [f"Nowhere below {name} by more than {margin:.2f} F1 on the analyst-picked test networks.", ""]
    if lines:
        lines += ["What was tried to close the gaps, and what did not help: docs/training.md "
                  "(*Shipped students*) and the *Generalisation* study in docs/results.md.", ""]
    return lines


def _split_of(baseline: dict, split: str) -> dict:
    """A baseline's scores on one split (run folders before the test split hold dev only)."""
    if "test" in baseline or "dev" in baseline:
        return baseline.get(split, {})
    return baseline if split == "dev" else {}


def _network_table(entries: dict[str, dict], student: str) -> list[str]:
    """One row per held-out network (source) and picker, then the mean over networks."""
    from xiaonet.scoring.consensus import is_consensus_teacher

    sources = sorted({s for e in entries.values() for s in e.get("sources", {})})
    lines = [
        "| held-out network (source) | reference | picker | P F1 | P precision | P recall | P MAE (s) | "
        "P median residual (s) | S F1 | S precision | S recall | S MAE (s) | S median residual (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for source in sources:
        for name, scores in entries.items():
            entry = scores.get("sources", {}).get(source)
            if entry is None:
                continue
            reference = entry.get("reference", "analyst")
            is_reference = reference == "consensus" and is_consensus_teacher(name)
            cells = []
            for phase in "PS":
                v = entry.get(phase, {})
                if is_reference:
                    cells += ["(reference)"] + ["–"] * 4
                else:
                    cells += [_fmt(v.get("f1")), _fmt(v.get("precision")), _fmt(v.get("recall")),
                              _fmt(v.get("residual_mae")), _fmt(v.get("residual_median"))]
            lines.append(f"| {source} | {reference} | {name} | " + " | ".join(cells) + " |")
    for reference in ("analyst", "consensus"):
        for name, scores in entries.items():
            macro = scores.get(f"macro_{reference}")
            if not macro:
                continue
            is_reference = reference == "consensus" and is_consensus_teacher(name)
            p, s = ("(reference)", "(reference)") if is_reference else (_fmt(macro.get("P")), _fmt(macro.get("S")))
            if name.startswith("stalta"):
                s = "– (P only)"
            lines.append(f"| **mean over {reference} networks** | {reference} | {name} | {p} | | | | | "
                         f"{s} | | | | |")
    return lines


def render_model_card(config: TrainConfig, run_dir: Path, model, metrics: dict, baselines: dict,
                      manifest: dict, command: str) -> str:
    """The model card as Markdown."""
    from xiaonet.models.model import count_macs, count_parameters

    params = count_parameters(model)
    macs = count_macs(model, 3001)
    weights_kb = (run_dir / "model" / f"{config.name}.pt").stat().st_size / 1024
    teachers = " + ".join(f"{m.name} `{m.weights}`" for m in config.teacher.members)
    student = f"**{config.name}** (this model)"
    entries = {student: metrics["dev"], **{n: _split_of(b, "dev") for n, b in baselines.items()}}
    test_entries = {student: metrics.get("test", {}),
                    **{n: _split_of(b, "test") for n, b in baselines.items()}}
    sources = manifest["sources"]
    chosen_on_val = metrics.get("selection_split") == "val"
    fixed = metrics.get("selection_split") == "fixed"
    tuned_on = metrics["thresholds"]["P"].get("tuned_on", "train")
    tuned_text = {"val": "tuned on the validation split (held-out networks and stations), never on dev or test",
                  "train": "tuned on training traces, never on dev",
                  "config": "chosen beforehand by a validation run, never on dev"}[tuned_on]
    splits = tuple(split for split in ("train", "val", "dev", "test")
                   if split == "train" or any(e.get(f"{split}_records") for e in sources.values()))
    network_section = [
        *(["## Networks it never trained on (the figures to expect on a new network)",
            "",
            "Whole-trace picking of every record of the test networks: never trained on, never used to "
            "choose an epoch, a threshold or a recipe. Analyst-picked networks are scored against the "
            f"analyst picks; continuous networks against the teachers' consensus (PhaseNet and "
            "EQTransformer agree within 0.3 s; a pick only one teacher made is neither rewarded nor "
            f"penalised), so the teachers are the reference there. A pick within {config.eval.tolerance_s} s "
            "is a hit; residual = pick - reference. Teachers at threshold 0.3; STA/LTA with its defaults.",
            "",
            *_network_table(test_entries, student),
            "",
            *_shortfalls(test_entries, student),
            ] if metrics.get("test") else []),
    ]
    lines = [
        f"# Model card: {config.name}",
        "",
        f"XiaoNet student distilled from {f'the ensemble ({config.teacher.combine} of P and S) of ' if len(config.teacher.members) > 1 else ''}"
        f"{teachers} (SeisBench), plus analyst picks as hard labels "
        f"({config.data.label_shape}, sigma {config.data.label_sigma_s} s), loss alpha {config.loss.alpha}, "
        f"temperature {config.loss.temperature}.",
        "",
        *network_section,
        "## Size and cost",
        "",
        f"- parameters: {params:,}",
        f"- multiply-accumulates per 3001-sample window: {macs / 1e6:.2f} M",
        f"- weights file: {weights_kb:.1f} KB (`{config.name}.pt`)",
        f"- input: 3 components ZNE at {config.data.sampling_rate:g} Hz, any length; output P / S / noise "
        "probabilities per sample",
        f"- thresholds ({tuned_text}): P {metrics['thresholds']['P']['threshold']}, "
        f"S {metrics['thresholds']['S']['threshold']}",
        "",
        "## Data",
        "",
        "| source | kind | " + " | ".join(f"{s} records | {s} stations | {s} station-hours" for s in splits) + " |",
        "|---|---|" + "---|---|---|" * len(splits),
    ]
    for name, entry in sources.items():
        lines.append(
            f"| {name} | {entry['kind']} | " + " | ".join(
                f"{entry.get(f'{s}_records', 0)} | {entry.get(f'{s}_stations', 0)} | "
                f"{entry.get(f'{s}_station_hours', 0.0):.2f}" for s in splits) + " |"
        )
    train_hours = sum(e["train_station_hours"] for e in sources.values())
    held_out = {role: [] for role in ("validation", "test")}
    for source in config.data.sources:
        if source.role in held_out:
            held_out[source.role].append(f"{Path(source.path).name} (whole source)")
    for network, role in sorted(config.data.networks.items()):
        if role in held_out:
            held_out[role].append(network)
    lines += [
        "",
        f"Training: {sum(e['train_records'] for e in sources.values())} records, {train_hours:.1f} station-hours "
        f"(windows of {config.data.window_len} samples at random offsets, drawn by source weight). "
        + (f"Held out by network: validation {', '.join(held_out['validation']) or 'none'} (choose the epoch and "
           f"the thresholds), test {', '.join(held_out['test']) or 'none'} (only reported; never trained on, "
           "never used to choose anything). " if any(held_out.values()) else "")
        + f"Split by station within the training networks (seed {config.seed}): "
        f"{len(manifest['dev_stations'])} dev stations, never trained on and never used to choose anything"
        + (f"; {len(manifest.get('val_stations', []))} validation stations (not trained on) choose the epoch "
           "and the thresholds" if chosen_on_val and manifest.get("val_stations") else "")
        + "; the list of records is in the run folder's `split.csv`."
        + "".join(f" {n.rstrip('.')}." for n in manifest.get("notes", []) if "shorter than" in n),
        "",
        f"Trained {metrics['epochs_run']} epochs of {config.train.steps_per_epoch} x {config.train.batch_size} "
        f"windows in {metrics['train_minutes']} minutes (1 torch thread); weights from epoch "
        f"{metrics['best_epoch']} "
        + ("(fixed beforehand in the config, `eval.keep_epoch`: no epoch was chosen on data)." if fixed else
           f"(best {'validation' if chosen_on_val else 'dev'} F1)."),
        "",
        "## Held-out stations of the training networks (secondary: in-network)",
        "",
        "These stations share networks, instruments and days with the training data, so they "
        "overstate what a new network gets. Whole-trace picking of every dev record, a pick within "
        f"{config.eval.tolerance_s} s of the analyst pick is a hit (one-to-one), scored by `xiaonet.scoring.matching`. "
        "Teachers at threshold 0.3; STA/LTA with its defaults. Same records, same code path for every picker.",
        "",
        "All dev records (P over the sources with P picks, S over those with S picks):",
        "",
        *_table(entries),
    ]
    for source in sorted({s for e in entries.values() for s in e.get("sources", {})}):
        lines += ["", f"`{source}` only:", "", *_table(entries, source)]
    lines += [
        "",
        ("Epoch and thresholds were chosen by a validation run before this refit (on train + validation "
         "stations), so the dev figures are not tuned on dev." if fixed else
         "Epoch and thresholds were chosen on the validation stations, so the dev figures are not tuned on "
         "dev." if chosen_on_val else
         "Dev F1 selected the epoch, so the dev figures are slightly optimistic; thresholds were tuned on "
         "training traces only.")
        + " The dev split is small (tens of traces): differences of a few hundredths are "
        "within noise. Data outside `../shared` may behave differently.",
        "",
        "## Reproduce",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Code version: {metrics.get('code_version', '')}",
        "",
    ]
    return "\n".join(lines)


def write_model_card(config: TrainConfig, run_dir: Path, model, metrics: dict, baselines: dict,
                     command: str) -> Path:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    text = render_model_card(config, run_dir, model, metrics, baselines, manifest, command)
    path = run_dir / "model" / f"{config.name}.md"
    path.write_text(text)
    return path


def _agreement_row(name: str, scores: dict) -> str:
    cells = []
    for phase in "PS":
        v = scores.get(phase, {})
        n = v.get("tp", 0) + v.get("fn", 0) if v else None
        cells += [_fmt(v.get("precision")), _fmt(v.get("recall")), _fmt(v.get("f1")), str(n if n is not None else "–")]
    return f"| {name} | " + " | ".join(cells) + " |"


def render_adaptation_card(summary: dict) -> str:
    """The card of ``xiaonet adapt`` (``PREFIX.md``): the data used, the agreement with the
    teachers' consensus on held-out hours of that data before and after, the thresholds."""
    import obspy

    def when(t):
        return str(obspy.UTCDateTime(t))[:19] if t is not None else "–"

    labelled, before, settings = summary["labelled"], summary["before"], summary["settings"]
    start = summary["start_student"]
    thresholds = summary["thresholds"]
    inputs = f"--sds {settings['sds']}" if settings.get("sds") else " ".join(settings["inputs"])
    stations = sorted({s for part in labelled.values() for s in part["stations"]})
    header = ("| picker | P precision | P recall | P F1 | P reference picks | S precision | S recall | S F1 | "
              "S reference picks |")
    lines = [
        f"# Model card: {summary['name']} ({start} adapted to your data)",
        "",
        f"`xiaonet adapt` distilled **{start}** further on unlabelled data of this network: "
        f"PhaseNet and EQTransformer (SeisBench `original` weights) labelled a random sample of it, "
        f"combined by their **{summary['teacher']}**, and the student learned "
        + ("those labels only (loss alpha 1, " if summary.get("alpha", 1.0) == 1.0 else
           f"those labels and your analyst picks (loss alpha {summary['alpha']:g}: the teachers' weight; ")
        + "temperature 2), starting from its weights. Use it as any student: "
        f"`xiaonet pick FILES --picker {settings['out']}`, `xiaonet stream --picker {settings['out']}`, "
        f"`xiaonet export {settings['out']} --format onnx --out {summary['name']}.onnx`.",
        "",
        "## Agreement with the teachers on held-out hours of your data",
        "",
        "The reference is the teachers' consensus: a pick of a phase that PhaseNet and EQTransformer "
        "(threshold 0.3) both make within 0.3 s, at their mean time; a pick only one of them made is "
        "neither rewarded nor penalised. A pick within 0.5 s is a hit. Scored on the **report** part "
        f"({labelled['report']['station_hours']:.2f} station-hours, {labelled['report']['records']} records), "
        "which was never trained on and never used to choose anything. Agreement with the teachers is "
        "not accuracy: it cannot show the student beating them.",
        "",
        header,
        "|---|---|---|---|---|---|---|---|---|",
        _agreement_row(f"{start}, its own thresholds (P {before['own_thresholds'].get('P_threshold', '–')}, "
                       f"S {before['own_thresholds'].get('S_threshold', '–')})", before["own"]),
        _agreement_row(f"{start}, thresholds tuned on the tuning part (P {before['tuned_thresholds'].get('P', '–')}, "
                       f"S {before['tuned_thresholds'].get('S', '–')})", before["tuned"]),
        _agreement_row(f"**{summary['name']}** (adapted; P {thresholds.get('P', {}).get('threshold', '–')}, "
                       f"S {thresholds.get('S', {}).get('threshold', '–')})", summary["after"]),
        "",
        "Differences of a few hundredths are noise when the reference holds few picks (the counts are in "
        "the table).",
        "",
        *(_analyst_section(summary, start) if summary.get("analyst_picks") else []),
        "## Held-out hours, and how the thresholds were chosen",
        "",
        f"Each instrument's data are split in time: the first {1 - settings['held_out']:.0%} trains, the "
        f"last {settings['held_out']:.0%} is held out and halved in time: the **tuning** part chooses the "
        "epoch (mean of P and S F1 against the consensus at threshold 0.3) and then the P and S thresholds "
        "(the grid " + ", ".join(f"{t:g}" for t in _threshold_grid()) + ", each maximising F1 against the "
        "consensus); the **report** part is scored once, above. Event files are never cut: a file goes "
        "to the part most of it lies in.",
        "",
        f"Thresholds: P {thresholds.get('P', {}).get('threshold', '–')} (tuning F1 "
        f"{_fmt(thresholds.get('P', {}).get('tuning_f1'))}), S {thresholds.get('S', {}).get('threshold', '–')} "
        f"(tuning F1 {_fmt(thresholds.get('S', {}).get('tuning_f1'))}); saved as the `default_args` of "
        f"`{settings['out']}.json`. On the tuning part the adapted student agrees P "
        f"{_fmt(summary['after_tuning'].get('P', {}).get('f1'))} / S "
        f"{_fmt(summary['after_tuning'].get('S', {}).get('f1'))} with those thresholds.",
        "",
        "## Data used",
        "",
        f"Inputs: `{inputs}`" + (f", {settings['start'] or '…'} to {settings['end'] or '…'}"
                                  if settings.get("start") or settings.get("end") else "")
        + (f", select {', '.join(settings['select'])}" if settings.get("select") else "")
        + f": {summary['files']} file(s), {len(summary['instruments'])} instrument(s) "
        f"({', '.join(summary['instruments'])}), {summary['available_station_hours']:.2f} station-hours.",
        "",
        "| part | station-hours available | station-hours labelled and used | records | stations | from | to |",
        "|---|---|---|---|---|---|---|",
    ]
    for part, what in (("train", "train"), ("tune", "tuning"), ("report", "report")):
        entry = labelled[part]
        lines.append(f"| {what} | {summary['available'][part]:.2f} | {entry['station_hours']:.2f} | {entry['records']} | "
                     f"{len(entry['stations'])} | {when(entry['first'])} | {when(entry['last'])} |")
    lines += [
        "",
        f"Stations: {', '.join(stations)}. Segments of about {settings['segment_s']:g} s were drawn at random "
        f"(seed {settings['seed']}) in the proportions 4 : 1 : 1 until the labelling share of the time budget "
        "was spent; the list (and which were labelled) is the run folder's `data/segments.csv`.",
        "",
        "## Training",
        "",
        f"{summary['epochs_run']} epoch(s) of {summary['steps_per_epoch']} batches of {settings['batch_size']} windows "
        f"of {summary['window_len']} samples (the loop of `xiaonet train`, learning rate {settings['lr']:g}, "
        f"cosine schedule over {settings['steps']} batches); weights of epoch {summary['best_epoch']}. "
        f"Time: {summary['label_minutes']:.1f} min labelling, {summary['train_minutes']} min training, "
        f"{summary['minutes']:.1f} min in all (budget {settings['minutes']:g} min, {settings['threads']} torch "
        "thread(s)). Per-epoch loss and agreement on the tuning part: the run folder's `train/history.csv`.",
        "",
    ]
    notes = summary.get("notes", [])
    if notes:
        lines += ["Notes:", "", *[f"- {n}" for n in notes[:20]], ""]
    return "\n".join(lines)


def _analyst_section(summary: dict, start: str) -> list[str]:
    counts, before = summary["analyst_picks"], summary["before"]
    lines = [
        "## Your analyst picks",
        "",
        f"Analyst picks inside the labelled records (P / S): training {counts['train'][0]} / {counts['train'][1]}, "
        f"tuning {counts['tune'][0]} / {counts['tune'][1]}, report {counts['report'][0]} / {counts['report'][1]}. "
        "Training records holding both a P and an S pick trained on them as hard labels (their other samples "
        "as noise, so give every arrival of such a record).",
        "",
    ]
    if summary.get("after_analyst"):
        lines += [
            "On the report records that hold analyst picks, against those picks (every other pick on them is "
            "a false positive):",
            "",
            "| picker | P precision | P recall | P F1 | P reference picks | S precision | S recall | S F1 | "
            "S reference picks |",
            "|---|---|---|---|---|---|---|---|---|",
            _agreement_row(f"{start}, its own thresholds", before.get("analyst_own", {})),
            _agreement_row(f"{start}, thresholds tuned on the tuning part", before.get("analyst_tuned", {})),
            _agreement_row(f"**{summary['name']}** (adapted)", summary["after_analyst"]),
            "",
        ]
    return lines


def _threshold_grid() -> list[float]:
    from xiaonet.distill.config import EvalConfig

    return EvalConfig().threshold_grid


def write_adaptation_card(path: Path, summary: dict) -> Path:
    Path(path).write_text(render_adaptation_card(summary))
    return Path(path)
