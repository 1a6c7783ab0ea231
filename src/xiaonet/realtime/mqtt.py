"""Picks over MQTT: the broker address, the wire format, and the publishing pick sink.

A station device publishes each final pick (a few hundred bytes) instead of its waveforms;
an associator anywhere subscribes (:mod:`xiaonet.realtime.subscription`). Topics, for a
broker URL ``mqtt://HOST:PORT/TOPIC``:

- ``TOPIC``: one JSON pick per message, QoS 1: the streamed pick row (every field, so fields
  added to pick rows flow through) plus ``publisher``, ``seq`` (a per-publisher counter) and
  ``software`` (``xiaonet VERSION``).
- ``TOPIC/status``: a publisher's ``{"publisher", "state", "last_seq", "oldest_seq"}`` (the
  range it can still resend) when it connects, a few
  seconds after each burst of picks, and when it closes; the broker sends ``state: "offline"`` for it (its will) when it vanishes.
- ``TOPIC/replay``: a subscriber's ``{"marks": {publisher: seq}}`` asking every publisher to
  resend its picks after that seq (all it keeps, for a publisher not named); with
  ``"only": true``, only the publishers named answer (a gap in one publisher's seq).
- ``TOPIC/events``: events the associator declared, when it is asked to publish them.

QoS 1 is "at least once": a pick may arrive twice (a publisher resends what the broker did not
acknowledge, and answers replay requests), so the subscriber drops repeats by ``publisher`` +
``seq`` and by station, phase and time. What QoS 1 does not cover, a broker that acknowledged a
pick and died before passing it on, the replay request covers: a subscriber asks for one on
every (re)connect and, with back-off, while a publisher's ``seq`` has a gap or its status names
a later seq; what a publisher no longer holds is counted as lost and named, never waited for.

paho-mqtt is an optional dependency (``pip install 'xiaonet[mqtt]'``), imported on first use.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable
from urllib.parse import unquote, urlsplit

logger = logging.getLogger(__name__)

MQTT_INSTALL_HINT = "MQTT needs paho-mqtt: pip install 'xiaonet[mqtt]'"


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is and which topic carries the picks."""

    host: str
    port: int
    topic: str
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @property
    def status_topic(self) -> str:
        return f"{self.topic}/status"

    @property
    def replay_topic(self) -> str:
        return f"{self.topic}/replay"

    @property
    def events_topic(self) -> str:
        return f"{self.topic}/events"

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}/{self.topic}"


