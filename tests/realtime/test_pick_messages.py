"""Picks on the wire: one pick or several in a message, read back as the rows that were sent."""

from __future__ import annotations

import json

import obspy
import pytest

from xiaonet.realtime.pick_messages import MalformedPick, decode_picks, pick_message, wire_pick


def row(i: int, phase: str = "P") -> dict:
    return {"network": "O2", "station": "WILZ", "location": "", "channel": "EH?", "phase": phase,
            "time": (obspy.UTCDateTime("2024-02-03T05:19:51.654999Z") + i).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "probability": 0.205191 + i / 100, "uncertainty_s": 0.1614, "snr_db": None, "picker": "xiaonet-m",
            "emitted_at": "2026-12-06T07:45:03.059614Z", "delay_s": 60.345}


def test_a_message_of_several_picks_reads_back_as_each_pick_alone():
    picks = [wire_pick(row(i, "PS"[i % 2]), seq=10 + i) for i in range(3)]
    batch = decode_picks(pick_message(picks, "wilz", "r1"))
    alone = [decode_picks(pick_message([p], "wilz", "r1"))[0] for p in picks]
    assert batch == alone
    assert [r["seq"] for r in batch] == [10, 11, 12] and [r["phase"] for r in batch] == ["P", "S", "P"]
    first = batch[0]
    assert first["publisher"] == "wilz" and first["run"] == "r1" and first["software"].startswith("xiaonet ")
    assert first["time"] == "2024-02-03T05:19:51.655Z" and first["probability"] == 0.2052
    assert first["location"] == "" and first["snr_db"] is None  # left out as empty, read back as empty
    assert abs(first["_t"] - obspy.UTCDateTime("2024-02-03T05:19:51.655").timestamp) < 1e-6


def test_shared_fields_are_said_once():
    picks = [wire_pick(row(i), seq=i) for i in range(10)]
    message = json.loads(pick_message(picks, "wilz", "r1"))
    assert message["station"] == "WILZ" and message["picker"] == "xiaonet-m"
    assert all(set(p) == {"time", "probability", "seq"} for p in message["picks"])
    single = sum(len(pick_message([p], "wilz", "r1")) for p in picks)
    assert len(pick_message(picks, "wilz", "r1")) < 0.5 * single


def test_a_message_with_a_bad_pick_is_malformed_whole():
    good = wire_pick(row(0), seq=0)
    bad = {k: v for k, v in wire_pick(row(1), seq=1).items() if k != "time"}
    with pytest.raises(MalformedPick, match="pick 1 of 2: missing"):
        decode_picks(pick_message([good, bad], "wilz", "r1"))
    for payload in (b'{"publisher":"p","picks":[]}', b'{"publisher":"p","picks":{"a":1}}', b"[1, 2]"):
        with pytest.raises(MalformedPick):
            decode_picks(payload)


def test_a_message_without_a_run_id_is_refused_with_the_reason():
    """A publisher older than run ids: its seqs could be an earlier run's, so it is not trusted."""
    message = json.loads(pick_message([wire_pick(row(0), seq=0)], "wilz", "r1"))
    del message["run"]
    with pytest.raises(MalformedPick, match="no 'run' id: a publisher older than run ids"):
        decode_picks(json.dumps(message).encode())
