"""Pooled protocol scores: per-record counts that sum to the protocol's totals, teachers marked
as the reference on consensus records, and ``xiaonet evaluate --protocol`` in-process."""

from __future__ import annotations

import numpy as np
import pytest

from tests.evaluate.test_generalisation import attach, protocol_config, protocol_data  # noqa: F401  (fixture)
from tests.distill.test_training import FakeTeacher, tiny_config, tiny_data  # noqa: F401  (fixture)
from xiaonet.distill.splits import load_data
from xiaonet.distill.selection import score_records
from xiaonet.evaluate.pooled import RecordScore, pool, pooled_table, score_each_record
from xiaonet.picking.pickers import ModelPicker
from xiaonet.picking.stalta import StaLtaPicker


def test_record_counts_sum_to_the_protocol_totals(protocol_data, tmp_path):  # noqa: F811
    from xiaonet.models.presets import build_student

    config = protocol_config(protocol_data, tmp_path / "cache")
    config.data.sources[0].role = "validation"
    bundle = load_data(config)
    attach(config, bundle)
    records = bundle.val + bundle.test
    for picker in (StaLtaPicker(), ModelPicker(build_student("xiaonet-xs"))):
        per_record = score_each_record(picker, records)
        totals = score_records(picker, records)
        assert {s.kind for s in per_record} == {"analyst", "consensus"}
        for phase in ("P", "S"):
            summed = np.sum([s.counts[phase] for s in per_record if phase in s.counts], axis=0)
            assert tuple(summed) == (totals[phase]["tp"], totals[phase]["fp"], totals[phase]["fn"])


def _record(name, kind, p, s=None):
    counts = {"P": p} if s is None else {"P": p, "S": s}
    return RecordScore(name, "src", kind, counts, {phase: np.full(c[0], 0.01) for phase, c in counts.items()})


def test_pool_marks_the_teachers_as_the_reference_and_compares_on_common_records():
    student = [_record("a", "analyst", (1, 0, 0), (1, 0, 0)), _record("b", "analyst", (1, 1, 0), (0, 0, 1)),
               _record("c", "consensus", (1, 0, 0), (1, 0, 0))]
    teacher = [_record("a", "analyst", (1, 0, 0), (1, 0, 0)), _record("b", "analyst", (1, 0, 0), (1, 0, 0))]
    figures = pool({"xiaonet-s": student, "phasenet": teacher}, "validation", baseline="phasenet",
                   resamples=200, reference_pickers=("phasenet",))
    by = {(f.picker, f.kind): f for f in figures}
    assert by[("xiaonet-s", "analyst")].n_reference == {"P": 2, "S": 2}
    assert by[("xiaonet-s", "analyst")].f1["P"].value == 0.8  # (2, 1, 0)
    assert by[("xiaonet-s", "analyst")].difference["P"].value == 0.8 - 1.0
    assert by[("phasenet", "consensus")].reference
    assert by[("xiaonet-s", "consensus")].baseline_note == "baseline is the reference"
    table = pooled_table(figures, "phasenet")
    assert "| phasenet | validation | consensus | 0 | (reference) | (reference) |" in table
    assert "| xiaonet-s | validation | analyst | 2 | 0.800 [" in table
    assert "P F1 − phasenet [90%]" in table and "– (baseline is the reference)" in table


