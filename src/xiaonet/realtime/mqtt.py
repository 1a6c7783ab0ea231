"""Picks over MQTT: the broker address, the topics and the paho client.

A station device publishes its final picks (a few hundred bytes each) instead of its waveforms
(:mod:`xiaonet.realtime.publisher`); an associator anywhere subscribes
(:mod:`xiaonet.realtime.subscription`). Topics, for a broker URL ``mqtt://HOST:PORT/TOPIC``:

- ``TOPIC``: messages of picks, QoS 1 (:mod:`xiaonet.realtime.pick_messages`: one pick, or the
  picks of one engine step or batch with their shared fields said once); each pick carries
  ``publisher``, ``run`` (new each time a publisher starts) and ``seq`` (the run's counter), its id.
- ``TOPIC/status``: a publisher's ``{"publisher", "run", "state", "last_seq", "oldest_seq"}`` (the
  range it can still resend) when it connects (``online``), a while after each burst of picks,
  and when it closes (``finished``, repeated until a subscriber confirms); the broker sends
  ``state: "offline"`` for it (its will) when it vanishes.
- ``TOPIC/replay``: a subscriber's ``{"marks": {publisher: {run: seq}}}`` asking every publisher to
  resend its picks after that seq (all it keeps, for a publisher run not named), on every
  (re)connect; with ``"only": true``, only the publishers named answer: a gap in one
  publisher's seq, or the answer to its status, which also confirms the picks up to the mark;
  ``"upto": {publisher: {run: seq}}`` stops the resend at the last seq the subscriber knows was sent
  (what follows is on its way).
- ``TOPIC/events``: events the associator declared, when it is asked to publish them.

QoS 1 is "at least once": a pick may arrive twice (a publisher resends what the broker did not
acknowledge, and answers replay requests), so the subscriber drops repeats by ``publisher`` +
``run`` + ``seq`` and by station, phase and time. A broker's acknowledgement is not delivery: it passes a
message only to the subscribers connected at that moment, and a broker that dies loses what it
held. The replay requests cover both, and a publisher leaves only once a subscriber it has heard
from confirms its last seq (or its drain time ends: counted). What a publisher no longer holds
is counted as lost and named, never waited for.

paho-mqtt is an optional dependency (``pip install 'xiaonet[mqtt]'``), imported on first use.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

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


