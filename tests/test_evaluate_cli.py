"""``xiaonet evaluate`` in-process on a dataset written into a temp folder."""

from __future__ import annotations

import csv
import json

import pytest
from test_evaluation import make_dataset

from xiaonet.cli import main


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "toy_cli"
    make_dataset(folder, n_quakes=3, n_noise=1, seed=5)
    return folder


def test_evaluate_writes_tables_figures_and_windows(dataset_dir, tmp_path, capsys, torch_threads):
    from xiaonet.presets import build_student

    build_student("xiaonet-xs").save(str(tmp_path / "student"))
    out = tmp_path / "out"
    code = main(["evaluate", "--dataset", str(dataset_dir), "--pickers", f"stalta,{tmp_path / 'student'}",
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
    assert main(["evaluate", "--dataset", str(dataset_dir), "--pickers", "stalta", "--out", str(again),
                 "--windows", str(out / "benchmark_windows.csv"), "--no-progress", "--gallery", "0"]) == 0
    first = [r for r in results["benchmark"] if r["picker"] == "stalta" and r["dataset"] == "toy_cli"]
    second = json.loads((again / "results.json").read_text())["benchmark"]
    assert first[0]["task1_auc"] == second[0]["task1_auc"]
    assert first[0]["task3_P_rmse"] == second[0]["task3_P_rmse"]


def test_bad_dataset_and_unknown_picker_are_reported(dataset_dir, tmp_path, capsys):
    code = main(["evaluate", "--dataset", str(tmp_path / "missing"), "--dataset", str(dataset_dir),
                 "--pickers", "stalta,nonsense", "--out", str(tmp_path / "o"), "--no-progress",
                 "--no-benchmark", "--gallery", "0", "--max-traces", "2"])
    assert code == 1
    err = capsys.readouterr().err
    assert "missing: not a SeisBench-format dataset, metadata.csv is missing" in err
    assert "nonsense: not evaluated: Unknown picker 'nonsense'" in err
    assert (tmp_path / "o" / "summary.md").is_file()


def test_nothing_readable_is_a_usage_error(tmp_path, capsys):
    assert main(["evaluate", "--dataset", str(tmp_path), "--pickers", "stalta", "--no-progress"]) == 2
    assert "no readable dataset" in capsys.readouterr().err
