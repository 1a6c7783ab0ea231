"""Packets in, final picks out: what every streaming engine shares (the model engine and
streamed STA/LTA). One bad packet is reported and dropped; it never takes an engine down."""

from __future__ import annotations

from typing import Iterable

import obspy


class PacketConsumer:
    """Subclasses implement ``_accept(packet) -> list[EmittedPick]`` and may override
    ``_after_packets`` (work done once per batch of packets) and ``_drop``."""

    def feed(self, packet: obspy.Trace) -> list:
        """Take one packet and return the picks that became final."""
        return self.feed_many([packet])

    def feed_many(self, packets: Iterable[obspy.Trace]) -> list:
        """Take packets (any stations, any order) and return the picks that became final."""
        emitted: list = []
        for packet in packets:
            try:
                emitted += self._accept(packet)
            except Exception as error:  # one bad packet never takes the engine down
                self._drop(packet, error)
        return emitted + self._after_packets()

    def _accept(self, packet: obspy.Trace) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def _after_packets(self) -> list:
        return []

    def _drop(self, packet, error: Exception) -> None:
        self.note(f"{getattr(packet, 'id', '?')}: packet dropped: {type(error).__name__}: {error}")
