"""Where packets come from: waveform files replayed as packets, or a SeedLink server.

Both sources hand out *batches* of ObsPy ``Trace`` packets through the same interface, so
the ``xiaonet stream`` loop (and the benchmark) does not care where data comes from::

    source.start()
    while (batch := source.next_batch(timeout=0.2)) is not None:
        picks = engine.feed_many(batch)
    source.stop()

``next_batch`` returns an empty list when nothing arrived within ``timeout`` and ``None``
when the source is finished (end of the files; SeedLink never finishes by itself).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import obspy

logger = logging.getLogger(__name__)


# --- Replay --------------------------------------------------------------------------------


def cut_into_packets(stream: obspy.Stream, packet_samples: int = 512) -> list[obspy.Trace]:
    """Cut every trace into packets of ``packet_samples`` samples, in arrival order.

    A packet "arrives" when its last sample has been recorded, so packets are ordered by
    end time: the channels of a station and all stations interleave in data-time order, as a
    network delivers them.
    """
    if packet_samples < 1:
        raise ValueError(f"packet_samples must be at least 1, got {packet_samples}")
    packets: list[obspy.Trace] = []
    for trace in stream:
        s = trace.stats
        for i in range(0, s.npts, packet_samples):
            header = {"network": s.network, "station": s.station, "location": s.location,
                      "channel": s.channel, "sampling_rate": s.sampling_rate,
                      "starttime": s.starttime + i * s.delta}
            packets.append(obspy.Trace(np.array(trace.data[i : i + packet_samples]), header=header))
    packets.sort(key=lambda p: (p.stats.endtime, p.id))
    return packets


@dataclass
class ReplaySource:
    """Waveform files replayed as packets, at ``speed`` x real time (``None``: at once).

    Files that cannot be read (or only in part: a truncated last record) and inputs that
    match nothing are reported through ``note`` by name, kept in ``failures`` and skipped. The
    replay clock starts at the end time of the first packet; a packet is handed out once
    ``(its end time + latency_s - first end time) / speed`` wall-clock seconds have passed.

    ``latency_s`` simulates transmission: every packet reaches the engine that long after its
    last sample was recorded. One delay for all stations keeps the data-time order, so it
    shifts when things happen (``xiaonet stream --detect`` counts it in each event's
    ``after_origin_s``), not what is picked.
    """

    files: Iterable[str | Path]
    speed: float | None = None
    packet_samples: int = 512
    batch_seconds: float = 1.0  # data seconds per batch when replaying at full speed
    latency_s: float = 0.0
    note: Callable[[str], None] = logger.warning
    failures: list = field(default_factory=list)

    def start(self) -> None:
        from xiaonet.data.waveforms import WaveformInputError, expand_inputs, read_waveform_file

        if self.speed is not None and self.speed <= 0:
            raise ValueError(f"--speed must be positive, got {self.speed}")
        if not self.latency_s >= 0:
            raise ValueError(f"--latency must be zero or positive seconds, got {self.latency_s}")
        def fail(message: str) -> None:  # named at the end, exit status 1, as `xiaonet pick`
            self.failures.append(message)
            self.note(message)

        stream = obspy.Stream()
        for path in expand_inputs([str(f) for f in self.files], unmatched=fail):
            try:
                # A truncated file is a failure, as in `xiaonet pick`: data was lost
                stream += read_waveform_file(path, note=fail)
            except WaveformInputError as error:
                fail(str(error))
        self._packets = cut_into_packets(stream, self.packet_samples)
        self._recorded = np.array([p.stats.endtime.timestamp for p in self._packets])
        self._arrivals = self._recorded + self.latency_s
        self._next = 0
        self._wall0 = time.monotonic()

    @property
    def total_packets(self) -> int:
        return len(self._packets)

    def stop(self) -> None:
        self._next = len(self._packets)

    def next_batch(self, timeout: float = 0.2) -> list[obspy.Trace] | None:
        if self._next >= len(self._packets):
            return None
        first = self._recorded[0]
        if self.speed is None:
            due = self._arrivals[self._next] + self.batch_seconds
        else:
            elapsed = time.monotonic() - self._wall0
            due = first + elapsed * self.speed
            wait = (self._arrivals[self._next] - due) / self.speed
            if wait > 0:
                time.sleep(min(wait, timeout))
                due = first + (time.monotonic() - self._wall0) * self.speed
        stop = int(np.searchsorted(self._arrivals, due, side="right"))
        batch = self._packets[self._next : stop]
        self._next = max(stop, self._next)
        return batch

# --- SeedLink ------------------------------------------------------------------------------


def parse_selection(spec: str) -> tuple[str, str, str]:
    """``NET.STA.LOC.CHA`` (``?`` / ``*`` wildcards in LOC.CHA) -> (net, sta, selector).

    ``NET.STA`` alone selects every stream of the station. The selector is SeedLink's
    ``LLCCC`` form (location + channel), e.g. ``00HH?``.
    """
    parts = spec.split(".")
    if len(parts) not in (2, 4) or not parts[0] or not parts[1]:
        raise ValueError(
            f"--select '{spec}': expected NET.STA or NET.STA.LOC.CHA (e.g. IU.ANMO.00.BH? or "
            "GE.WLF..HH?)"
        )
    if len(parts) == 2:
        return parts[0], parts[1], ""
    location, channel = parts[2], parts[3]
    return parts[0], parts[1], f"{location}{channel}"


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--seedlink '{address}': expected HOST:PORT, e.g. geofon.gfz.de:18000")
    return host, int(port)


class SeedLinkSource:
    """Packets from a SeedLink server through ObsPy's ``SeedLinkConnection``.

    A background thread holds the connection and puts each record (one ``Trace``) in a
    queue. When the connection drops (no data for ``timeout`` seconds, the server closes
    it, or it cannot be opened) the thread reconnects after ``backoff_initial`` seconds,
    doubling the wait after each failed attempt up to ``backoff_max``; the first record
    after a reconnect resets the wait. ObsPy resumes each station from its last sequence
    number, so records are not lost or repeated when the server still has them.

    A server that is never reached is an error, not a silent wait: a host that does not
    resolve is refused by :meth:`start`, and when no connection has been made
    ``connect_timeout`` seconds after it, the source ends with :attr:`failure` saying why.
    """

    def __init__(self, address: str, selections: Iterable[str], timeout: float = 30.0,
                 backoff_initial: float = 1.0, backoff_max: float = 60.0,
                 note: Callable[[str], None] = logger.warning, max_queue: int = 100_000,
                 connect_timeout: float | None = 60.0):
        self.host, self.port = parse_address(address)
        self.selections = [parse_selection(s) for s in selections]
        if not self.selections:
            raise ValueError("--seedlink needs at least one --select NET.STA[.LOC.CHA]")
        self.timeout = float(timeout)
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self.connect_timeout = connect_timeout
        self.failure: str | None = None  # why the source ended on its own (never connected)
        self._last_error = ""
        self._started = time.monotonic()
        self.note = note
        self.queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self.connections = 0
        self.reconnects = 0
        self.dropped_full_queue = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn = None

    def start(self) -> None:
        """Start the connection thread; raises ValueError when the host does not resolve."""
        import socket

        try:
            socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise ValueError(f"--seedlink {self.host}:{self.port}: host '{self.host}' does not resolve "
                             f"({error})") from None
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="seedlink", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop promptly: closing the socket wakes the thread from a blocking read."""
        self._stop.set()
        conn = self._conn
        if conn is not None and getattr(conn, "socket", None) is not None:
            try:
                conn.socket.close()
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def next_batch(self, timeout: float = 0.2) -> list[obspy.Trace] | None:
        """Records that arrived (waiting up to ``timeout`` s for the first); None once the
        source has ended (:attr:`failure`)."""
        if self.failure is not None and self.queue.empty():
            return None
        batch = []
        try:
            batch.append(self.queue.get(timeout=timeout))
            while True:
                batch.append(self.queue.get_nowait())
        except queue.Empty:
            pass
        return batch

    # --- connection thread ---------------------------------------------------------------

    def _new_connection(self):
        conn = _connection_class()(timeout=self.timeout)
        conn.set_sl_address(f"{self.host}:{self.port}")
        conn.netto = max(1, int(round(self.timeout)))
        conn.netdly = max(1, int(round(self.backoff_initial)))
        for net, sta, selector in self.selections:
            conn.add_stream(net, sta, selector or None, seqnum=-1, timestamp=None)
        return conn

    def _run(self) -> None:
        from obspy.clients.seedlink.client.slstate import SLState
        from obspy.clients.seedlink.slpacket import SLPacket

        backoff = self.backoff_initial
        conn = self._conn = self._new_connection()
        while not self._stop.is_set():
            try:
                conn.allow_connect = True
                conn.connect()
                conn.state.state = SLState.SL_UP
                self.connections += 1
                if self.connections > 1:
                    self.reconnects += 1
                    self.note(f"SeedLink {self.host}:{self.port}: reconnected")
                while not self._stop.is_set():
                    packet = conn.collect()
                    if packet == SLPacket.SLTERMINATE or packet is None:
                        raise ConnectionError("server ended the stream")
                    if packet == SLPacket.SLERROR:
                        raise ConnectionError("server answered ERROR to a request")
                    if packet.get_type() in (SLPacket.TYPE_SLINF, SLPacket.TYPE_SLINFT):
                        continue
                    trace = packet.get_trace()
                    backoff = self.backoff_initial
                    try:
                        self.queue.put_nowait(trace)
                    except queue.Full:
                        self.dropped_full_queue += 1
            except Exception as error:  # the connection thread must survive anything
                if self._stop.is_set():
                    break
                self._last_error = f"{type(error).__name__}: {error}"
                waited = time.monotonic() - self._started
                if self.connections == 0 and self.connect_timeout is not None and waited >= self.connect_timeout:
                    self.failure = (f"no connection to SeedLink {self.host}:{self.port} in {waited:.0f} s "
                                    f"(last error: {self._last_error})")
                    break
                self.note(f"SeedLink {self.host}:{self.port}: {type(error).__name__}: {error}; "
                          f"reconnecting in {backoff:g} s")
                try:
                    conn.disconnect()
                except Exception:
                    pass
                self._stop.wait(backoff)
                backoff = min(2 * backoff, self.backoff_max)
        try:
            conn.disconnect()
        except Exception:
            pass


class ConnectionDropped(ConnectionError):
    """The SeedLink connection ended; the source reconnects with back-off."""


def _connection_class():
    """ObsPy's ``SeedLinkConnection`` that reports a dropped connection instead of retrying.

    ObsPy reconnects inside ``collect()`` after a fixed delay, and it takes a closed socket
    (``recv`` returning nothing) for "no data yet" until the network timeout. Here EOF ends
    the connection at once and ObsPy's own reconnect attempt raises, so the caller's
    back-off decides when to try again.
    """
    from obspy.clients.seedlink.client.seedlinkconnection import SeedLinkConnection

    class _Connection(SeedLinkConnection):
        allow_connect = False

        def connect(self):
            if not self.allow_connect:
                raise ConnectionDropped("connection lost")
            self.allow_connect = False
            return super().connect()

        def receive_data(self, maxbytes, code):
            data = super().receive_data(maxbytes, code)
            if data == b"":
                raise ConnectionDropped("server closed the connection")
            return data

    return _Connection


