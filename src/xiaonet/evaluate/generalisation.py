"""The network-held-out protocol as a study: every picker scored per held-out network.

A training config with ``role`` / ``data.networks`` defines which networks are validation
and which are test (:func:`xiaonet.distill.splits.load_data`). Every student variant of a recipe
study is trained with that config, so they share the split. This module scores pickers on
those records with the training run's scorer (:func:`xiaonet.distill.training.score_records`:
whole-trace picking, analyst picks on labelled networks, the teachers' consensus on
continuous ones, each network weighing the same):

* every variant on the **validation** networks, which is where recipes are chosen;
* only the finalists (and the teachers and STA/LTA) on the **test** networks, which choose
  nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

#: The splits of the protocol a picker can be scored on.
PROTOCOL_SPLITS = ("val", "test")
#: The fit figure: the last part of every continuous record of the training networks.
FIT_FRACTION = 0.2


@dataclass
class ProtocolScore:
    """One picker on one split: :func:`xiaonet.distill.training.score_records` output and its size."""

    label: str
    split: str
    scores: dict
    parameters: int | None = None
    variant: str | None = None


def load_protocol(config_path: str | Path, note: Callable[[str], None] | None = None):
    """The held-out records of a training config, with the consensus teachers' curves."""
    from xiaonet.distill.config import load_config
    from xiaonet.distill.splits import load_data
    from xiaonet.distill.teacher_labels import attach_teacher_labels, consensus_members

    config = load_config(config_path)
    bundle = load_data(config, note=note or (lambda message: None))
    held_out = [r for r in bundle.val + bundle.test if r.category == "continuous"]
    attach_teacher_labels(held_out, consensus_members(), config.teacher.cache_dir, config.teacher.batch_size,
                          keep_members=True)
    return config, bundle


def fit_records(config, bundle, fraction: float = FIT_FRACTION,
                note: Callable[[str], None] | None = None) -> tuple[list, bool]:
    """The last ``fraction`` of every continuous record of the training networks, with both
    consensus teachers' curves, and whether they are held out (``True``) or in-sample.

    The fit figure: does a student reproduce its teachers on the stations it learns from?
    A config with ``data.fit_fraction`` > 0 holds these hours out of training
    (``bundle.fit``); otherwise training saw every hour of these records (the sampler draws
    windows anywhere in them), the figure is in-sample, and the caller must say so. The
    teachers' curves are sliced from their cached annotation of the whole record (what
    training used); a record whose curves are not cached is left out with a note rather
    than annotated here.
    """
    from xiaonet.data.records import Record
    from xiaonet.distill.teacher_labels import TeacherLabelCache, consensus_members, teacher_key

    note = note or (lambda message: None)
    held_out = list(getattr(bundle, "fit", []))
    if held_out:
        attach = [r for r in held_out if not r.teacher_members]
        if attach:
            from xiaonet.distill.teacher_labels import attach_teacher_labels

            attach_teacher_labels(attach, consensus_members(), config.teacher.cache_dir,
                                  config.teacher.batch_size, keep_members=True)
        return held_out, True
    rate = config.data.sampling_rate
    caches = [(teacher_key(m), TeacherLabelCache(config.teacher.cache_dir, m)) for m in consensus_members()]
    records, missing = [], 0
    for record in bundle.train:
        if record.category != "continuous":
            continue
        curves = {}
        for key, cache in caches:
            cached, value = cache.load(record)
            if cached and value is not None:
                curves[key] = value
        if len(curves) < len(caches):
            missing += 1
            continue
        start = int(round(record.n_samples * (1.0 - fraction)))
        records.append(Record(name=f"{record.name}#last{fraction:g}", source=record.source, station=record.station,
                              waveform=record.waveform[:, start:], start_time=record.start_time + start / rate,
                              category="continuous",
                              teacher_members={key: value[:, start:] for key, value in curves.items()}))
    if missing:
        note(f"fit: {missing} training continuous record(s) without both teachers' cached curves left out "
             f"(cache {config.teacher.cache_dir})")
    return records, False


def score_protocol(picker, bundle, split: str, tolerance: float = 0.5) -> dict:
    from xiaonet.distill.selection import score_records

    if split not in PROTOCOL_SPLITS:
        raise ValueError(f"split '{split}' is not one of {', '.join(PROTOCOL_SPLITS)}")
    return score_records(picker, getattr(bundle, split), tolerance)


