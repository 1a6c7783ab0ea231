"""Packets from a Raspberry Shake's UDP data-cast (the feed rsudp reads).

A Shake sends one datagram per channel and packet: ASCII text such as
``{'EHZ', 1560000000.123, 512, 498, 505, ...}``: the channel, the epoch time of the first
sample, then the samples as integer counts (25 per packet on current firmware at 100 Hz, 100
on older ones). The packets carry no network or station code, so those are given
(``--udp-station NET.STA``), and no sampling rate (``--udp-rate``, 100 Hz on every Shake).

:class:`ShakeUdpSource` has the interface of the other packet sources
(:mod:`xiaonet.stream.packet_sources`): ``start`` / ``next_batch`` / ``stop``; it never ends by
itself. A datagram that is not in this format is counted in ``malformed``, named through
``note`` (the first ten) and skipped.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Callable

import numpy as np
import obspy

logger = logging.getLogger(__name__)


class MalformedShakePacket(ValueError):
    pass


def parse_shake_packet(datagram: bytes) -> tuple[str, float, np.ndarray]:
    """``(channel, first-sample epoch time, int32 samples)`` of one data-cast datagram.

    >>> parse_shake_packet(b"{'EHZ', 1560000000.250, 512, 498, -7}")
    ('EHZ', 1560000000.25, array([512, 498,  -7], dtype=int32))
    """
    try:
        text = datagram.decode("ascii").strip()
    except UnicodeDecodeError:
        raise MalformedShakePacket("not ASCII text") from None
    if not (text.startswith("{") and text.endswith("}")):
        raise MalformedShakePacket("expected {'CHANNEL', TIME, SAMPLES...}")
    fields = [f.strip() for f in text[1:-1].split(",")]
    if len(fields) < 3:
        raise MalformedShakePacket("expected a channel, a time and at least one sample")
    channel = fields[0].strip("'\"")
    if not channel or len(channel) > 3 or not channel.isalnum():
        raise MalformedShakePacket(f"bad channel {fields[0]!r}")
    try:
        start = float(fields[1])
        samples = np.array([int(f) for f in fields[2:]], dtype=np.int32)
    except (ValueError, OverflowError) as error:
        raise MalformedShakePacket(f"bad time or sample ({error})") from None
    return channel, start, samples


def shake_packet(channel: str, start: float, samples) -> bytes:
    """One datagram as a Shake sends it (the inverse of :func:`parse_shake_packet`; rsudp's
    test-data sender writes the same text).

    >>> shake_packet("EHZ", 1560000000.25, [512, 498, -7])
    b"{'EHZ', 1560000000.250, 512, 498, -7}"
    """
    return ("{'%s', %.3f, %s}" % (channel, start, ", ".join(str(int(s)) for s in samples))).encode("ascii")


def parse_station(spec: str) -> tuple[str, str, str]:
    """``NET.STA`` or ``NET.STA.LOC`` -> (network, station, location)."""
    parts = spec.split(".")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise ValueError(f"--udp-station {spec!r}: expected NET.STA or NET.STA.LOC (e.g. AM.R1234.00)")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else "00"


class ShakeUdpSource:
    """Datagrams on UDP ``port`` as ObsPy ``Trace`` packets of station ``NET.STA[.LOC]``."""

    def __init__(self, port: int, station: str, sampling_rate: float = 100.0, host: str = "0.0.0.0",
                 note: Callable[[str], None] = logger.warning):
        if not 0 <= int(port) < 65536:
            raise ValueError(f"--udp {port}: expected a UDP port number (0-65535)")
        if sampling_rate <= 0:
            raise ValueError(f"--udp-rate must be positive, got {sampling_rate}")
        self.port, self.host = int(port), host
        self.network, self.station, self.location = parse_station(station)
        self.sampling_rate = float(sampling_rate)
        self.note = note
        self.packets = 0
        self.malformed = 0
        self._socket: socket.socket | None = None

    def start(self) -> None:
        """Bind the port (raises ValueError when it cannot be bound)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        try:
            sock.bind((self.host, self.port))
        except OSError as error:
            sock.close()
            raise ValueError(f"--udp {self.port}: cannot listen on {self.host}:{self.port} ({error})") from None
        self.port = sock.getsockname()[1]
        self._socket = sock

    def stop(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def next_batch(self, timeout: float = 0.2) -> list[obspy.Trace] | None:
        """The packets that arrived (waiting up to ``timeout`` s for the first); None once stopped."""
        sock = self._socket
        if sock is None:
            return None
        batch: list[obspy.Trace] = []
        deadline = time.monotonic() + timeout
        sock.settimeout(timeout)
        while True:
            try:
                datagram = sock.recv(65536)
            except (socket.timeout, BlockingIOError):
                return batch
            except OSError:  # closed by stop()
                return batch
            trace = self._trace(datagram)
            if trace is not None:
                batch.append(trace)
            if len(batch) >= 1000:  # hand a flood over in parts
                return batch
            sock.settimeout(0.0 if batch else max(0.0, deadline - time.monotonic()))

    def _trace(self, datagram: bytes) -> obspy.Trace | None:
        try:
            channel, start, samples = parse_shake_packet(datagram)
        except MalformedShakePacket as error:
            self.malformed += 1
            if self.malformed <= 10:
                self.note(f"UDP {self.port}: malformed Shake packet skipped ({error}): {datagram[:60]!r}")
            return None
        self.packets += 1
        return obspy.Trace(samples, header={"network": self.network, "station": self.station,
                                            "location": self.location, "channel": channel,
                                            "sampling_rate": self.sampling_rate,
                                            "starttime": obspy.UTCDateTime(start)})