def test_evaluate_protocol_prints_the_pooled_table(protocol_data, tmp_path, capsys):  # noqa: F811
    from xiaonet.cli import main
    from xiaonet.distill.config import write_config
    from xiaonet.models.presets import build_student

    config = protocol_config(protocol_data, tmp_path / "cache")
    config.data.sources[0].role = "validation"
    bundle = load_data(config)
    attach(config, bundle)  # fills the teacher cache the protocol reads
    write_config(config, tmp_path / "protocol.json")
    build_student("xiaonet-xs").save(str(tmp_path / "student"))
    # a student that trained on the labelled records must not be scored on them
    bundle.val, bundle.test, bundle.dev = [], [], []
    bundle.train = [r for r in load_data(config).val if r.category != "continuous"][:1]
    bundle.write_split(tmp_path / "student.split.csv")
    out = tmp_path / "pooled"
    argv = ["evaluate", "--protocol", str(tmp_path / "protocol.json"), "--split", "validation,test",
            "--picker", f"{tmp_path / 'student'},stalta", "--baseline", "stalta", "--resamples", "50",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "P F1 − stalta [90%]" in printed and "| stalta | test | consensus |" in printed
    assert "1 left out: a student trained on them" in printed
    assert "| test | continuous_yy | consensus |" in printed
    csv_text = (out / "pooled.csv").read_text()
    assert csv_text.startswith("picker,split,kind,records")
    assert bundle.train[0].name not in (out / "records.csv").read_text()
    assert main(argv[:-3] + ["--split", "training", "--out", str(out), "--no-progress"]) == 2


def _fit_config(root, cache, fit_fraction=0.0):
    config = protocol_config(root, cache)
    config.data.networks = {}  # YY trains: its continuous record is a training station
    config.data.fit_fraction = fit_fraction
    return config


def _label_for_consensus(config, records):
    from xiaonet.distill.teacher_labels import attach_teacher_labels, consensus_members

    attach_teacher_labels([r for r in records if r.category == "continuous"], consensus_members(),
                          config.teacher.cache_dir, load_model=lambda name, weights: FakeTeacher())


def test_fit_is_the_last_part_of_training_records_and_in_sample_without_fit_fraction(protocol_data,  # noqa: F811
                                                                                        tmp_path):
    from xiaonet.scoring.references import record_references
    from xiaonet.evaluate.generalisation import fit_records

    config = _fit_config(protocol_data, tmp_path / "cache")
    bundle = load_data(config)
    _label_for_consensus(config, bundle.train)
    records, held_out = fit_records(config, bundle, fraction=0.9)
    assert not held_out and bundle.fit == []
    whole = {r.name: r for r in bundle.train}
    yy = [r for r in records if r.station == "YY.EV1"][0]
    original = whole[yy.name.rsplit("#last", 1)[0]]
    cut = int(original.n_samples * 0.1)
    assert yy.n_samples == original.n_samples - cut and yy.start_time == original.start_time + cut / 100.0
    assert np.array_equal(yy.waveform, original.waveform[:, cut:])
    assert all(v.shape[-1] == yy.n_samples for v in yy.teacher_members.values())
    picks = record_references(yy).picks  # the fake teachers' P (4.7 s) and S lie in the last 90%
    assert {p.phase for p in picks} == {"P", "S"}
    assert all(yy.start_time <= p.time <= yy.start_time + yy.n_samples / 100.0 for p in picks)


def test_fit_fraction_holds_the_last_part_out_of_training(protocol_data, tmp_path):  # noqa: F811
    from xiaonet.data.config_files import ConfigError
    from xiaonet.distill.config import validate_config

    config = _fit_config(protocol_data, tmp_path / "cache", fit_fraction=0.25)
    whole = {r.name: r for r in load_data(_fit_config(protocol_data, tmp_path / "cache")).train}
    bundle = load_data(config)
    assert bundle.fit and all(r.name.endswith("#fit") for r in bundle.fit)
    for tail in bundle.fit:
        head = next(r for r in bundle.train if r.name == tail.name[:-4])
        assert head.n_samples + tail.n_samples == whole[head.name].n_samples
        assert tail.start_time == head.start_time + head.n_samples / 100.0
    assert all(r.category != "continuous" or r.name in whole for r in bundle.train)
    bundle.write_split(tmp_path / "split.csv")
    assert "fit,continuous_yy,YY.EV1" in (tmp_path / "split.csv").read_text()
    config.data.fit_fraction = 1.0
    with pytest.raises(ConfigError, match="data.fit_fraction"):
        validate_config(config)


def test_evaluate_protocol_fit_says_in_sample(protocol_data, tmp_path, capsys):  # noqa: F811
    from xiaonet.cli import main
    from xiaonet.distill.config import write_config
    from xiaonet.models.presets import build_student

    config = _fit_config(protocol_data, tmp_path / "cache")
    _label_for_consensus(config, load_data(config).train)
    write_config(config, tmp_path / "protocol.json")
    build_student("xiaonet-xs").save(str(tmp_path / "student"))
    assert main(["evaluate", "--protocol", str(tmp_path / "protocol.json"), "--split", "fit", "--picker",
                 str(tmp_path / "student"), "--resamples", "20", "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "**In-sample**" in printed and "| fit | consensus |" in printed


def test_a_students_split_is_beside_its_weights_or_in_its_run_folder(tmp_path):
    from xiaonet.evaluate.pooled import student_split_file

    (tmp_path / "run" / "model").mkdir(parents=True)
    (tmp_path / "run" / "split.csv").write_text("split,record\n")
    assert student_split_file(str(tmp_path / "run" / "model" / "xiaonet-m")) == tmp_path / "run" / "split.csv"
    (tmp_path / "shipped.split.csv").write_text("split,record\n")
    assert student_split_file(str(tmp_path / "shipped")) == tmp_path / "shipped.split.csv"
    assert student_split_file(str(tmp_path / "nothing")) is None
    assert student_split_file("xiaonet-s").name == "xiaonet-s.split.csv"  # shipped with the package
