"""The edge network's two measured runs, as scripts (not collected as tests: they take minutes).

``restart``: publishers (``xiaonet stream --replay ... --publish``, each a share of the records),
one ``xiaonet detect --subscribe``, a real Mosquitto (tests/mqtt_broker.py) killed (SIGKILL) when
the first picks come out and started again ``--down`` seconds later; each try prints the picks
sent, received once and repeated, per publisher, from the commands' own closing lines::

    python -m tests.edge_replay restart --tries 5 \\
        --records ../shared/data/continuous/okla_YW_lasso_seisscan --publishers 3

``bytes``: one publisher through a byte-counting TCP relay in front of the broker (bytes each way
and the client's TCP segments, from ``TCP_INFO``), a :class:`PickSubscription` receiving::

    python -m tests.edge_replay bytes --records ../shared/data/continuous/okla_O2_WILZ_easyquake

Both run from the repository root; extra arguments after ``--`` go to every publisher
(``-- --publish-batch-s 10``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.mqtt_broker import MqttTestBroker, free_port

XIAONET = [sys.executable, "-c", "import sys; from xiaonet.cli import main; sys.argv[0] = 'xiaonet'; sys.exit(main())"]
PUBLISHED = re.compile(r"published to \S+ as (\S+): (\d+) picks, (\d+) acknowledged, (\d+) undelivered, "
                       r"(\d+) unconfirmed by a subscriber, (\d+) dropped.*?; (\d+) messages \((\d+) resent\), "
                       r"(\d+) bytes of MQTT PUBLISH, (\d+) connection")
RECEIVED = re.compile(r"(\d+) picks from (\d+) publisher\(s\) (\{.*?\});")
HELD = re.compile(r"picks held ([\d.]+) s on average, ([\d.]+) s at most")
REPEATS = re.compile(r"messages (\d+): repeats dropped (\d+) \(same publisher and seq\), (\d+) \(same station")


def shares(records: Path, n: int) -> list[list[str]]:
    """The miniSEED files of ``records`` split in ``n`` by file name, as ``split -n l/N`` does."""
    files = sorted(str(p) for p in records.glob("*.mseed"))
    size, extra = divmod(len(files), n)
    out, start = [], 0
    for k in range(n):
        end = start + size + (k < extra)
        out.append(files[start:end])
        start = end
    return out


def wait_for_log(log: Path, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text():
            return True
        time.sleep(0.1)
    return False


def restart_try(records: Path, publishers: int, down_s: float, folder: Path, extra: list[str],
                kill: bool = True, subscriber_late_s: float | None = None, associator_first: bool = True) -> dict:
    """One try; ``subscriber_late_s``: the subscriber is stopped (SIGSTOP) with the broker and
    resumed that long after the broker is back, so the publishers reconnect first;
    ``associator_first``: the publishers start once the subscriber has connected."""
    folder.mkdir(parents=True, exist_ok=True)
    broker = MqttTestBroker(folder / "broker", mosquitto_options="allow_anonymous true\nlog_type all\n").start()
    url = f"{broker.url}/lasso/picks"
    subscriber = subprocess.Popen(
        XIAONET + ["detect", "--subscribe", url, "--stations", str(records / "station-okl.xml"),
                   "--velocity", str(records / "okl.tvel"), "--clock", "picks", "--delay", "20",
                   "--idle-exit", "60", "--picks-out", str(folder / "received.csv")],
        stdout=open(folder / "events.jsonl", "w"), stderr=open(folder / "subscriber.err", "w"))
    if associator_first:  # up (subscribed, its first replay request out) before the devices start
        connected = wait_for_log(folder / "broker" / "broker-0.log", "as xiaonet-sub-", 60.0)
        assert connected, f"detect --subscribe did not connect within 60 s: {(folder / 'subscriber.err').read_text()}"
        time.sleep(1.0)
    else:  # started 3 s before the devices: slower to start, it connects after them
        time.sleep(3.0)
    started = time.monotonic()
    procs = [subprocess.Popen(XIAONET + ["stream", "--replay", *share, "--publish", url,
                                         "--publisher-id", f"lasso-{k}", *extra],
                              stdout=open(folder / f"picks-{k}.jsonl", "w"), stderr=open(folder / f"publisher-{k}.err", "w"))
             for k, share in enumerate(shares(records, publishers))]
    killed_at = restarted_at = resumed_at = None
    while any(p.poll() is None for p in procs):
        if kill and killed_at is None and any((folder / f"picks-{k}.jsonl").stat().st_size for k in range(publishers)):
            broker.kill()
            killed_at = time.monotonic() - started
            if subscriber_late_s is not None:
                subscriber.send_signal(signal.SIGSTOP)
        if killed_at is not None and restarted_at is None and time.monotonic() - started >= killed_at + down_s:
            broker.start()
            restarted_at = time.monotonic() - started
        if (subscriber_late_s is not None and restarted_at is not None and resumed_at is None
                and time.monotonic() - started >= restarted_at + subscriber_late_s):
            subscriber.send_signal(signal.SIGCONT)
            resumed_at = time.monotonic() - started
        time.sleep(0.05)
    if killed_at is not None and restarted_at is None:  # the publishers gave up before the broker was back
        broker.start()
        restarted_at = time.monotonic() - started
    if subscriber_late_s is not None and resumed_at is None:
        subscriber.send_signal(signal.SIGCONT)
        resumed_at = time.monotonic() - started
    published_done = time.monotonic() - started
    try:
        subscriber.wait(timeout=120)
    except subprocess.TimeoutExpired:
        subscriber.send_signal(signal.SIGINT)
        subscriber.wait(timeout=60)
    broker.kill()
    row = {"killed_at_s": _tenths(killed_at), "restarted_at_s": _tenths(restarted_at),
           "subscriber_resumed_at_s": _tenths(resumed_at),
           "publishers_done_s": round(published_done, 1),
           "exit": [p.returncode for p in procs] + [subscriber.returncode], "sent": {}, "messages": 0, "resent": 0}
    for k in range(publishers):
        text = (folder / f"publisher-{k}.err").read_text()
        match = PUBLISHED.search(text)
        if match is None:
            row["sent"][f"lasso-{k}"] = None
            continue
        name, picks, acked, undelivered, unconfirmed, dropped, messages, resent = match.groups()[:8]
        row["sent"][name] = int(picks)
        row["messages"] += int(messages)
        row["resent"] += int(resent)
        row.setdefault("unacknowledged_or_unconfirmed", {})[name] = (int(undelivered), int(unconfirmed), int(dropped))
    text = (folder / "subscriber.err").read_text()
    got, repeats = RECEIVED.search(text), REPEATS.search(text)
    row["received"] = json.loads(got.group(3).replace("'", '"')) if got else None
    row["repeats_dropped"] = int(repeats.group(2)) + int(repeats.group(3)) if repeats else None
    lines = (folder / "received.csv").read_text().splitlines()[1:] if (folder / "received.csv").exists() else []
    keys = [tuple(line.split(",")[:6]) for line in lines]
    row["handed_out"], row["handed_out_twice"] = len(keys), len(keys) - len(set(keys))
    row["event"] = catalog_match(folder / "events.jsonl", records / "event.json")
    row["ok"] = (row["received"] == row["sent"] and row["handed_out_twice"] == 0
                 and row["handed_out"] == sum(v or 0 for v in row["sent"].values()))
    return row


def _tenths(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def catalog_match(events_jsonl: Path, catalog_json: Path) -> dict | None:
    """The final version of the declared event nearest the catalog's (``event.json``: evt0, evla,
    evlo, evdp): its time and epicentre differences, depth and picks."""
    import obspy
    from obspy.geodetics import gps2dist_azimuth

    if not catalog_json.exists() or not events_jsonl.exists():
        return None
    catalog = json.loads(catalog_json.read_text())
    origin = obspy.UTCDateTime(catalog["evt0"])
    finals = {}
    for line in events_jsonl.read_text().splitlines():
        event = json.loads(line)
        if event.get("type") == "event" and event.get("status") == "final":
            finals[event["event"]] = event
    if not finals:
        return None
    best = min(finals.values(), key=lambda e: abs(obspy.UTCDateTime(e["time"]) - origin))
    km = gps2dist_azimuth(catalog["evla"], catalog["evlo"], best["latitude"], best["longitude"])[0] / 1000
    return {"dt_s": round(obspy.UTCDateTime(best["time"]) - origin, 3), "km": round(km, 2),
            "depth_km": best["depth_km"], "n_picks": best["n_picks"], "n_stations": best["n_stations"],
            "events_declared": len(finals)}


class ByteRelay:
    """A TCP relay from a loopback port to the broker counting the bytes each way and, when a
    client's connection ends, its TCP segments (``TCP_INFO`` ``tcpi_segs_out``/``tcpi_segs_in``)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.totals = {"up": 0, "down": 0, "segs_in": 0, "segs_out": 0, "connections": 0}
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.server.accept()
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.totals["connections"] += 1
            threading.Thread(target=self._pipe, args=(client, upstream, "up"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, "down"), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket, key: str) -> None:
        try:
            while data := a.recv(65536):
                self.totals[key] += len(data)
                b.sendall(data)
        except OSError:
            pass
        if key == "up":  # the client's side: segments it sent us and we sent it
            info = a.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
            segs_out, segs_in = struct.unpack_from("II", info, 136)
            self.totals["segs_in"] += segs_in
            self.totals["segs_out"] += segs_out
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def bytes_run(records: Path, folder: Path, extra: list[str]) -> dict:
    from xiaonet.realtime.mqtt import parse_broker_url
    from xiaonet.realtime.subscription import PickSubscription

    folder.mkdir(parents=True, exist_ok=True)
    broker = MqttTestBroker(folder / "broker").start()
    relay = ByteRelay(broker.port)
    address = parse_broker_url(f"{broker.url}/okla/picks")
    subscription = PickSubscription(address, note=print)
    received: list[dict] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            received.extend(subscription.next_picks(timeout=0.05))

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(1.0)
    files = sorted(str(p) for p in records.glob("*.mseed"))
    result = subprocess.run(XIAONET + ["stream", "--replay", *files, "--publish",
                                       f"mqtt://127.0.0.1:{relay.port}/okla/picks", "--publisher-id", "wilz", *extra],
                            stdout=open(folder / "picks.jsonl", "w"), stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)  # the relay has seen the connection end
    done.set()
    poller.join()
    subscription.stop()
    broker.kill()
    match, held = PUBLISHED.search(result.stderr), HELD.search(result.stderr)
    hours = _record_hours(files)
    mseed = sum(os.path.getsize(f) for f in files)
    mqtt = relay.totals["up"] + relay.totals["down"]
    segments = relay.totals["segs_in"] + relay.totals["segs_out"]
    with_headers = mqtt + 52 * segments  # IPv4 20 + TCP 20 + timestamps 12 per segment
    picks = sum(1 for _ in open(folder / "picks.jsonl"))
    return {"exit": result.returncode, "picks": picks, "received": len(received),
            "received_unique": len({(r["publisher"], r["run"], r["seq"]) for r in received}),
            "held_s_mean": float(held.group(1)) if held else None, "held_s_max": float(held.group(2)) if held else None,
            "messages": int(match.group(7)) if match else None, "publish_bytes": int(match.group(9)) if match else None,
            "hours": round(hours, 3), "mseed_bytes": mseed, "mqtt_bytes": mqtt, "segments": segments,
            "with_headers": with_headers, "mqtt_per_station_hour": round(mqtt / hours),
            "with_headers_per_station_hour": round(with_headers / hours),
            "ratio_mqtt": round(mseed / mqtt, 1), "ratio_with_headers": round(mseed / with_headers, 1),
            "stderr_tail": result.stderr.strip().splitlines()[-2:]}