def _f(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _signed(value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{value:+.3f}"


def summary_row(score: ProtocolScore) -> dict:
    s = score.scores
    analyst, consensus = s.get("macro_analyst", {}), s.get("macro_consensus", {})
    p, ph = s.get("P", {}), s.get("S", {})
    row = {
        "picker": score.label,
        "parameters": f"{score.parameters:,}" if score.parameters else "–",
        "analyst_P": _f(analyst.get("P")), "analyst_S": _f(analyst.get("S")),
        "consensus_P": _f(consensus.get("P")), "consensus_S": _f(consensus.get("S")),
        "P_mae": _f(p.get("residual_mae")), "P_median": _signed(p.get("residual_median")),
        "S_mae": _f(ph.get("residual_mae")), "S_median": _signed(ph.get("residual_median")),
    }
    if score.label.startswith("stalta"):  # STA/LTA picks P only
        row.update(analyst_S="– (P only)", consensus_S="– (P only)")
    return row


SUMMARY_COLUMNS = [("picker", "picker"), ("parameters", "parameters"),
                   ("analyst_P", "P F1 analyst-picked networks"), ("analyst_S", "S F1 analyst-picked"),
                   ("consensus_P", "P F1 consensus networks"), ("consensus_S", "S F1 consensus"),
                   ("P_mae", "P MAE (s)"), ("P_median", "P median res. (s)"),
                   ("S_mae", "S MAE (s)"), ("S_median", "S median res. (s)")]


def variant_spread(scores: list[ProtocolScore]) -> list[dict]:
    """Mean and range over the seeds of each variant (rows that share ``variant``)."""
    groups: dict[str, list[ProtocolScore]] = {}
    for score in scores:
        if score.variant:
            groups.setdefault(score.variant, []).append(score)
    rows = []
    for variant, members in groups.items():
        row = {"variant": variant, "runs": len(members)}
        for key in ("macro_analyst", "macro_consensus"):
            for phase in "PS":
                values = [m.scores.get(key, {}).get(phase) for m in members]
                values = [v for v in values if v is not None]
                name = f"{key.split('_')[1]}_{phase}"
                row[name] = (f"{np.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})" if values else "–")
        rows.append(row)
    return rows


SPREAD_COLUMNS = [("variant", "variant"), ("runs", "seeds"),
                  ("analyst_P", "P F1 analyst-picked: mean (range)"), ("analyst_S", "S F1 analyst-picked"),
                  ("consensus_P", "P F1 consensus"), ("consensus_S", "S F1 consensus")]


def network_rows(scores: list[ProtocolScore]) -> list[dict]:
    """One row per held-out source (network group) and picker."""
    from xiaonet.scoring.consensus import is_consensus_teacher

    rows = []
    sources = sorted({s for score in scores for s in score.scores.get("sources", {})})
    for source in sources:
        for score in scores:
            entry = score.scores.get("sources", {}).get(source)
            if entry is None:
                continue
            reference = entry.get("reference", "analyst")
            teacher = reference == "consensus" and is_consensus_teacher(score.label)
            row = {"source": source, "reference": reference, "picker": score.label}
            for phase in "PS":
                v = entry.get(phase)
                if v is None or v["tp"] + v["fn"] == 0:
                    row.update({f"{phase}_f1": "–", f"{phase}_pr": "–", f"{phase}_n": "0", f"{phase}_med": "–"})
                    continue
                row[f"{phase}_n"] = str(v["tp"] + v["fn"])
                if teacher:
                    row.update({f"{phase}_f1": "(reference)", f"{phase}_pr": "–", f"{phase}_med": "–"})
                    continue
                row.update({f"{phase}_f1": _f(v["f1"]), f"{phase}_pr": f"{v['precision']:.2f} / {v['recall']:.2f}",
                            f"{phase}_med": _signed(v["residual_median"])})
            rows.append(row)
    return rows


NETWORK_COLUMNS = [("source", "held-out source (networks)"), ("reference", "reference"), ("picker", "picker"),
                   ("P_n", "P refs"), ("P_f1", "P F1"), ("P_pr", "P prec. / rec."), ("P_med", "P median res. (s)"),
                   ("S_n", "S refs"), ("S_f1", "S F1"), ("S_pr", "S prec. / rec."), ("S_med", "S median res. (s)")]


def split_statement(bundle, split: str) -> str:
    """Which sources and networks a split holds, in words."""
    records = getattr(bundle, split)
    by_source: dict[str, set[str]] = {}
    hours: dict[str, float] = {}
    for r in records:
        by_source.setdefault(r.source, set()).add(r.network)
        hours[r.source] = hours.get(r.source, 0.0) + r.n_samples / 360000.0
    parts = [f"{source} ({', '.join(sorted(nets)) if len(nets) <= 6 else f'{len(nets)} networks'}; "
             f"{sum(r.source == source for r in records)} records, {hours[source]:.1f} h)"
             for source, nets in sorted(by_source.items())]
    return "; ".join(parts)


__all__ = ["ProtocolScore", "load_protocol", "fit_records", "FIT_FRACTION", "score_protocol", "summary_row",
           "variant_spread",
           "network_rows", "split_statement", "SUMMARY_COLUMNS", "SPREAD_COLUMNS", "NETWORK_COLUMNS"]
