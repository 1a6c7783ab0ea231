"""``xiaonet detect --subscribe``: the picks of any number of MQTT publishers, associated online.

:class:`PickSubscription` receives the messages of :mod:`xiaonet.realtime.publisher` (one pick
or several: :mod:`xiaonet.realtime.pick_messages`) and hands out each pick exactly once: repeats (a publisher resending after a reconnect, answering a replay
request, or two publishers sending the same station) are dropped and counted, a malformed
message is logged and skipped. :func:`run_subscription` feeds what it hands out to the
:class:`xiaonet.detect.online.OnlineAssociator` and the declared events to sinks.

The associator's clock: ``wall`` (live stations: an event is final ``delay_s`` after its last
pick by the clock on the wall) or ``picks`` (replayed data, whose times are not now: the newest
pick time received is the clock).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from bisect import bisect_left, insort
from dataclasses import dataclass, field
from typing import Callable

import obspy

from xiaonet.realtime.mqtt import BrokerAddress, ConnectionOptions, default_client_name, new_client, unique_client_id
from xiaonet.realtime.pick_messages import MalformedPick, decode_picks

logger = logging.getLogger(__name__)

#: A publisher run: (``publisher``, ``run``). Its ``seq`` counts from 0; a publisher restarted
#: under the same name is a new run, so its seqs are not taken for the last run's.
RunKey = tuple[str, str]


@dataclass
class _Publisher:
    """The seqs received from one publisher run (:data:`RunKey`): all up to ``mark``, and those in
    ``above``; ``last_known``: the highest seq it is known to have sent (received, or named in its
    status)."""

    mark: int = -1
    above: set = field(default_factory=set)
    last_known: int = -1
    last_request: float = float("-inf")
    retry_s: float = 2.0
    requested_at_mark: int | None = None

    @property
    def gap(self) -> bool:
        return self.mark < self.last_known

    @property
    def missing(self) -> int:
        """Picks it is known to have sent and that never arrived."""
        return max(0, self.last_known - self.mark - len(self.above))

    def seen(self, seq: int) -> bool:
        return seq <= self.mark or seq in self.above

    def record(self, seq: int) -> None:
        self.above.add(seq)
        while self.mark + 1 in self.above:
            self.mark += 1
            self.above.discard(self.mark)


class PickSubscription:
    """Picks from ``address.topic``, each handed out once by :meth:`next_picks`.

    A pick is a repeat when its publisher run sent that ``seq`` before, or when a pick of the same
    station and phase within ``same_pick_s`` seconds was handed out already (two devices on one
    station, a publisher restarted with a fresh counter). ``counters`` says how many of each.
    """

    def __init__(self, address: BrokerAddress, options: ConnectionOptions = ConnectionOptions(),
                 same_pick_s: float = 0.5, memory_s: float = 600.0, note: Callable[[str], None] = logger.warning):
        self.address, self.note = address, note
        self.same_pick_s, self.memory_s = float(same_pick_s), float(memory_s)
        self.publishers: dict[RunKey, _Publisher] = {}
        self.picks_per_publisher: dict[str, int] = {}
        self._recent: dict[tuple[str, str], list[float]] = {}  # (station id, phase) -> sorted times
        self._newest = float("-inf")
        self.counters = {"messages": 0, "picks": 0, "repeated_seq": 0, "same_pick_other_sender": 0,
                         "malformed": 0, "lost": 0, "replay_requests": 0, "connections": 0}
        self._messages: queue.SimpleQueue = queue.SimpleQueue()
        self._online = threading.Event()
        self._refused: str | None = None
        self.client = new_client(address, options, unique_client_id("sub", default_client_name()))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda client, userdata, flags, reason, properties: self._online.clear()
        self.client.on_message = lambda client, userdata, message: self._messages.put((message.topic, message.payload))
        self.client.connect_async(address.host, address.port, keepalive=options.keepalive_s)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._messages.put(("", f"connection refused ({reason_code})"))
            return
        client.subscribe([(self.address.topic, 1), (self.address.status_topic, 1)])
        self._online.set()
        self._messages.put((None, None))  # connected: ask the publishers to fill any gap

    def next_picks(self, timeout: float = 0.2) -> list[dict]:
        """The new picks that arrived (waiting up to ``timeout`` s for a first message)."""
        rows = []
        wait = timeout
        while True:
            try:
                topic, payload = self._messages.get(timeout=wait) if wait else self._messages.get_nowait()
            except queue.Empty:
                self._ask_for_gaps()
                return rows
            wait = 0
            if topic is None:
                self._refused = None
                self.counters["connections"] += 1
                if self.counters["connections"] > 1:
                    self.note(f"MQTT {self.address}: reconnected")
                self.request_replay()
            elif topic == "":
                if payload != self._refused:  # paho keeps retrying: say it once
                    self.note(f"MQTT {self.address}: {payload}")
                self._refused = payload
            elif topic == self.address.status_topic:
                self._status(payload)
            else:
                rows += self._message(payload)

    def _message(self, payload: bytes) -> list[dict]:
        """The new picks of one message (none when it is malformed: counted and named)."""
        self.counters["messages"] += 1
        try:
            picks = decode_picks(payload)
        except MalformedPick as error:
            self.counters["malformed"] += 1
            self.note(f"MQTT {self.address.topic}: malformed message skipped ({error}): {payload[:120]!r}")
            return []
        return [row for row in map(self._pick, picks) if row is not None]

    def _pick(self, row: dict) -> dict | None:
        sender = self.publishers.setdefault((str(row["publisher"]), str(row["run"])), _Publisher())
        sender.last_known = max(sender.last_known, row["seq"])
        if sender.seen(row["seq"]):
            self.counters["repeated_seq"] += 1
            return None
        sender.record(row["seq"])
        key = (f"{row['network']}.{row['station']}", row["phase"])
        times = self._recent.setdefault(key, [])
        i = bisect_left(times, row["_t"] - self.same_pick_s)
        if i < len(times) and times[i] <= row["_t"] + self.same_pick_s:
            self.counters["same_pick_other_sender"] += 1
            return None
        insort(times, row["_t"])
        self._forget(row["_t"])
        self.counters["picks"] += 1
        self.picks_per_publisher[str(row["publisher"])] = self.picks_per_publisher.get(str(row["publisher"]), 0) + 1
        return row

    def _forget(self, t: float) -> None:
        """Keep ``memory_s`` seconds of pick times for the repeat check (a bounded memory)."""
        if t <= self._newest + 10.0:  # a sweep over every station now and then, not per pick
            return
        self._newest = t
        cut = t - self.memory_s
        for key, times in list(self._recent.items()):
            if times and times[0] < cut:
                del times[:bisect_left(times, cut)]
                if not times:
                    del self._recent[key]

    def _status(self, payload: bytes) -> None:
        try:
            status = json.loads(payload)
            if not isinstance(status, dict):
                raise TypeError("not a JSON object")
            name, run = str(status["publisher"]), str(status["run"])
            last, oldest = status.get("last_seq"), status.get("oldest_seq")
            last = int(last) if last is not None else -1
            oldest = int(oldest) if oldest is not None else 0
        except (ValueError, KeyError, TypeError):
            self.counters["malformed"] += 1
            self.note(f"MQTT {self.address.status_topic}: malformed status skipped (expected publisher, run, "
                      f"last_seq, oldest_seq; a publisher without 'run' is older than run ids): {payload[:120]!r}")
            return
        sender = self.publishers.setdefault((name, run), _Publisher())
        sender.last_known = max(sender.last_known, last)
        lost = [seq for seq in range(sender.mark + 1, oldest) if seq not in sender.above]
        if lost:  # the publisher no longer holds them: say so, and stop asking
            self.counters["lost"] += len(lost)
            self.note(f"MQTT {self.address}: {len(lost)} pick(s) of publisher {name} run {run} "
                      f"(seq {lost[0]} to {lost[-1]}) "
                      "were lost: it no longer holds them")
            for seq in lost:
                sender.record(seq)
        if status.get("state") in ("online", "finished") and self._online.is_set():
            # confirm what we have and ask for the rest: a publisher that connects learns that a
            # subscriber listens (it then waits for this confirmation before it leaves), and one
            # back after a broker restart resends what that broker acknowledged and lost
            self.client.publish(self.address.replay_topic, json.dumps(
                {"marks": {name: {run: sender.mark}}, "upto": {name: {run: sender.last_known}}, "only": True}), qos=1)

    def _ask_for_gaps(self) -> None:
        """A gap stays open until filled: ask again, waiting 2 s, then twice as long each time the
        answer did not move it (up to 30 s); the request or its answer may be lost too."""
        for key, sender in self.publishers.items():
            if sender.gap:
                self.request_replay(key)

    def request_replay(self, publisher: RunKey | None = None) -> None:
        """Ask publishers to resend what follows the last seq received without a gap (all of it
        for a publisher run not heard from); for one publisher run with back-off
        (:meth:`_ask_for_gaps`). A request is ``{"marks": {publisher: {run: seq}}}``."""
        if not self._online.is_set():
            return
        now = time.monotonic()
        if publisher is not None:
            sender = self.publishers[publisher]
            if now - sender.last_request < sender.retry_s:
                return
            moved = sender.requested_at_mark != sender.mark
            sender.retry_s = 2.0 if moved else min(2 * sender.retry_s, 30.0)
            sender.last_request, sender.requested_at_mark = now, sender.mark
        self.counters["replay_requests"] += 1
        if publisher is None:  # (re)connected: everyone, and all of it from those not heard from
            marks: dict[str, dict[str, int]] = {}
            for (name, run), sender in self.publishers.items():
                marks.setdefault(name, {})[run] = sender.mark
            request = {"marks": marks}
        else:  # a gap: only that run answers, with what is known sent (what follows comes anyway)
            sender, (name, run) = self.publishers[publisher], publisher
            request = {"marks": {name: {run: sender.mark}}, "upto": {name: {run: sender.last_known}}, "only": True}
        self.client.publish(self.address.replay_topic, json.dumps(request), qos=1)

    def publish_event(self, line: dict) -> None:
        self.client.publish(self.address.events_topic, json.dumps(line), qos=1)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class MqttEventSink:
    """Declared events to ``TOPIC/events`` through the subscription's own connection."""

    def __init__(self, subscription: PickSubscription):
        self.subscription = subscription

    def pick(self, row: dict, table_row: dict | None = None) -> None:
        pass

    def event(self, line: dict) -> None:
        self.subscription.publish_event(line)

    def flush(self, data_time: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class SubscriptionSummary:
    elapsed_s: float = 0.0
    picks: int = 0  # picks handed out
    rows: list = field(default_factory=list)  # every pick handed out, when kept (for the catalog on exit)
    events: int = 0
    late: int = 0
    interrupted: bool = False


def run_subscription(subscription: PickSubscription, detector, pick_sinks: list, event_sinks: list,
                     clock: str = "wall",
                     duration_s: float | None = None, idle_exit_s: float | None = None,
                     keep_rows: bool = True) -> SubscriptionSummary:
    """Associate the subscription's picks until ``duration_s`` wall seconds, ``idle_exit_s``
    seconds without a new pick (after the first), or Ctrl-C. Each pick handed out goes to
    ``pick_sinks`` (a CSV table, say), each event to ``event_sinks`` as it is declared, and the
    rest at the end (:meth:`OnlineAssociator.flush`)."""
    from xiaonet.detect.online import event_json

    if clock not in ("wall", "picks"):
        raise ValueError(f"clock must be 'wall' or 'picks', got {clock!r}")
    summary = SubscriptionSummary()
    started = last_pick = time.monotonic()

    def declare(events) -> None:
        for event in events:
            summary.events += 1
            line = json.loads(event_json(event))  # declared_at is the clock already; no simulated latency
            for sink in event_sinks:
                sink.event(line)
        for sink in event_sinks:
            sink.flush()

    try:
        while True:
            now = time.monotonic()
            if duration_s is not None and now - started > duration_s:
                break
            if idle_exit_s is not None and summary.picks and now - last_pick > idle_exit_s:
                break
            rows = subscription.next_picks(timeout=0.2)
            if rows:
                last_pick = time.monotonic()
                summary.picks += len(rows)
                horizon = detector.clock - detector.window_s
                late = [r for r in rows if r["_t"] < horizon]
                if late and not summary.late:
                    subscription.note(f"{len(late)} pick(s) older than the associator's window ({detector.window_s:g} s "
                                      "behind its clock) cannot join an event" +
                                      ("; for replayed data use --clock picks" if clock == "wall" else ""))
                summary.late += len(late)
                clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
                if keep_rows:
                    summary.rows += clean
                for sink in pick_sinks:
                    for row in clean:
                        sink.pick(row)
                    sink.flush()
                detector.add(clean)
            if clock == "wall":
                declare(detector.advance(obspy.UTCDateTime()))
            elif rows:
                declare(detector.advance(obspy.UTCDateTime(detector.clock)))
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        try:
            declare(detector.flush())
        except KeyboardInterrupt:
            summary.interrupted = True
        subscription.stop()
        for sink in [*pick_sinks, *event_sinks]:
            sink.close()
    summary.elapsed_s = time.monotonic() - started
    return summary
