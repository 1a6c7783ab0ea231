"""A run that finds nothing to pick says so in one line and exits non-zero; a SeedLink server
never reached is an error after a bounded time. (Ctrl-C of an archive run, one line saying
how to resume: tests/archive/test_command.py.)"""

from __future__ import annotations

import numpy as np
import obspy
import pytest

from xiaonet.cli import main

T0 = obspy.UTCDateTime("2024-02-03T05:00:00")


def write_station(path, seconds: float = 600.0, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    obspy.Stream([obspy.Trace(rng.normal(size=int(seconds * 100)), header={
        "network": "XX", "station": "ABC", "location": "", "channel": f"HH{c}", "sampling_rate": 100.0,
        "starttime": T0}) for c in "ZNE"]).write(str(path), format="MSEED")


@pytest.fixture
def sds_root(tmp_path):
    """An SDS tree with one day of XX.ABC..HH?."""
    folder = tmp_path / "sds" / "2024" / "XX" / "ABC"
    for c in "ZNE":
        (folder / f"HH{c}.D").mkdir(parents=True)
    stream = obspy.read(str(_written(tmp_path)))
    for trace in stream:
        trace.write(str(folder / f"{trace.stats.channel}.D" / f"XX.ABC..{trace.stats.channel}.D.2024.034"),
                    format="MSEED")
    return tmp_path / "sds"


def _written(tmp_path):
    path = tmp_path / "XX.ABC.mseed"
    if not path.exists():
        write_station(path)
    return path


def one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("xiaonet")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("options, expected", [
    (["--select", "XX.ABC.*.BH?"], "no channel matching --select XX.ABC.*.BH? in"),
    (["--start", "2024-03-01", "--end", "2024-03-02"], "no data between 2024-03-01"),
    (["--root-too-deep"], "no SDS day files under"),
])
def test_an_archive_run_with_nothing_to_pick_says_what_it_looked_for(sds_root, tmp_path, capsys, options, expected):
    root = sds_root / "2024" if options == ["--root-too-deep"] else sds_root
    options = [] if options == ["--root-too-deep"] else options
    out = tmp_path / "picks.csv"
    code = main(["pick", "--sds", str(root), *options, "--picker", "stalta", "--workers", "0",
                 "--out", str(out), "--no-progress"])
    assert code == 1
    line = one_error_line(capsys)
    assert line.startswith("xiaonet pick: nothing to pick: ") and expected in line, line
    assert not out.exists()


def test_files_whose_channels_do_not_match_the_selection_are_refused(tmp_path, capsys):
    code = main(["pick", str(_written(tmp_path)), "--select", "YY.*.*.*", "--picker", "stalta", "--workers", "0",
                 "--out", str(tmp_path / "picks.csv"), "--no-progress"])
    assert code == 1
    assert "it holds XX.ABC..HH?" in one_error_line(capsys)


def test_seedlink_to_a_host_that_does_not_resolve_is_refused_at_once(capsys):
    code = main(["stream", "--seedlink", "no-such-host.invalid:18000", "--select", "XX.ABC", "--picker", "stalta"])
    assert code == 2
    assert "host 'no-such-host.invalid' does not resolve" in one_error_line(capsys)


def test_seedlink_server_never_reached_is_an_error_after_the_connect_timeout(capsys):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["stream", "--seedlink", f"127.0.0.1:{port}", "--select", "XX.ABC", "--picker", "stalta",
                 "--connect-timeout", "1", "--backoff-max", "0.5"])
    assert code == 1
    err = capsys.readouterr().err
    assert f"xiaonet stream: no connection to SeedLink 127.0.0.1:{port} in" in err
    assert "counters:" not in err  # nothing was counted: no empty counters line
