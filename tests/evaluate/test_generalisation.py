"""The network-held-out protocol: whole networks or sources held out for validation and test,
continuous held-out data scored against the teachers' consensus, and the run reporting it."""

from __future__ import annotations

import json

import numpy as np
import obspy
import pytest

from tests.distill.test_training import FakeTeacher, tiny_config, tiny_data  # noqa: F401  (fixture)
from xiaonet.data.config_files import ConfigError
from xiaonet.distill.config import validate_config
from xiaonet.data.records import DataError
from xiaonet.scoring.references import record_references
from xiaonet.distill.splits import load_data
from xiaonet.picking.pickers import ModelPicker
from xiaonet.distill.teacher_labels import attach_teacher_labels, consensus_members
from xiaonet.distill.selection import score_records
from xiaonet.distill.training import train


@pytest.fixture(scope="module")
def protocol_data(tiny_data):  # noqa: F811
    """tiny_data plus a continuous folder of another network (YY) holding the example event."""
    folder = tiny_data / "continuous_yy"
    if not folder.is_dir():
        folder.mkdir()
        stream = obspy.read()
        for tr in stream:
            tr.stats.network, tr.stats.station = "YY", "EV1"
        stream.write(str(folder / "YY.EV1.mseed"), format="MSEED")
    return tiny_data


def protocol_config(root, cache, **train):
    config = tiny_config(root, cache, **train)
    config.data.sources[0].dev_fraction = 0.0
    from xiaonet.distill.config import SourceConfig

    config.data.sources.append(SourceConfig(path="continuous_yy", kind="continuous", weight=0.2))
    config.data.networks = {"YY": "test"}
    config.data.window_len = 1024
    return config


def attach(config, bundle):
    held_out = [r for r in bundle.val + bundle.test if r.category == "continuous"]
    attach_teacher_labels(held_out, consensus_members(), config.teacher.cache_dir, keep_members=True,
                          load_model=lambda name, weights: FakeTeacher())
    attach_teacher_labels(bundle.train + bundle.dev, config.teacher.members, config.teacher.cache_dir,
                          load_model=lambda name, weights: FakeTeacher())


def test_a_held_out_network_never_trains_and_is_scored_on_the_consensus(protocol_data, tmp_path):
    config = protocol_config(protocol_data, tmp_path / "cache")
    bundle = load_data(config)
    assert {r.network for r in bundle.test} == {"YY"}
    assert "YY" not in {r.network for r in bundle.train + bundle.val + bundle.dev}
    attach(config, bundle)
    reference = record_references(bundle.test[0])
    assert sorted(r.phase for r in reference.picks) == ["P", "S"]  # both fake teachers agree
    record = bundle.test[0]
    p_time = record.start_time + 470 / 100.0
    assert min(abs(r.time - p_time) for r in reference.picks if r.phase == "P") < 0.02


def test_source_roles_send_whole_sources_to_validation_and_test(protocol_data, tmp_path):
    config = protocol_config(protocol_data, tmp_path / "cache")
    config.data.networks = {}
    config.data.sources[1].role = "validation"  # the quiet continuous station
    config.data.sources[2].role = "test"
    bundle = load_data(config)
    assert {r.source for r in bundle.val} == {"continuous"}
    assert {r.source for r in bundle.test} == {"continuous_yy"}
    assert {r.source for r in bundle.train} == {"labelled"}


def test_a_continuous_record_without_both_teachers_cannot_be_scored(protocol_data, tmp_path):
    config = protocol_config(protocol_data, tmp_path / "cache")
    bundle = load_data(config)
    with pytest.raises(DataError, match="consensus teacher"):
        record_references(bundle.test[0])


def test_unknown_roles_are_refused_with_the_valid_ones(protocol_data, tmp_path):
    config = protocol_config(protocol_data, tmp_path / "cache")
    config.data.networks = {"YY": "holdout"}
    with pytest.raises(ConfigError, match="data.networks.YY: expected one of train, validation, test"):
        validate_config(config)
    config.data.networks = {}
    config.data.sources[0].role = "dev"
    with pytest.raises(ConfigError, match="data.sources.0.role"):
        validate_config(config)


