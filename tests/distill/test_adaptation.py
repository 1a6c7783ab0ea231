"""``xiaonet adapt`` on tiny synthetic data with a fake teacher: writes weights and a card that
``xiaonet pick --picker PREFIX`` loads, refuses bad inputs in one line naming them before any
work, and a rerun resumes instead of restarting."""

from __future__ import annotations

import json

import numpy as np
import obspy
import pytest

from xiaonet.cli import main
from xiaonet.distill.adaptation import adapt
from xiaonet.distill.adaptation_data import AdaptSettings, split_in_time

P_S, S_S = 4.7, 8.0  # seconds after the start of each 30 s copy of the example event
T0 = obspy.UTCDateTime(2021, 3, 4, 5)


class FakeTeacher:
    """P / S probabilities peaking where the tiled example event has its P and a nominal S."""

    def annotate(self, stream, batch_size=64):
        tr = stream[0]
        times = float(tr.stats.starttime - T0) + np.arange(tr.stats.npts) / tr.stats.sampling_rate
        out = obspy.Stream()
        for phase, offset in (("P", P_S), ("S", S_S)):
            distance = (times - offset + 15.0) % 30.0 - 15.0
            out.append(obspy.Trace(np.exp(-0.5 * (distance / 0.2) ** 2),
                                   {"channel": f"Fake_{phase}", "sampling_rate": tr.stats.sampling_rate,
                                    "starttime": tr.stats.starttime, "station": tr.stats.station}))
        return out


def write_station(folder, station, copies=12, components="ZNE", seconds=None):
    stream = obspy.read()
    out = obspy.Stream()
    for tr in stream:
        component = tr.stats.channel[-1]
        if component not in components:
            continue
        data = np.tile(tr.data.astype(np.float32), copies)
        if seconds is not None:
            data = data[: int(seconds * 100)]
        out.append(obspy.Trace(data, {"network": "XX", "station": station, "channel": f"HH{component}",
                                      "sampling_rate": 100.0, "starttime": T0}))
    path = folder / f"XX.{station}.mseed"
    out.write(str(path), format="MSEED", encoding="FLOAT32")
    return path


@pytest.fixture
def network(tmp_path):
    folder = tmp_path / "net"
    folder.mkdir()
    for station in ("AA", "BB"):
        write_station(folder, station)
    start = tmp_path / "start"
    from xiaonet.models.presets import build_student

    build_student("xiaonet-xs").save(str(start))
    return folder, str(start)


def settings_for(tmp_path, folder, start, **changes):
    values = dict(inputs=[str(folder)], out=str(tmp_path / "mine"), start_student=start, minutes=2.0,
                  steps=2, steps_per_epoch=2, batch_size=4, segment_s=120.0, progress=False)
    return AdaptSettings(**{**values, **changes})


def test_adapt_writes_weights_and_card_that_pick_loads(tmp_path, network, torch_threads):
    folder, start = network
    result = adapt(settings_for(tmp_path, folder, start), load_model=lambda name, weights: FakeTeacher())
    prefix = tmp_path / "mine"
    for suffix in (".pt", ".json", ".md"):
        assert (tmp_path / f"mine{suffix}").is_file(), suffix
    saved = json.loads((tmp_path / "mine.json").read_text())
    assert set(saved["default_args"]) == {"P_threshold", "S_threshold"}
    card = (tmp_path / "mine.md").read_text()
    assert "held-out" in card and "XX.AA" in card and "tuning part" in card
    summary = result.summary
    assert summary["labelled"]["report"]["records"] and summary["labelled"]["tune"]["records"]
    assert {"P", "S"} <= set(summary["after"]) and {"P", "S"} <= set(summary["before"]["own"])
    # the held-out parts are the last quarter in time of each station, never trained on
    train_end = summary["labelled"]["train"]["last"]
    assert train_end <= summary["labelled"]["tune"]["first"] + 1e-6
    assert summary["labelled"]["tune"]["last"] <= summary["labelled"]["report"]["first"] + 1e-6
    csv = tmp_path / "picks.csv"
    assert main(["pick", str(folder / "XX.AA.mseed"), "--picker", str(prefix), "--out", str(csv),
                 "--no-progress"]) == 0
    assert csv.read_text().startswith("network,station")
    streamed = tmp_path / "streamed.csv"
    assert main(["stream", "--replay", str(folder / "XX.AA.mseed"), "--picker", str(prefix),
                 "--out", str(streamed)]) == 0


def test_rerun_resumes_instead_of_restarting(tmp_path, network, torch_threads):
    folder, start = network
    first = adapt(settings_for(tmp_path, folder, start), load_model=lambda name, weights: FakeTeacher())
    history = json.loads((tmp_path / "mine.run" / "train" / "history.json").read_text())
    assert len(history) == 1

    def no_teacher(name, weights):
        raise AssertionError("a resumed run must take the teacher labels from its cache")

    second = adapt(settings_for(tmp_path, folder, start, steps=4), load_model=no_teacher)
    resumed = json.loads((tmp_path / "mine.run" / "train" / "history.json").read_text())
    assert [h["epoch"] for h in resumed] == [1, 2]
    assert resumed[0]["train_loss"] == history[0]["train_loss"]  # epoch 1 kept, not trained again
    for key in ("before", "labelled"):  # scored once, the same sample
        assert json.dumps(second.summary[key], sort_keys=True) == json.dumps(first.summary[key], sort_keys=True)


def test_a_run_folder_refuses_other_settings(tmp_path, network, torch_threads):
    from xiaonet.distill.adaptation_data import AdaptError

    folder, start = network
    adapt(settings_for(tmp_path, folder, start), load_model=lambda name, weights: FakeTeacher())
    with pytest.raises(AdaptError, match="teacher"):
        adapt(settings_for(tmp_path, folder, start, teacher="mean"), load_model=lambda n, w: FakeTeacher())


