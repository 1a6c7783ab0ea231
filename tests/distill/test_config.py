"""The training config: typed, rejects unknown keys with the valid ones, dotted overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xiaonet.data.config_files import ConfigError

from xiaonet.distill.config import TrainConfig, apply_overrides, config_from_dict, config_to_dict, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_unknown_top_level_key_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'trian'.*Valid keys: name, seed, model"):
        config_from_dict({"trian": {"lr": 1}})


def test_unknown_nested_key_names_its_section():
    with pytest.raises(ConfigError, match=r"train: unknown key\(s\) 'learning_rate'.*lr, weight_decay"):
        config_from_dict({"train": {"learning_rate": 1e-3}})
    with pytest.raises(ConfigError, match=r"data.sources.0: unknown key\(s\) 'wieght'"):
        config_from_dict({"data": {"sources": [{"path": "x", "wieght": 1}]}})


def test_types_are_checked():
    with pytest.raises(ConfigError, match="train.batch_size: expected an integer"):
        config_from_dict({"train": {"batch_size": "32"}})
    with pytest.raises(ConfigError, match="train.deterministic: expected true or false"):
        config_from_dict({"train": {"deterministic": 1}})
    with pytest.raises(ConfigError, match="kind: expected 'labelled' or 'continuous'"):
        config_from_dict({"data": {"sources": [{"path": "x", "kind": "picks"}]}})


def test_dotted_overrides():
    config = apply_overrides(TrainConfig(), ["train.lr=1e-3", "loss.alpha=0.25", "name=tiny",
                                             "teacher.members.0.weights=stead"])
    assert config.train.lr == 1e-3 and config.loss.alpha == 0.25 and config.name == "tiny"
    assert config.teacher.members[0].weights == "stead"
    with pytest.raises(ConfigError, match=r"train: unknown key\(s\) 'lrr'. Valid keys: lr"):
        apply_overrides(TrainConfig(), ["train.lrr=1"])
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        apply_overrides(TrainConfig(), ["train.lr"])


def test_round_trip_through_json():
    config = apply_overrides(TrainConfig(), ["augment.real_noise_snr_db=[0, 10]"])
    again = config_from_dict(json.loads(json.dumps(config_to_dict(config))))
    assert again == config
    assert again.augment.real_noise_snr_db == (0.0, 10.0)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.json")), ids=lambda p: p.name)
def test_committed_configs_load(path):
    config = load_config(path)
    assert config.data.sources and sum(s.weight for s in config.data.sources) > 0


def test_load_config_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": {"epochs": 3}}')
    with pytest.raises(ConfigError, match=r"bad.json: train: unknown key\(s\) 'epochs'"):
        load_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.json")


def test_cli_rejects_unknown_keys(tmp_path, capsys):
    from xiaonet.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text('{"modle": {}}')
    assert main(["train", "--config", str(bad)]) == 2
    assert "Valid keys" in capsys.readouterr().err


def test_train_threads_and_no_progress_are_config_overrides(tmp_path, capsys):
    from xiaonet.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert main(["train", "--resume", str(run), "--threads", "2"]) == 2  # a resumed run's config is fixed
    assert "cannot change a resumed run" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": {"threads": "many"}}')
    # the override wins over the file's value, then the run refuses a config without data in one
    # line, before any data is read (exit 2: a refusal of the config)
    assert main(["train", "--config", str(bad), "--threads", "2", "--run-dir", str(tmp_path / "r")]) == 2
    assert "data.sources: empty" in capsys.readouterr().err
