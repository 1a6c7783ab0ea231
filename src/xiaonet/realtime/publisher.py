"""``xiaonet stream --publish``: the pick sink that sends picks to an MQTT broker and keeps each one
until it is known delivered (the protocol: :mod:`xiaonet.realtime.mqtt`; the messages:
:mod:`xiaonet.realtime.pick_messages`)."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from typing import Callable

from xiaonet.realtime.mqtt import (BrokerAddress, ConnectionOptions, default_client_name, new_client,
                                   publish_packet_bytes, unique_client_id)
from xiaonet.realtime.pick_messages import new_run_id, pick_message, software_name, wire_pick

logger = logging.getLogger(__name__)

#: Picks in one message at most (a reconnect's resend, a replay, a long batch are cut in pieces).
MAX_PICKS_PER_MESSAGE = 100
#: At the end, a publisher that has heard from no subscriber waits this long after its
#: ``finished`` status for one to answer.
FINISHED_GRACE_S = 0.5
#: At the end, the ``finished`` status is said again this often until a subscriber confirms.
FINISHED_REPEAT_S = 2.0


class MqttPickSink:
    """A pick sink of :func:`xiaonet.realtime.session.run_session` that publishes picks, QoS 1.

    **Batching.** The picks the engine emits in one step (one :meth:`flush`) go out in one
    message; with ``batch_s`` > 0 they wait, the oldest at most ``batch_s`` seconds: by the data
    clock :meth:`flush` is given (they go at the last step before the oldest would wait longer,
    the clock moving as at its last step) or by the wall clock (a source gone quiet), whichever
    comes first.

    **Exactly once.** Every pick (its id: ``publisher`` + ``run`` + ``seq``; :attr:`run` is new
    each time a publisher starts, so a restart under the same name is a new sequence) is kept in :attr:`pending`
    until the broker acknowledges the message that carried it, and sent again on each reconnect,
    so a broker that is away (paho reconnects with back-off up to ``options.backoff_max_s``)
    delays picks and loses none. :attr:`pending` holds at most ``max_buffer`` picks; beyond that
    the oldest is dropped, counted in ``dropped`` and named on ``note`` (never silently). A broker
    passes a message only to the subscribers connected at that moment, so the broker's
    acknowledgement is not delivery: the last ``history`` picks are kept to answer a subscriber's
    replay request (it asks on every connect, when it sees this publisher's status, and for gaps),
    and :meth:`close` waits for a subscriber it has heard from to confirm the last seq.
    ``announce_after_s`` seconds after a burst of picks (or of resends) the status says the last
    seq, so a subscriber whose broker dropped the end of a burst learns of it.

    Threads: paho's network thread only puts what happened (acks, connects, replay requests) into
    a queue; the session's thread acts on them in :meth:`flush`, so no lock is held across a paho
    call from a callback.
    """

    def __init__(self, address: BrokerAddress, options: ConnectionOptions = ConnectionOptions(),
                 publisher: str | None = None, max_buffer: int = 100_000, history: int = 20_000,
                 drain_s: float = 30.0, announce_after_s: float = 300.0, batch_s: float = 0.0,
                 note: Callable[[str], None] = logger.warning):
        self.address, self.note = address, note
        self.publisher = publisher or default_client_name()
        self.run = new_run_id()
        self.software = software_name()
        self.max_buffer, self.drain_s, self.batch_s = int(max_buffer), float(drain_s), float(batch_s)
        self.pending: OrderedDict[int, dict] = OrderedDict()  # seq -> the pick as sent (wire_pick)
        self.history: deque[dict] = deque(maxlen=int(history))
        self.counters = {"picks": 0, "messages_sent": 0, "resent": 0, "acknowledged": 0, "dropped": 0,
                         "replay_requests": 0, "connections": 0, "publish_bytes": 0, "undelivered": 0,
                         "unconfirmed": 0, "held_s_max": 0.0, "held_s_total": 0.0, "held_picks": 0}
        self._next_seq = 0
        self._new: list[int] = []  # picks since the last flush
        self._unsent: list[tuple[int, float | None]] = []  # (seq, data clock when emitted), waiting
        self._opened_wall = 0.0  # when the oldest of _unsent was emitted (wall clock)
        self._clock: float | None = None  # the newest data time flush was given
        self._step = 0.0  # how far the data clock moved at its last step
        self._mid_seqs: dict[int, list[int]] = {}
        self._events: queue.SimpleQueue = queue.SimpleQueue()  # ("ack", mid) / ("up", None) / ("replay", bytes)
        self._online = threading.Event()
        self._sending = False
        self._subscriber_seen = False  # a subscriber asked for a replay: it confirms what it has
        self._confirmed = -1  # the highest seq a subscriber said it has, with all before it
        self._down_noted = False
        self._refused: str | None = None
        self.announce_after_s = float(announce_after_s)
        self._announced_seq: int | None = None
        self._last_activity = time.monotonic()
        self.client = new_client(address, options, unique_client_id("pub", self.publisher))
        self.client.will_set(address.status_topic, json.dumps({"publisher": self.publisher, "run": self.run,
                                                                   "state": "offline"}),
                             qos=1)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = lambda client, userdata, mid, reason, properties: self._events.put(("ack", mid))
        self.client.on_message = lambda client, userdata, message: self._events.put(("replay", message.payload))
        self.client.connect_async(address.host, address.port, keepalive=options.keepalive_s)
        self.client.loop_start()

    # --- paho's thread ----------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._events.put(("refused", str(reason_code)))
            return
        client.subscribe(self.address.replay_topic, qos=1)
        self._online.set()
        self._events.put(("up", None))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._online.clear()

    # --- the session's thread ---------------------------------------------------------------

    def pick(self, row: dict, table_row: dict | None = None) -> None:
        seq = self._next_seq
        self._next_seq += 1
        message_pick = wire_pick(row, seq)
        self.counters["picks"] += 1
        self._last_activity = time.monotonic()
        self.pending[seq] = message_pick
        self.history.append(message_pick)
        self._new.append(seq)
        if len(self.pending) > self.max_buffer:
            lost, _ = self.pending.popitem(last=False)
            self.counters["dropped"] += 1
            self.note(f"MQTT {self.address}: buffer full ({self.max_buffer} picks), pick {lost} dropped")

    def event(self, line: dict) -> None:
        pass  # events are the associator's to publish (xiaonet detect --subscribe --publish-events)

    def flush(self, data_time: float | None = None) -> None:
        """Act on what paho's thread reported (acknowledgements, a (re)connection: resend what
        is pending, replay requests), then send the picks waiting if their batch is due.
        ``data_time``: the session's data clock (the newest sample's time, epoch s), if known."""
        if data_time is not None:
            if self._clock is not None and data_time > self._clock:
                self._step = float(data_time) - self._clock
            self._clock = float(data_time) if self._clock is None else max(self._clock, float(data_time))
        now = time.monotonic()
        if self._new:
            if not self._unsent:
                self._opened_wall = now
            self._unsent += [(seq, self._clock) for seq in self._new]
            self._new = []
        self._act()
        if self._sending and self._unsent and self._batch_due(now):
            self._release()
        quiet = time.monotonic() - self._last_activity >= self.announce_after_s
        if quiet and self._online.is_set() and self._announced_seq != self._next_seq - 1:
            self._status("online")
        if not self._online.is_set() and self.pending and not self._down_noted:
            self._down_noted = True
            self.note(f"MQTT {self.address}: broker not reachable; buffering picks (up to {self.max_buffer})")

    def _batch_due(self, now: float) -> bool:
        """Whether the oldest pick waiting would wait more than ``batch_s`` by the next step (the
        data clock moving as at its last step) or has waited ``batch_s`` on the wall clock."""
        if self.batch_s <= 0:
            return True
        first_clock = self._unsent[0][1]
        if self._clock is not None and first_clock is not None:
            if self._clock + self._step - first_clock > self.batch_s:
                return True
        return now - self._opened_wall >= self.batch_s

    def _release(self) -> None:
        """Send the picks waiting (those the buffer did not drop), noting how long each waited."""
        seqs = [seq for seq, _ in self._unsent if seq in self.pending]
        for _, emitted in self._unsent:
            held = self._clock - emitted if self._clock is not None and emitted is not None else 0.0
            self.counters["held_s_max"] = max(self.counters["held_s_max"], held)
            self.counters["held_s_total"] += held
            self.counters["held_picks"] += 1
        self._unsent = []
        self._send(seqs)

    def _act(self) -> None:
        while True:
            try:
                kind, value = self._events.get_nowait()
            except queue.Empty:
                break
            if kind == "ack":
                for seq in self._mid_seqs.pop(value, ()):
                    if self.pending.pop(seq, None) is not None:
                        self.counters["acknowledged"] += 1
            elif kind == "up":
                self.counters["connections"] += 1
                if self.counters["connections"] > 1 or self.pending:
                    self.note(f"MQTT {self.address}: connected; sending {len(self.pending)} buffered pick(s)")
                self._down_noted, self._refused = False, None
                self._sending = True  # from here on, picks go out as their batch is due
                self._status("online")
                unsent = {seq for seq, _ in self._unsent}
                self._send([seq for seq in self.pending if seq not in unsent], resend=True)
            elif kind == "replay":
                self._answer_replay(value)
                self._announced_seq = None  # say again where we are once the resends are out
            elif kind == "refused" and value != self._refused:  # paho keeps retrying: say it once
                self._refused = value
                self.note(f"MQTT {self.address}: connection refused ({value})")
        if not self._online.is_set():
            self._sending = False  # until the next "up" has resent what is pending

    def close(self) -> None:
        """Send what waits, then wait up to ``drain_s`` for the broker to acknowledge every pick
        and, once a subscriber has been heard from, for it to confirm the last one (a broker
        restarted with this publisher back before the subscriber acknowledges picks nobody
        receives; the subscriber asks for them when it is back). A publisher that has heard from
        no subscriber says it is finished and leaves once the broker has everything. Then
        disconnect. What the broker did not acknowledge is counted in ``undelivered``, what no
        subscriber confirmed in ``unconfirmed``; both are named."""
        deadline = time.monotonic() + self.drain_s
        last, next_status, grace_until = self._next_seq - 1, 0.0, None
        self.flush()
        while True:
            self._act()
            if self._sending and self._unsent:
                self._release()
            now = time.monotonic()
            delivered = not self.pending and not self._unsent
            confirmed = self._subscriber_seen and self._confirmed >= last
            if delivered and self._online.is_set() and now >= next_status and not confirmed:
                self._status("finished")  # say again that we are done, until confirmed
                next_status = now + FINISHED_REPEAT_S
                grace_until = grace_until or now + FINISHED_GRACE_S
            unheard = not self._subscriber_seen and (not self._online.is_set() or (grace_until and now >= grace_until))
            if delivered and (confirmed or unheard):
                break
            if now >= deadline:
                break
            time.sleep(0.05)
        if next_status == 0.0:
            self._status("finished")
        self.counters["undelivered"] = len(self.pending)
        if self.pending:
            self.note(f"MQTT {self.address}: {len(self.pending)} pick(s) not acknowledged by the broker after "
                      f"{self.drain_s:g} s; they were not delivered")
        elif self._subscriber_seen and self._confirmed < last:
            self.counters["unconfirmed"] = last - self._confirmed
            self.note(f"MQTT {self.address}: no subscriber confirmed picks after seq {self._confirmed} of "
                      f"{last} within {self.drain_s:g} s; a subscriber away when they were sent missed them")
        self.client.disconnect()
        self.client.loop_stop()

    def _send(self, seqs: list[int], resend: bool = False, picks: dict | None = None) -> None:
        """``seqs`` in messages of at most :data:`MAX_PICKS_PER_MESSAGE` picks (from ``picks``,
        by default :attr:`pending`)."""
        source = self.pending if picks is None else picks
        for start in range(0, len(seqs), MAX_PICKS_PER_MESSAGE):
            chunk = seqs[start:start + MAX_PICKS_PER_MESSAGE]
            payload = pick_message([source[seq] for seq in chunk], self.publisher, self.run, self.software)
            info = self.client.publish(self.address.topic, payload, qos=1)
            self._mid_seqs[info.mid] = chunk
            self.counters["messages_sent"] += 1
            self.counters["resent"] += len(chunk) if resend else 0
            self.counters["publish_bytes"] += publish_packet_bytes(self.address.topic, payload)

    def _status(self, state: str) -> None:
        if self._online.is_set():
            self._announced_seq = self._next_seq - 1
            oldest = self.history[0]["seq"] if self.history else self._next_seq
            self.client.publish(self.address.status_topic, json.dumps(
                {"publisher": self.publisher, "run": self.run, "state": state, "last_seq": self._next_seq - 1,
                 "oldest_seq": oldest}), qos=1)

    def _answer_replay(self, payload: bytes) -> None:
        try:
            request = json.loads(payload)
            marks = request.get("marks", {}).get(self.publisher, {})  # this publisher's runs
            after = int(marks.get(self.run, -1))
            upto = request.get("upto", {}).get(self.publisher, {}).get(self.run)
            upto = int(upto) if upto is not None else self._next_seq - 1
        except (ValueError, AttributeError, TypeError):
            self.note(f"MQTT {self.address.replay_topic}: malformed replay request skipped (expected "
                      f'{{"marks": {{publisher: {{run: seq}}}}}}): {payload[:80]!r}')
            return
        if request.get("only") and self.run not in marks:
            return  # a gap of another publisher, or of an earlier run of this one
        self._subscriber_seen = True
        self._confirmed = max(self._confirmed, after)
        self.counters["replay_requests"] += 1
        if not self._online.is_set():
            return
        waiting = {seq for seq, _ in self._unsent}  # they go out with their batch
        wanted = {p["seq"]: p for p in self.history if after < p["seq"] <= upto and p["seq"] not in waiting}
        self._send(list(wanted), resend=True, picks=wanted)
        self._last_activity = time.monotonic()
