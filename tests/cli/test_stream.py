"""``xiaonet stream`` in-process: replay and a loopback SeedLink server give the offline picks."""

from __future__ import annotations

import csv
import json

import numpy as np
import obspy
import pytest
import torch

from tests.seedlink_server import SeedLinkTestServer, records_from_stream
from tests.stream.test_engine import sharp_student, synthetic_stream
from xiaonet.cli import main
from xiaonet.stream.packet_sources import ReplaySource, cut_into_packets, parse_address, parse_selection
from xiaonet.data.picktable import PICK_COLUMNS
from xiaonet.picking.stalta import StaLtaPicker


def json_picks(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def same_picks(offline, rows, probability=1e-4):
    assert len(offline) > 0, "no offline picks: the comparison would pass vacuously"
    expected = sorted((p.phase, float(p.peak_time.timestamp), float(p.peak_value)) for p in offline)
    got = sorted((r["phase"], obspy.UTCDateTime(r["time"]).timestamp, float(r["probability"])) for r in rows)
    assert len(got) == len(expected), (got, expected)
    for (pa, ta, va), (pb, tb, vb) in zip(expected, got):
        assert pa == pb and abs(ta - tb) <= 0.0101 and abs(va - vb) <= probability


@pytest.fixture(scope="module")
def student_weights(tmp_path_factory):
    torch.set_num_threads(1)
    picker = sharp_student()
    prefix = tmp_path_factory.mktemp("student") / "sharp"
    picker.model.save(str(prefix))
    return str(prefix), picker


@pytest.fixture(scope="module")
def replay_file(tmp_path_factory):
    stream = synthetic_stream(200, "REP", seed=31, events=(40.0, 130.0))
    path = tmp_path_factory.mktemp("replay") / "XX.REP.mseed"
    for trace in stream:
        trace.data = trace.data.astype(np.float32)
    stream.write(str(path), format="MSEED")
    return path, obspy.read(str(path))


def test_replay_prints_the_offline_picks_as_json_lines_and_csv(student_weights, replay_file, tmp_path, capsys):
    prefix, picker = student_weights
    path, stream = replay_file
    out_csv = tmp_path / "picks.csv"
    code = main(["stream", "--replay", str(path), "--picker", prefix, "--threshold", "P=0.5",
                 "--threshold", "S=0.5", "--packet-samples", "300", "--out", str(out_csv)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = json_picks(captured.out)
    same_picks(picker.pick(stream), rows)
    assert all(r["picker"] == "sharp" and "emitted_at" in r for r in rows)
    with open(out_csv, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0].keys()) == list(PICK_COLUMNS) + ["emitted_at"]
    assert [r["time"] for r in table] == [r["time"] for r in rows]
    assert "finished" in captured.err and f"{len(rows)} picks" in captured.err


def test_csv_is_appended_not_overwritten(replay_file, tmp_path, capsys):
    path, _ = replay_file
    out_csv = tmp_path / "picks.csv"
    for _ in range(2):
        assert main(["stream", "--replay", str(path), "--picker", "stalta", "--out", str(out_csv)]) == 0
    n_json = len(json_picks(capsys.readouterr().out))
    lines = out_csv.read_text().splitlines()
    assert lines[0].startswith("network,station") and lines.count(lines[0]) == 1
    assert len(lines) - 1 == n_json > 0


def test_unreadable_file_is_named_and_the_rest_is_still_picked(replay_file, tmp_path, capsys):
    path, stream = replay_file
    bad = tmp_path / "broken.mseed"
    bad.write_bytes(b"not miniseed at all" * 10)
    code = main(["stream", "--replay", str(path), str(bad), "--picker", "stalta"])
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.mseed" in captured.err
    same_picks(StaLtaPicker().pick(stream), json_picks(captured.out), probability=1e-6)


def test_ctrl_c_stops_cleanly_with_a_summary(replay_file, monkeypatch, capsys):
    path, _ = replay_file
    original = ReplaySource.next_batch
    calls = {"n": 0}

    def interrupted(self, timeout=0.2):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return original(self, timeout)

    monkeypatch.setattr(ReplaySource, "next_batch", interrupted)
    code = main(["stream", "--replay", str(path), "--picker", "stalta"])
    captured = capsys.readouterr()
    assert code == 0
    assert "interrupted" in captured.err and "counters:" in captured.err


def test_bad_arguments_are_explained(capsys):
    assert main(["stream"]) == 2
    assert "--replay" in capsys.readouterr().err
    assert main(["stream", "--seedlink", "nohostport", "--select", "XX.STA"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    assert main(["stream", "--seedlink", "127.0.0.1:1"]) == 2
    assert "--select" in capsys.readouterr().err
    with pytest.raises(ValueError, match="NET.STA"):
        parse_selection("XX")
    assert parse_selection("GE.WLF..HH?") == ("GE", "WLF", "HH?")
    assert parse_address("localhost:18000") == ("localhost", 18000)


def test_replay_packets_arrive_in_time_order(replay_file):
    _, stream = replay_file
    packets = cut_into_packets(stream, 333)
    ends = [p.stats.endtime for p in packets]
    assert ends == sorted(ends)
    assert sum(p.stats.npts for p in packets) == sum(tr.stats.npts for tr in stream)
    assert {p.id for p in packets[:3]} == {tr.id for tr in stream}  # channels interleave


@pytest.mark.slow
def test_seedlink_stream_survives_a_dropped_connection(capsys):
    stream = synthetic_stream(120, "SLK", seed=33, events=(50.0,))
    for trace in stream:
        trace.data = np.round(trace.data * 100).astype(np.int32)  # counts, as a digitiser sends
    records = records_from_stream(stream, samples_per_record=200)
    with SeedLinkTestServer(records, drop_after=40, lifetime=60) as server:
        code = main(["stream", "--seedlink", server.address, "--select", "XX.SLK..HH?",
                     "--picker", "stalta", "--timeout", "2", "--duration", "6"])
        commands = list(server.commands)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "1 reconnect(s)" in captured.err
    assert any(c.startswith("DATA 0x") for c in commands)  # resumed after the last record
    assert "duplicate" not in captured.err  # nothing repeated, nothing lost:
    rows = json_picks(captured.out)
    same_picks(StaLtaPicker().pick(stream), rows, probability=1e-6)
    assert len(rows) >= 1 and all(r["station"] == "SLK" for r in rows)


def test_seedlink_source_backs_off_while_the_server_is_down():
    from xiaonet.stream.packet_sources import SeedLinkSource

    notes = []
    source = SeedLinkSource("127.0.0.1:9", ["XX.NONE"], timeout=1, backoff_initial=0.05,
                            backoff_max=0.2, note=notes.append)
    source.start()
    import time

    deadline = time.monotonic() + 5
    while len(notes) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    source.stop()
    waits = [float(n.rsplit("reconnecting in ", 1)[1].split()[0]) for n in notes if "reconnecting in" in n]
    assert waits[:4] == [0.05, 0.1, 0.2, 0.2]
    assert source.connections == 0


def test_replay_at_speed_releases_packets_on_the_replay_clock(replay_file, monkeypatch):
    import xiaonet.stream.packet_sources as sources

    clock = {"now": 1000.0}
    monkeypatch.setattr(sources.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(sources.time, "sleep", lambda seconds: clock.__setitem__("now", clock["now"] + seconds))
    path, stream = replay_file
    source = ReplaySource([path], speed=10.0, packet_samples=100)
    source.start()
    first_end = min(tr.stats.starttime for tr in stream) + 0.99
    released = []
    while (batch := source.next_batch(timeout=0.2)) is not None:
        for packet in batch:
            released.append((clock["now"] - 1000.0, packet.stats.endtime - first_end))
    assert len(released) == source.total_packets
    for wall, data in released:
        assert wall >= data / 10.0 - 1e-9  # never before it is due at 10x real time
        assert wall <= data / 10.0 + 0.2 + 1e-9  # and at most one poll interval late
