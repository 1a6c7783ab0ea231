"""`xiaonet pick` in-process on real files, including a corrupt one."""

import csv
import shutil

import obspy
import pytest

from xiaonet.cli import main
from xiaonet.data.picktable import PICK_COLUMNS


def read_table(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out[out.index("COMMAND\n"):out.index("options:")].splitlines()[1:]
              if line.startswith("    ") and not line.startswith("      ")}
    assert listed == {"pick", "detect", "models", "train", "adapt", "evaluate", "study", "stream",
                      "export", "benchmark"}


def test_example_with_stalta_writes_csv_quakeml_and_plot(tmp_path):
    out = tmp_path / "picks.csv"
    quakeml = tmp_path / "picks.xml"
    code = main([
        "pick", "--example", "--picker", "stalta", "--out", str(out),
        "--quakeml", str(quakeml), "--plot", str(tmp_path / "fig"),
    ])
    assert code == 0
    columns, rows = read_table(out)
    assert tuple(columns) == PICK_COLUMNS
    assert [(r["station"], r["phase"]) for r in rows] == [("RJOB", "P")]
    assert abs(obspy.UTCDateTime(rows[0]["time"]) - obspy.UTCDateTime("2009-08-24T00:20:07.7")) < 0.25
    catalog = obspy.read_events(str(quakeml))
    assert len(catalog[0].picks) == 1 and catalog[0].picks[0].phase_hint == "P"
    # picks alone: the container event says what it is and has no origin
    assert not catalog[0].origins and catalog[0].event_type is None
    assert "not associated" in catalog.description and "not an earthquake" in catalog[0].comments[0].text
    assert str(catalog[0].resource_id).startswith("smi:xiaonet/unassociated-picks")
    quakeml_pick = catalog[0].picks[0]
    assert str(quakeml_pick.method_id) == "smi:xiaonet/picker/stalta"
    assert abs(quakeml_pick.time - obspy.UTCDateTime(rows[0]["time"])) < 1e-5  # the same pick as the CSV row
    assert (tmp_path / "fig" / "BW.RJOB..EH.png").stat().st_size > 10_000


