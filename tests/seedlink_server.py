"""A tiny SeedLink v3 server on 127.0.0.1 for tests: serves 512-byte miniSEED records.

It speaks the subset ObsPy's ``SeedLinkConnection`` uses in multi-station mode:
``HELLO``, ``STATION sta net``, ``SELECT LLCCC``, ``DATA [seq]``, ``END`` (and ``BYE``),
answering ``OK``/``ERROR`` and then sending ``SL`` + 6 hex digits + one record per packet.
``DATA seq`` resumes from that sequence number, as a real server does.

Bounded and self-stopping: it only listens on loopback, serves at most ``max_connections``
connections, closes a connection after ``drop_after`` records if asked (to test
reconnects), and shuts down after ``lifetime`` seconds or on :meth:`stop`.
"""

from __future__ import annotations

import fnmatch
import io
import socket
import threading
import time

import numpy as np
import obspy


def records_from_stream(stream: obspy.Stream, samples_per_record: int = 100) -> list[tuple[str, str, str, str, bytes, float]]:
    """Cut a stream into 512-byte miniSEED records, ordered by the time they end.

    Returns (net, sta, loc, cha, record bytes, end timestamp) tuples.
    """
    records = []
    for trace in stream:
        data = np.asarray(trace.data)
        integer = np.issubdtype(data.dtype, np.integer)
        for i in range(0, trace.stats.npts, samples_per_record):
            s = trace.stats
            piece = obspy.Trace(
                (data[i : i + samples_per_record].astype(np.int32) if integer
                 else data[i : i + samples_per_record].astype(np.float32)),
                header={"network": s.network, "station": s.station, "location": s.location,
                        "channel": s.channel, "sampling_rate": s.sampling_rate,
                        "starttime": s.starttime + i * s.delta},
            )
            buffer = io.BytesIO()
            piece.write(buffer, format="MSEED", reclen=512,
                        encoding="STEIM2" if integer else "FLOAT32")
            raw = buffer.getvalue()
            s = piece.stats
            for k in range(0, len(raw), 512):
                records.append((s.network, s.station, s.location, s.channel, raw[k : k + 512],
                                piece.stats.endtime.timestamp))
    records.sort(key=lambda r: (r[5], r[3]))
    return records


class SeedLinkTestServer:
    """Serve ``records`` to SeedLink clients on 127.0.0.1 (an ephemeral port)."""

    def __init__(self, records, records_per_second: float | None = None, drop_after: int | None = None,
                 max_connections: int = 5, lifetime: float = 60.0):
        self.records = records
        self.records_per_second = records_per_second
        self.drop_after = drop_after
        self.max_connections = max_connections
        self.lifetime = lifetime
        self.connections = 0
        self.commands: list[str] = []
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(4)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        deadline = time.monotonic() + self.lifetime
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self.connections >= self.max_connections:
                time.sleep(0.05)
                continue
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            self.connections += 1
            try:
                self._session(conn, deadline)
            except OSError:
                pass
            finally:
                conn.close()

    def _session(self, conn: socket.socket, deadline: float) -> None:
        conn.settimeout(0.2)
        stations: list[tuple[str, str, list[str]]] = []
        start_seq = 0
        pending = b""
        streaming = False
        while not streaming:
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            try:
                chunk = conn.recv(1024)
            except socket.timeout:
                continue
            if not chunk:
                return
            pending += chunk
            while b"\r" in pending:
                line, _, pending = pending.partition(b"\r")
                pending = pending.lstrip(b"\n")
                command = line.decode("ascii", "replace").strip()
                self.commands.append(command)
                words = command.split()
                verb = words[0].upper() if words else ""
                if verb == "HELLO":
                    conn.sendall(b"SeedLink v3.1 (XiaoNet test server) :: SLPROTO:3.1\r\nXiaoNet tests\r\n")
                elif verb == "STATION" and len(words) >= 3:
                    stations.append((words[2], words[1], []))
                    conn.sendall(b"OK\r\n")
                elif verb == "SELECT" and stations:
                    stations[-1][2].extend(words[1:])
                    conn.sendall(b"OK\r\n")
                elif verb in ("DATA", "FETCH"):
                    if len(words) > 1:
                        start_seq = int(words[1], 16)
                    conn.sendall(b"OK\r\n")
                elif verb == "END":
                    streaming = True
                    break
                elif verb == "BYE":
                    return
                else:
                    conn.sendall(b"ERROR\r\n")
        self._stream(conn, stations, start_seq, deadline)

    def _stream(self, conn: socket.socket, stations, start_seq: int, deadline: float) -> None:
        sent = 0
        for seq in range(start_seq, len(self.records)):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            net, sta, loc, cha, record, _ = self.records[seq]
            if not any(net == n and sta == s and _selected(sel, loc, cha) for n, s, sel in stations):
                continue
            conn.sendall(b"SL" + f"{seq:06X}".encode() + record)
            sent += 1
            if self.drop_after is not None and sent >= self.drop_after and self.connections == 1:
                return  # drop the first connection mid-stream
            if self.records_per_second:
                time.sleep(1.0 / self.records_per_second)
        # All served: keep the connection open and idle, like a live server between records.
        while not self._stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)


def _selected(selectors: list[str], location: str, channel: str) -> bool:
    if not selectors:
        return True
    for selector in selectors:
        if len(selector) <= 3 and fnmatch.fnmatchcase(channel, selector):
            return True
        if len(selector) > 3 and fnmatch.fnmatchcase(f"{location:<2}"[:2] + channel, selector.replace("-", " ")):
            return True
    return False