def _record_hours(files: list[str]) -> float:
    import obspy

    stream = obspy.read(files[0], headonly=True)
    for f in files[1:]:
        stream += obspy.read(f, headonly=True)
    stations = {(tr.stats.network, tr.stats.station) for tr in stream}
    span = max(tr.stats.endtime for tr in stream) - min(tr.stats.starttime for tr in stream)
    return len(stations) * span / 3600.0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m tests.edge_replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", choices=["restart", "bytes"])
    parser.add_argument("--records", type=Path, required=True)
    parser.add_argument("--publishers", type=int, default=3)
    parser.add_argument("--tries", type=int, default=1)
    parser.add_argument("--down", type=float, default=10.0, help="restart: seconds the broker stays down")
    parser.add_argument("--no-kill", action="store_true", help="restart: leave the broker up (the baseline)")
    parser.add_argument("--associator-late", type=float, default=None, metavar="S",
                        help="restart: stop the subscriber with the broker and resume it S s after the broker "
                        "is back (the publishers reconnect first)")
    parser.add_argument("--associator-first", action=argparse.BooleanOptionalAction, default=True,
                        help="restart: start the publishers once detect --subscribe has connected (default); "
                        "--no-associator-first starts them 3 s after it, before it connects")
    parser.add_argument("--folder", type=Path, default=None, help="where logs go (default: a temp folder)")
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix=f"edge-{args.run}-"))
    print(f"logs in {folder}", file=sys.stderr)
    if args.run == "bytes":
        print(json.dumps(bytes_run(args.records, folder, extra)))
        return 0
    failures = 0
    for k in range(args.tries):
        row = restart_try(args.records, args.publishers, args.down, folder / f"try-{k}", extra, kill=not args.no_kill,
                          subscriber_late_s=args.associator_late, associator_first=args.associator_first)
        failures += not row["ok"]
        print(json.dumps({"try": k, **row}), flush=True)
    return int(failures > 0)


if __name__ == "__main__":
    sys.exit(main())