def test_batch_with_corrupt_file_reports_it_and_picks_the_rest(tmp_path, shared_dir, capsys):
    source = shared_dir / "data" / "continuous" / "socal_CI_phasenet_testdata"
    files = sorted(source.glob("*.mseed"))[:3]
    assert files, f"no miniSEED files in {source}"
    folder = tmp_path / "in"
    folder.mkdir()
    for f in files:
        shutil.copy(f, folder / f.name)
    (folder / "broken.mseed").write_bytes(b"\x00garbage" * 100)
    out = tmp_path / "picks.csv"
    code = main(["pick", str(folder), "--picker", "stalta", "--out", str(out), "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "broken.mseed" in err and "1 input(s) failed" in err
    columns, rows = read_table(out)
    assert tuple(columns) == PICK_COLUMNS
    stations = {r["station"] for r in rows}
    assert stations, "the readable files must still be picked"
    assert stations <= {f.name.split(".")[1] for f in files}


def test_unknown_picker_lists_choices(capsys):
    assert main(["pick", "--example", "--picker", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert "stalta" in err and "phasenet" in err and "xiaonet-s" in err


def test_missing_input_is_named(tmp_path, capsys):
    code = main(["pick", str(tmp_path / "nowhere*.mseed"), "--picker", "stalta"])
    assert code == 1
    assert "nowhere" in capsys.readouterr().err


def test_teacher_and_stalta_give_the_same_columns(tmp_path, shared_dir, teacher_cache):
    source = shared_dir / "data" / "continuous" / "socal_CI_phasenet_testdata"
    first = sorted(source.glob("*.mseed"))[0]
    tables = {}
    for picker in ("stalta", "phasenet"):
        out = tmp_path / f"{picker}.csv"
        assert main(["pick", str(first), "--picker", picker, "--out", str(out), "--no-progress"]) == 0
        tables[picker] = read_table(out)
    assert tables["stalta"][0] == tables["phasenet"][0] == list(PICK_COLUMNS)
    phasenet_rows = tables["phasenet"][1]
    assert phasenet_rows, "PhaseNet should pick the event in the SoCal test data"
    assert {r["picker"] for r in phasenet_rows} == {"phasenet:original"}
    assert {r["phase"] for r in phasenet_rows} <= {"P", "S"}


def test_models_command_reports_size_and_cost(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for preset in ("xiaonet-xs", "xiaonet-s", "xiaonet-m"):
        assert f"| {preset} |" in out
    from xiaonet.models.model import count_parameters
    from xiaonet.models.presets import build_student

    assert f"{count_parameters(build_student('xiaonet-s')):,}" in out and "MACs" in out


@pytest.mark.parametrize("pair, message", [("P0.3", "is not PHASE=VALUE"), ("X=0.3", "unknown phase 'X'"),
                                           ("S=1.5", "between 0 and 1"), ("P=high", "is not PHASE=VALUE")])
def test_every_command_refuses_a_bad_threshold_the_same_way(pair, message, tmp_path, capsys):
    from xiaonet.edge.__main__ import main as edge_main

    example = tmp_path / "example.mseed"
    obspy.read().write(str(example), format="MSEED")
    assert main(["pick", str(example), "--threshold", pair, "--out", str(tmp_path / "p.csv")]) != 0
    assert message in capsys.readouterr().err
    assert edge_main(["missing.onnx", str(example), "--threshold", pair]) == 2
    assert message in capsys.readouterr().err


def test_pick_speaks_the_picker_spec_grammar_and_refuses_flags_that_do_not_apply(tmp_path, capsys):
    from xiaonet.models.presets import shipped_weights

    out = tmp_path / "picks.csv"
    if shipped_weights("xiaonet-s") is None:
        pytest.skip("no trained xiaonet-s shipped")
    assert main(["pick", "--example", "--picker", "xiaonet-s@window=1001", "--out", str(out),
                 "--no-progress"]) == 0  # the grammar of evaluate is understood here too
    assert out.read_text().startswith("network,")
    assert main(["pick", "--example", "--picker", "stalta", "--threshold", "P=0.3"]) == 2
    assert "--threshold does not apply to STA/LTA" in capsys.readouterr().err
    assert main(["pick", "--example", "--picker", "xiaonet-s", "--stalta", "sta=1"]) == 2
    assert "--stalta applies to --picker stalta only" in capsys.readouterr().err
    assert main(["pick", "--example", "--picker", "stalta@window=1001"]) == 2
    assert "@window= only applies to XiaoNet students" in capsys.readouterr().err


COMMANDS_THAT_RUN_PICKERS = [["pick"], ["stream"], ["evaluate"], ["benchmark", "runtimes"], ["export"],
                             ["benchmark", "stream"]]


@pytest.mark.parametrize("command", COMMANDS_THAT_RUN_PICKERS, ids=" ".join)
def test_every_command_that_runs_a_picker_names_it_with_picker_and_takes_threads(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = capsys.readouterr().out
    assert "--picker" in text and "--threads" in text
    for old in ("--pickers", "--models", "--student"):
        assert old not in text


def test_picker_lists_repeat_or_separate_by_commas():
    from xiaonet.cli import build_parser
    from xiaonet.cli.options import picker_texts

    parser = build_parser()
    assert picker_texts(parser.parse_args(["benchmark", "runtimes", "--picker", "stalta", "--picker", "xiaonet-s:torch"]),
                        []) == ["stalta", "xiaonet-s:torch"]
    assert picker_texts(parser.parse_args(["evaluate", "--dataset", "d", "--picker", "stalta,phasenet",
                                           "--picker", "xiaonet-s"]), []) == ["stalta", "phasenet", "xiaonet-s"]
    assert picker_texts(parser.parse_args(["evaluate", "--dataset", "d"]), ["x"]) == ["x"]


def test_export_takes_the_model_once(tmp_path, capsys):
    assert main(["export", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "give the model to export once" in capsys.readouterr().err
    assert main(["export", "xiaonet-s", "--picker", "xiaonet-m", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "give the model to export once" in capsys.readouterr().err


def test_the_readme_demo_command_runs_in_an_empty_folder(tmp_path, monkeypatch):
    """`make demo`: --plot creates its folder and --out may write into it."""
    monkeypatch.chdir(tmp_path)
    assert main(["pick", "--example", "--plot", "demo_output", "--out", "demo_output/picks.csv",
                 "--no-progress"]) == 0
    assert (tmp_path / "demo_output" / "picks.csv").read_text().startswith("network,")
    assert list((tmp_path / "demo_output").glob("*.png"))
    assert main(["pick", "--example", "--out", "elsewhere/picks.csv"]) == 2  # still refused without --plot