def test_analyst_picks_train_as_hard_labels_and_score_the_report_part(tmp_path, network, torch_threads):
    from xiaonet.data.picktable import write_csv

    folder, start = network
    rows = [{"network": "XX", "station": "AA", "location": "", "phase": phase,
             "time": str(T0 + 30 * k + offset), "probability": "", "picker": "analyst"}
            for k in range(12) for phase, offset in (("P", P_S), ("S", S_S))]
    write_csv(rows, tmp_path / "analyst.csv")
    result = adapt(settings_for(tmp_path, folder, start, picks=str(tmp_path / "analyst.csv")),
                   load_model=lambda name, weights: FakeTeacher())
    summary = result.summary
    assert summary["alpha"] == 0.5 and summary["analyst_picks"]["train"][0] > 0
    assert summary["after_analyst"]["P"]["tp"] + summary["after_analyst"]["P"]["fn"] > 0
    assert "Your analyst picks" in (tmp_path / "mine.md").read_text()


@pytest.mark.parametrize("case", ["missing", "one_component", "short", "student", "prefix", "teacher", "picks"])
def test_bad_inputs_are_refused_in_one_line_naming_them(tmp_path, network, capsys, case):
    folder, start = network
    args = [str(folder), "--out", str(tmp_path / "mine"), "--from", start, "--no-progress"]
    if case == "missing":
        args[0], named = str(tmp_path / "nowhere.mseed"), "nowhere.mseed"
    elif case == "one_component":
        named = str(write_station(folder, "CC", components="Z"))
    elif case == "short":
        named = str(write_station(folder, "DD", seconds=20))
    elif case == "student":
        args[args.index("--from") + 1] = named = str(tmp_path / "no_student")
    elif case == "prefix":
        args[args.index("--out") + 1] = named = str(tmp_path / "no_folder" / "mine")
    elif case == "teacher":
        args += ["--teacher", "median"]
        named = "median"
    else:
        args += ["--picks", str(tmp_path / "picks.csv")]
        named = "picks.csv"
    assert main(["adapt", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0], err
    assert not (tmp_path / "mine.run").exists()  # refused before any work


def test_split_keeps_event_files_whole_and_holds_the_last_part_out():
    # four 60 s event files: the last goes to report, the one before to tuning, never cut
    files = [[t, t + 60.0] for t in (0.0, 100.0, 200.0, 300.0)]
    pieces = split_in_time(files, 0.5, segment_s=300.0)
    assert [p for _, _, p in pieces] == ["train", "train", "tune", "report"]
    assert all(b - a == 60.0 for a, b, _ in pieces)
    # at POSIX times (~1.5e9 s) too: the cuts must not round away
    t0 = 1562485799.997986
    parts = [p for _, _, p in split_in_time([[t0, t0 + 4800.01]], 0.25, segment_s=300.0)]
    assert parts == ["train"] * 12 + ["tune"] * 2 + ["report"] * 2


def test_an_sds_tree_is_planned_from_its_files_spans(tmp_path, network):
    from xiaonet.distill.adaptation_data import plan_adaptation

    folder, start = network
    root = tmp_path / "sds"
    for trace in obspy.read(str(folder / "XX.AA.mseed")):
        day = root / "2021" / "XX" / "AA" / f"{trace.stats.channel}.D"
        day.mkdir(parents=True)
        trace.write(str(day / f"XX.AA..{trace.stats.channel}.D.2021.063"), format="MSEED", encoding="FLOAT32")
    plan = plan_adaptation(AdaptSettings(inputs=[], sds=str(root), start="2021-03-04", end="2021-03-05",
                                         out=str(tmp_path / "mine"), start_student=start))
    assert list(plan.files) == ["XX.AA..HH"]
    # the held-out parts lie in the six minutes of data, not in the rest of the day file's day
    assert {s.part for s in plan.segments} == {"train", "tune", "report"}
    assert min(s.start for s in plan.segments) >= float(T0) - 1e-3
    assert max(s.end for s in plan.segments) <= float(T0) + 360.01


def test_records_shorter_than_a_teachers_window_are_labelled_by_it():
    from xiaonet.distill.adaptation import OneWindowAtLeast

    class SixtySeconds:  # as SeisBench's EQTransformer: nothing for records under its window
        in_samples = 6000

        def annotate(self, stream, **kwargs):
            return FakeTeacher().annotate(stream) if stream[0].stats.npts >= self.in_samples else obspy.Stream()

    short = obspy.read()  # 30 s
    assert len(SixtySeconds().annotate(short)) == 0
    labels = OneWindowAtLeast(SixtySeconds()).annotate(short)
    assert len(labels) == 2 and all(tr.stats.npts == 6000 for tr in labels)
    assert all(tr.stats.npts == 3000 for tr in short)  # the caller's stream is left as it was


def test_the_command_runs_in_process(tmp_path, network, monkeypatch, capsys, torch_threads):
    import xiaonet.models.teachers

    folder, start = network
    monkeypatch.setattr(xiaonet.models.teachers, "load_teacher", lambda name, weights="original": FakeTeacher())
    prefix = tmp_path / "cli"
    assert main(["adapt", str(folder), "--out", str(prefix), "--from", start, "--steps", "2", "--minutes", "1",
                 "--no-progress"]) == 0
    assert "agreement with the teachers on held-out hours" in capsys.readouterr().err
    assert json.loads((tmp_path / "cli.json").read_text())["default_args"]
    assert (tmp_path / "cli.run" / "adapt.json").is_file() and (tmp_path / "cli.md").is_file()