def parse_broker_url(url: str, option: str = "--publish") -> BrokerAddress:
    """``mqtt://[USER[:PASSWORD]@]HOST[:PORT]/TOPIC`` (port 1883) or ``mqtts://...`` (TLS, port 8883).

    >>> parse_broker_url("mqtt://localhost:1884/xiaonet/picks")
    BrokerAddress(host='localhost', port=1884, topic='xiaonet/picks', tls=False, username=None, password=None)
    """
    expected = f"{option} {url!r}: expected mqtt://HOST:PORT/TOPIC or mqtts://HOST:PORT/TOPIC"
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(expected)
    topic = parts.path.lstrip("/")
    if not topic or any(c in topic for c in "+#") or topic.endswith("/"):
        raise ValueError(f"{expected} (a topic without wildcards, e.g. xiaonet/picks)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(expected) from None
    tls = parts.scheme == "mqtts"
    return BrokerAddress(parts.hostname, port or (8883 if tls else 1883), topic, tls,
                         unquote(parts.username) if parts.username else None,
                         unquote(parts.password) if parts.password else None)


@dataclass(frozen=True)
class ConnectionOptions:
    """How to log in: user/password (``--mqtt-user``, ``--mqtt-password-env``; they override the
    URL's), the CA file for ``mqtts://`` (default: the system's), keepalive and back-off."""

    username: str | None = None
    password: str | None = None
    cafile: str | None = None
    keepalive_s: int = 30
    backoff_max_s: float = 10.0


def require_paho():
    """The paho-mqtt client module, or a one-line RuntimeError saying how to install it."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise RuntimeError(MQTT_INSTALL_HINT) from None
    return mqtt


def new_client(address: BrokerAddress, options: ConnectionOptions, client_id: str):
    """A paho client (MQTT 3.1.1, clean session) with the login, TLS and back-off asked for;
    not yet connected."""
    mqtt = require_paho()
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=True, protocol=mqtt.MQTTv311)
    username = options.username or address.username
    if username:
        client.username_pw_set(username, options.password or address.password)
    if address.tls:
        client.tls_set(ca_certs=options.cafile)
    client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(options.backoff_max_s)))
    return client


def default_client_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def unique_client_id(role: str, name: str) -> str:
    """A broker disconnects a client when another connects with its id, so every connection gets
    its own (clean sessions: nothing is tied to the id)."""
    return f"xiaonet-{role}-{name}-{uuid.uuid4().hex[:8]}"


def publish_packet_bytes(topic: str, payload: bytes, qos: int = 1) -> int:
    """Bytes of one MQTT 3.1.1 PUBLISH packet on the wire (TCP/IP headers not counted).

    >>> publish_packet_bytes("xiaonet/picks", b"x" * 200)
    220
    """
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + len(payload)
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else 3 if remaining < 2097152 else 4
    return 1 + length_bytes + remaining


def pick_message(row: dict, publisher: str, seq: int) -> bytes:
    """One pick on the wire: the whole streamed row plus who sent it and its number."""
    from xiaonet import __version__

    return json.dumps({**row, "publisher": publisher, "seq": seq, "software": f"xiaonet {__version__}"},
                      separators=(",", ":")).encode()


class MqttPickSink:
    """A pick sink of :func:`xiaonet.realtime.session.run_session` that publishes each pick, QoS 1.

    Every pick is kept in :attr:`pending` until the broker acknowledges it (PUBACK) and sent again
    on each reconnect, so a broker that is away (paho reconnects with back-off up to
    ``options.backoff_max_s``) delays picks and loses none. :attr:`pending` holds at most
    ``max_buffer`` picks; beyond that the oldest is dropped, counted in ``dropped`` and named on
    ``note`` (never silently). The last ``history`` picks are kept to answer replay requests, and
    ``announce_after_s`` seconds after a burst of picks (or of resends) the publisher's status says
    its last seq: a subscriber whose broker dropped the end of the burst (Mosquitto drops what
    overflows a slow client's queue) learns of it and asks for a replay.

    Threads: paho's network thread only puts what happened (acks, connects, replay requests) into
    queues; the session's thread acts on them in :meth:`flush` (called after every batch), so
    no lock is held across a paho call from a callback.
    """

    def __init__(self, address: BrokerAddress, options: ConnectionOptions = ConnectionOptions(),
                 publisher: str | None = None, max_buffer: int = 100_000, history: int = 20_000,
                 drain_s: float = 30.0, announce_after_s: float = 300.0,
                 note: Callable[[str], None] = logger.warning):
        self.address, self.note = address, note
        self.publisher = publisher or default_client_name()
        self.max_buffer, self.drain_s = int(max_buffer), float(drain_s)
        self.pending: OrderedDict[int, bytes] = OrderedDict()
        self.history: deque[tuple[int, bytes]] = deque(maxlen=int(history))
        self.counters = {"picks": 0, "messages_sent": 0, "resent": 0, "acknowledged": 0, "dropped": 0,
                         "replay_requests": 0, "connections": 0, "publish_bytes": 0, "undelivered": 0,
                         "unconfirmed": 0}
        self._next_seq = 0
        self._mid_seq: dict[int, int] = {}
        self._events: queue.SimpleQueue = queue.SimpleQueue()  # ("ack", mid) / ("up", None) / ("replay", bytes)
        self._online = threading.Event()
        self._sending = False
        self._subscriber_seen = False  # a subscriber asked for a replay: it confirms what it has
        self._confirmed = -1  # the highest seq a subscriber said it has, with all before it
        self._down_noted = False
        self._refused: str | None = None
        # the last seq told to subscribers (status), so one that missed the end of a burst asks for it
        self.announce_after_s = float(announce_after_s)
        self._announced_seq: int | None = None
        self._last_activity = time.monotonic()
        self.client = new_client(address, options, unique_client_id("pub", self.publisher))
        self.client.will_set(address.status_topic, json.dumps({"publisher": self.publisher, "state": "offline"}),
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
        payload = pick_message(row, self.publisher, seq)
        self.counters["picks"] += 1
        self._last_activity = time.monotonic()
        self.pending[seq] = payload
        self.history.append((seq, payload))
        if len(self.pending) > self.max_buffer:
            lost, _ = self.pending.popitem(last=False)
            self.counters["dropped"] += 1
            self.note(f"MQTT {self.address}: buffer full ({self.max_buffer} picks), pick {lost} dropped")
        if self._sending:
            self._send(seq, payload)
        self.flush()

    def event(self, line: dict) -> None:
        pass  # events are the associator's to publish (xiaonet detect --subscribe --publish-events)

    def flush(self) -> None:
        """Act on what paho's thread reported: acknowledgements, a (re)connection (resend what is
        pending, say who we are), replay requests."""
        while True:
            try:
                kind, value = self._events.get_nowait()
            except queue.Empty:
                break
            if kind == "ack":
                seq = self._mid_seq.pop(value, None)
                if seq is not None and self.pending.pop(seq, None) is not None:
                    self.counters["acknowledged"] += 1
            elif kind == "up":
                self.counters["connections"] += 1
                if self.counters["connections"] > 1 or self.pending:
                    self.note(f"MQTT {self.address}: connected; sending {len(self.pending)} buffered pick(s)")
                self._down_noted, self._refused = False, None
                self._sending = True  # from here on, new picks go out at once
                self._status("online")
                for seq, payload in list(self.pending.items()):
                    self._send(seq, payload, resend=True)
            elif kind == "replay":
                self._answer_replay(value)
                self._announced_seq = None  # say again where we are once the resends are out
            elif kind == "refused" and value != self._refused:  # paho keeps retrying: say it once
                self._refused = value
                self.note(f"MQTT {self.address}: connection refused ({value})")
        if not self._online.is_set():
            self._sending = False  # until the next "up" has resent what is pending
        quiet = time.monotonic() - self._last_activity >= self.announce_after_s
        if quiet and self._online.is_set() and self._announced_seq != self._next_seq - 1:
            self._status("online")
        if not self._online.is_set() and self.pending and not self._down_noted:
            self._down_noted = True
            self.note(f"MQTT {self.address}: broker not reachable; buffering picks (up to {self.max_buffer})")

    def close(self) -> None:
        """Wait up to ``drain_s`` for the broker to acknowledge every pick and, once a subscriber
        has been heard from (a replay request), for it to confirm the last one: a broker passes a
        pick only to subscribers connected at that moment, so one restarting must still be able
        to ask. Then disconnect. What the broker did not acknowledge is counted in
        ``undelivered``, what no subscriber confirmed in ``unconfirmed``; both are named."""
        deadline = time.monotonic() + self.drain_s
        self.flush()
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.05)
            self.flush()
        last, next_status = self._next_seq - 1, 0.0
        while self._subscriber_seen and self._confirmed < last and time.monotonic() < deadline:
            if time.monotonic() >= next_status:  # say again that we are done, until confirmed
                self._status("finished")
                next_status = time.monotonic() + 2.0
            time.sleep(0.05)
            self.flush()
        if next_status == 0.0:
            self._status("finished")
            time.sleep(0.1)
            self.flush()
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

    def _send(self, seq: int, payload: bytes, resend: bool = False) -> None:
        info = self.client.publish(self.address.topic, payload, qos=1)
        self._mid_seq[info.mid] = seq
        self.counters["messages_sent"] += 1
        self.counters["resent"] += int(resend)
        self.counters["publish_bytes"] += publish_packet_bytes(self.address.topic, payload)

    def _status(self, state: str) -> None:
        if self._online.is_set():
            self._announced_seq = self._next_seq - 1
            oldest = self.history[0][0] if self.history else self._next_seq
            self.client.publish(self.address.status_topic, json.dumps(
                {"publisher": self.publisher, "state": state, "last_seq": self._next_seq - 1,
                 "oldest_seq": oldest}), qos=1)

    def _answer_replay(self, payload: bytes) -> None:
        try:
            request = json.loads(payload)
            marks = request.get("marks", {})
            after = int(marks.get(self.publisher, -1))
        except (ValueError, AttributeError, TypeError):
            self.note(f"MQTT {self.address.replay_topic}: malformed replay request skipped: {payload[:80]!r}")
            return
        if request.get("only") and self.publisher not in marks:
            return  # a gap of another publisher
        self._subscriber_seen = True
        self._confirmed = max(self._confirmed, after)
        self.counters["replay_requests"] += 1
        if not self._online.is_set():
            return
        for seq, message in self.history:
            if seq > after:
                self._send(seq, message, resend=True)
        self._last_activity = time.monotonic()
