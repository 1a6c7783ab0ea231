"""Per-station state of the streaming engine: the sample buffer and its segments, pending
windows. The trigger that turns final probabilities into picks is
:func:`xiaonet.edge.picks.advance_trigger`, shared with the offline and edge pickers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import obspy


# --- Per-station state -------------------------------------------------------------------


@dataclass
class Segment:
    """One contiguous record of a station (offline: one block)."""

    start: int  # absolute sample index of the first sample
    triggers: list
    next_window: int = 0  # index of the next regular window
    end: int | None = None  # absolute end (exclusive) once the record has ended
    final_upto: int = 0  # absolute: samples before this have gone through the triggers
    owned_upto: int = 0  # low-latency: samples before this have their probability
    filled: list = field(default_factory=list)  # zero-filled spans (absolute start, end)


class StationBuffer:
    """Ring buffer and segments of one instrument."""

    def __init__(self, key: str, trace_id: str, sampling_rate: float, epoch: obspy.UTCDateTime,
                 n_components: int, n_labels: int, capacity: int, start_margin: int = 0):
        self.key = key
        self.trace_id = trace_id
        self.sampling_rate = sampling_rate
        self.epoch = epoch
        self.n_components = n_components
        # Samples up to ``start_margin`` before the first packet are kept: another channel's
        # first packet may start a little earlier.
        self.base = -start_margin
        self.data = np.zeros((n_components, capacity), dtype=np.float32)
        self.present = np.zeros((n_components, capacity), dtype=bool)
        self.prob_sum = np.zeros((n_labels, capacity), dtype=np.float32)
        self.prob_count = np.zeros((n_labels, capacity), dtype=np.uint8)  # windows per sample
        # Next sample per component; a component not seen yet counts as lagging from the start.
        self.end = np.full(n_components, -start_margin, dtype=np.int64)
        self.seen = np.zeros(n_components, dtype=bool)
        self.stopped = np.zeros(n_components, dtype=bool)
        self.processed = -start_margin  # absolute: frontier consumed by the segment logic
        # Signatures of the last packets, to tell a repeated record from a late one.
        self.recent_packets = np.zeros(128, dtype=np.int64)
        self.recent_next = 0
        self.segments: list[Segment] = []
        self.last_arrival = time.time()

    @property
    def capacity(self) -> int:
        return self.data.shape[1]

    def index_of(self, t: obspy.UTCDateTime) -> int:
        return int(round((t.ns - self.epoch.ns) * 1e-9 * self.sampling_rate))

    def time_of(self, index: int) -> obspy.UTCDateTime:
        return self.epoch + index / self.sampling_rate

    def newest_time(self) -> obspy.UTCDateTime:
        return self.time_of(int(self.end.max()) - 1)

    def keep_from(self) -> int:
        keep = self.processed
        for seg in self.segments:
            keep = min(keep, seg.final_upto)
        return keep

    def ensure(self, until: int, window_start: Callable[[Segment], int]) -> None:
        """Make room for absolute indices below ``until``: drop old samples, grow if needed."""
        keep = self.keep_from()
        for seg in self.segments:
            keep = min(keep, window_start(seg))
        keep = max(keep, self.base)
        if until - self.base <= self.capacity:
            return
        shift = keep - self.base
        if shift > 0:
            for array in (self.data, self.present, self.prob_sum, self.prob_count):
                array[:, : self.capacity - shift] = array[:, shift:]
                array[:, self.capacity - shift :] = 0
            self.base = keep
        if until - self.base > self.capacity:
            new_capacity = max(2 * self.capacity, until - self.base)
            for name in ("data", "present", "prob_sum", "prob_count"):
                old = getattr(self, name)
                new = np.zeros((old.shape[0], new_capacity), dtype=old.dtype)
                new[:, : old.shape[1]] = old
                setattr(self, name, new)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.data, self.present, self.prob_sum, self.prob_count,
                                      self.recent_packets))


@dataclass
class PendingWindow:
    station: StationBuffer
    segment: Segment
    offset: int  # absolute
    length: int
    owns: tuple[int, int] | None = None  # low-latency: absolute span this window decides