def test_run_reports_test_networks_per_source_and_macro(protocol_data, tmp_path, torch_threads):
    config = protocol_config(protocol_data, tmp_path / "cache")
    config.data.sources[1].role = "validation"
    bundle = load_data(config)
    attach(config, bundle)
    result = train(config, tmp_path / "run", bundle)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    test = metrics["test"]
    assert test["sources"]["continuous_yy"]["reference"] == "consensus"
    assert set(test["macro"]) <= {"P", "S"} and "macro_consensus" in test
    split = (tmp_path / "run" / "split.csv").read_text()
    assert "test,continuous_yy,YY.EV1" in split
    # the quiet validation station has no consensus pick: no F1 is averaged for it
    val = score_records(ModelPicker(result.model), bundle.val)
    assert val["macro"] == {}


def test_macro_weighs_each_source_once():
    from xiaonet.distill.selection import _macro

    sources = [{"reference": "analyst", "P": {"f1": 1.0, "tp": 100, "fn": 0}},
               {"reference": "consensus", "P": {"f1": 0.5, "tp": 1, "fn": 1}},
               {"reference": "consensus", "P": {"f1": 0.0, "tp": 0, "fn": 0}}]  # no reference: left out
    assert _macro(sources) == {"P": 0.75}
    assert np.isclose(_macro(sources[1:])["P"], 0.5)


def test_model_card_leads_with_the_test_networks(protocol_data, tmp_path, torch_threads):
    from xiaonet.distill.model_card import write_model_card

    config = protocol_config(protocol_data, tmp_path / "cache")
    config.data.sources[0].dev_fraction = 0.25
    bundle = load_data(config)
    attach(config, bundle)
    result = train(config, tmp_path / "run", bundle)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    fake_teacher = {"test": metrics["test"], "dev": metrics["dev"]}  # any scores of the right shape
    card = write_model_card(config, tmp_path / "run", result.model, metrics,
                            {"phasenet:original": fake_teacher}, "xiaonet train --config x.json").read_text()
    held_out = card.index("## Networks it never trained on")
    assert held_out < card.index("## Held-out stations of the training networks")
    assert "| continuous_yy | consensus | **tiny** (this model) |" in card
    assert "| continuous_yy | consensus | phasenet:original | (reference)" in card
    assert "| **mean over consensus networks** | consensus | **tiny** (this model) |" in card
    assert "test YY (only reported" in card
    assert "Nowhere below PhaseNet by more than 0.03 F1" in card  # the fake teacher scores like the student


def test_generalisation_study_scores_variants_on_validation_and_finalists_on_test(protocol_data, tmp_path):
    from xiaonet.cli import main
    from xiaonet.distill.config import write_config
    from xiaonet.models.presets import build_student

    config = protocol_config(protocol_data, tmp_path / "cache")
    config.data.sources[1].role = "validation"
    bundle = load_data(config)
    attach(config, bundle)  # fills the teacher cache the study reads
    write_config(config, tmp_path / "protocol.json")
    for name in ("a", "b"):
        build_student("xiaonet-xs").save(str(tmp_path / name))
    study = {
        "name": "gen", "title": "Generalisation", "question": "Which recipe?", "kind": "generalisation",
        "protocol": str(tmp_path / "protocol.json"),
        "pickers": [{"spec": str(tmp_path / "a"), "label": "recipe a", "variant": "a", "test": True},
                    {"spec": str(tmp_path / "b"), "label": "recipe b", "variant": "b"},
                    {"spec": str(tmp_path / "missing"), "label": "recipe c", "how_to_make": "xiaonet train ..."},
                    {"spec": "stalta"}],
    }
    (tmp_path / "study.json").write_text(json.dumps(study))
    results = tmp_path / "results.md"
    assert main(["study", str(tmp_path / "study.json"), "--results", str(results), "--runs",
                 str(tmp_path / "runs"), "--no-progress"]) == 0
    page = results.read_text()
    validation = page[page.index("### Validation networks"):page.index("### Test networks")]
    assert "| recipe a |" in validation and "| recipe b |" in validation and "stalta" not in validation
    test = page[page.index("### Test networks"):]
    assert "| recipe a |" in test and "| stalta |" in test and "| recipe b |" not in test
    assert "| continuous_yy | consensus | recipe a |" in test
    assert "`recipe c`" in page and "Make it with `xiaonet train ...`" in page
