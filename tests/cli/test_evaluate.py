"""``xiaonet evaluate`` in-process on a dataset written into a temp folder."""

from __future__ import annotations

import csv
import json

import pytest
from tests.evaluate.test_evaluation import make_dataset

from xiaonet.cli import main


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "toy_cli"
    make_dataset(folder, n_quakes=3, n_noise=1, seed=5)
    return folder


def test_evaluate_writes_tables_figures_and_windows(dataset_dir, tmp_path, capsys, torch_threads):
    from xiaonet.models.presets import build_student

    build_student("xiaonet-xs").save(str(tmp_path / "student"))
    out = tmp_path / "out"
    code = main(["evaluate", "--dataset", str(dataset_dir), "--picker", f"stalta,{tmp_path / 'student'}",
                 "--out", str(out), "--gain", "1e-20", "--no-progress", "--gallery", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| toy_cli | stalta | P |" in printed and "toy_clix1e-20" in printed
    for name in ("summary.md", "metrics.csv", "sweep.csv", "datasets.csv", "picks.csv", "results.json",
                 "benchmark.csv", "benchmark_windows.csv", "benchmark_windows_scored.csv"):
        assert (out / name).is_file(), name
    for kind in ("residuals", "precision_recall", "gallery"):
        assert (out / "figures" / f"{kind}_toy_cli.png").stat().st_size > 10_000
    with (out / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["picker"] for r in rows} == {"stalta", "student"}
    assert {r["dataset"] for r in rows} == {"toy_cli", "toy_clix1e-20"}
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["tolerance"] == 0.5 and len(results["benchmark"]) == 4
    # the same windows again, read back from the CSV: identical benchmark figures
    again = tmp_path / "again"
    assert main(["evaluate", "--dataset", str(dataset_dir), "--picker", "stalta", "--out", str(again),
                 "--windows", str(out / "benchmark_windows.csv"), "--no-progress", "--gallery", "0"]) == 0
    first = [r for r in results["benchmark"] if r["picker"] == "stalta" and r["dataset"] == "toy_cli"]
    second = json.loads((again / "results.json").read_text())["benchmark"]
    assert first[0]["task1_auc"] == second[0]["task1_auc"]
    assert first[0]["task3_P_rmse"] == second[0]["task3_P_rmse"]


def test_bad_dataset_and_unknown_picker_are_reported(dataset_dir, tmp_path, capsys):
    code = main(["evaluate", "--dataset", str(tmp_path / "missing"), "--dataset", str(dataset_dir),
                 "--picker", "stalta,nonsense", "--out", str(tmp_path / "o"), "--no-progress",
                 "--no-benchmark", "--gallery", "0", "--max-traces", "2"])
    assert code == 1
    err = capsys.readouterr().err
    assert "missing: not a SeisBench-format dataset, metadata.csv is missing" in err
    assert "nonsense: not evaluated: Unknown picker 'nonsense'" in err
    assert (tmp_path / "o" / "summary.md").is_file()


def test_nothing_readable_is_a_usage_error(tmp_path, capsys):
    assert main(["evaluate", "--dataset", str(tmp_path), "--picker", "stalta", "--no-progress"]) == 2
    assert "no readable dataset" in capsys.readouterr().err


def _write_study(path, dataset_dir, **changes):
    config = {
        "name": "toy_size",
        "title": "Toy size study",
        "question": "Does the study machinery report what it measured and what it could not?",
        "kind": "size",
        "datasets": [str(dataset_dir)],
        "pickers": [
            {"spec": "stalta"},
            {"spec": str(path.parent / "no_such_student"), "label": "future student",
             "how_to_make": "xiaonet train --config configs/xiaonet-s.json"},
        ],
        "benchmark": False,
        "gallery": 1,
    }
    config.update(changes)
    path.write_text(json.dumps(config))
    return path


def test_study_regenerates_results_with_figures_and_says_what_is_missing(dataset_dir, tmp_path):
    config = _write_study(tmp_path / "toy.json", dataset_dir, reference=[
        {"dataset": "toy_cli", "picker": "stalta", "phase": "P", "f1": 0.5, "source": "a test"}])
    results = tmp_path / "docs" / "results.md"
    code = main(["study", str(config), "--results", str(results), "--runs", str(tmp_path / "runs"),
                 "--no-progress"])
    assert code == 0
    text = results.read_text()
    assert "## Toy size study" in text and "| stalta | 0 | 0 |" in text
    assert "### Not measured yet" in text and "`future student`" in text
    assert "Make it with `xiaonet train --config configs/xiaonet-s.json`" in text
    assert "measured on toy_cli (4 traces)" in text  # every figure states its data
    assert "| toy_cli | stalta | P | 0.500 | 1.000 | 0.500 | a test |" in text
    for name in ("toy_size.png", "toy_size_precision_recall.png", "toy_size_residuals.png", "toy_size_gallery.png"):
        assert (tmp_path / "docs" / "figures" / name).stat().st_size > 5_000, name
    assert (tmp_path / "runs" / "toy_size" / "metrics.csv").is_file()


def test_study_refuses_to_score_students_without_their_split(dataset_dir, tmp_path):
    config = _write_study(tmp_path / "toy.json", dataset_dir, exclude_training=[str(tmp_path / "nothing/*.csv")])
    results = tmp_path / "results.md"
    assert main(["study", str(config), "--results", str(results), "--runs", str(tmp_path / "runs"),
                 "--no-progress"]) == 0
    assert "no training split file matches" in results.read_text()


def test_study_config_errors_name_the_file_and_key(dataset_dir, tmp_path, capsys):
    config = _write_study(tmp_path / "bad.json", dataset_dir, colour="blue")
    assert main(["study", str(config), "--results", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert "bad.json: unknown key(s) 'colour'" in err
    config = _write_study(tmp_path / "bad3.json", dataset_dir, tolerance="half a second")
    assert main(["study", str(config), "--results", str(tmp_path / "r.md")]) == 2
    assert "bad3.json.tolerance: expected a number, got 'half a second'" in capsys.readouterr().err
    config = _write_study(tmp_path / "bad2.json", dataset_dir, kind="vibes")
    assert main(["study", str(config), "--results", str(tmp_path / "r.md")]) == 2
    assert "kind 'vibes' is not one of baseline, size, window, distillation" in capsys.readouterr().err


def test_shipped_study_configs_load():
    from pathlib import Path

    from xiaonet.evaluate.studies import load_study

    paths = sorted((Path(__file__).resolve().parents[2] / "configs" / "studies").glob("*.json"))
    assert {load_study(p).kind for p in paths} == {"baseline", "size", "window", "distillation", "generalisation"}


def test_study_only_reruns_named_studies_and_keeps_the_others(dataset_dir, tmp_path):
    first = _write_study(tmp_path / "a.json", dataset_dir, name="study_a", title="Study A")
    second = _write_study(tmp_path / "b.json", dataset_dir, name="study_b", title="Study B", kind="baseline")
    results, runs = tmp_path / "results.md", tmp_path / "runs"
    base = ["study", str(first), str(second), "--results", str(results), "--runs", str(runs), "--no-progress"]
    assert main(base + ["--only", "study_b"]) == 0
    assert "**Not run:** no earlier run" in results.read_text()
    assert main(base) == 0
    (runs / "study_a" / "section.md").write_text("## Study A\n\nkept from before\n")
    assert main(base + ["--only", "study_b"]) == 0
    text = results.read_text()
    assert "kept from before" in text and "## Study B" in text
    assert main(base + ["--only", "nope"]) == 2


def test_consensus_reference_refuses_analyst_only_options_and_empty_folders(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no waveforms here")
    code = main(["evaluate", "--reference", "consensus", "--dataset", str(tmp_path / "empty"),
                 "--picker", "stalta", "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 2
    assert "no waveform files" in capsys.readouterr().err
    code = main(["evaluate", "--reference", "consensus", "--dataset", str(tmp_path / "empty"),
                 "--gain", "1e-20", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "--gain and --exclude-training apply to analyst-picked datasets only" in capsys.readouterr().err


def test_evaluate_takes_pickers_repeated_or_comma_separated(dataset_dir, tmp_path):
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    assert main(["evaluate", "--dataset", str(dataset_dir), "--picker", "stalta", "--out", str(out_a),
                 "--no-benchmark", "--no-progress", "--gallery", "0"]) == 0
    assert main(["evaluate", "--dataset", str(dataset_dir), "--picker", "stalta", "--out", str(out_b),
                 "--no-benchmark", "--no-progress", "--gallery", "0"]) == 0
    assert (out_a / "summary.md").read_text() == (out_b / "summary.md").read_text()
