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

from xiaonet.edge.windowing import absolute_index, grid_time


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
    # samples from ``start`` to the first window on the absolute grid (0: windows every step
    # from ``start``, as on the record grid; else one window at ``start``, then the grid)
    phase: int = 0


class StationBuffer:
    """Ring buffer and segments of one instrument."""

    def __init__(self, key: str, trace_id: str, sampling_rate: float, epoch: obspy.UTCDateTime,
                 n_components: int, n_labels: int, capacity: int, start_margin: int = 0,
                 history: int = 0):
        self.key = key
        # Samples kept before the oldest sample a pick may still be made on (its SNR's noise
        # window, :func:`xiaonet.edge.pick_quality.snr_span`).
        self.history = history
        self.trace_id = trace_id
        self.sampling_rate = sampling_rate
        # The sample grid is the absolute one (a hypothetical sample at UTC 0), on which offline
        # picking places every trace start (:func:`xiaonet.edge.windowing.absolute_index`, the
        # one rule); each component's sub-sample offset from it is kept, and pick times add
        # their mean back, as offline. Buffer index i is absolute sample epoch_index + i.
        self.epoch_index = absolute_index(epoch, sampling_rate)
        self.epoch = grid_time(self.epoch_index, sampling_rate)
        self.offsets = np.zeros(n_components, dtype=np.float64)
        self.anchors: dict[int, tuple[obspy.UTCDateTime, int]] = {}
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
        # First sample not received per component (samples before it are all in); a hole
        # behind ``end`` is waited for (reordered packets) up to the reorder window.
        self.contiguous = np.full(n_components, -start_margin, dtype=np.int64)
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

    def index_of(self, t: obspy.UTCDateTime, component: int | None = None) -> int:
        """Sample index of ``t`` on the absolute grid. A component's first packet is aligned as
        offline alignment rounds a trace start; its later packets are placed relative to that
        one (as the samples of one trace are), never rounded on their own."""
        if component is not None and component in self.anchors:
            anchor, index = self.anchors[component]
            return index + int(round((t.ns - anchor.ns) * 1e-9 * self.sampling_rate))
        index = absolute_index(t, self.sampling_rate) - self.epoch_index
        if component is not None:
            self.anchors[component] = (t, index)
            self.offsets[component] = t - self.time_of(index)
        return index

    def time_of(self, index: int) -> obspy.UTCDateTime:
        return self.epoch + index / self.sampling_rate

    def pick_time_of(self, index: int) -> obspy.UTCDateTime:
        """Time of a sample as offline picks give it: the grid time plus the mean sub-sample
        offset of the components that sent data."""
        offset = float(self.offsets[self.seen].mean()) if self.seen.any() else 0.0
        return self.epoch + (index / self.sampling_rate + offset)

    def contiguous_end(self, component: int) -> int:
        """First sample of ``component`` not received at or after the processed frontier."""
        first = max(int(self.contiguous[component]), self.processed, self.base)
        end = int(self.end[component])
        if first < end:
            missing = np.flatnonzero(~self.present[component, first - self.base : end - self.base])
            first = first + int(missing[0]) if missing.size else end
        self.contiguous[component] = first
        return first

    def newest_time(self) -> obspy.UTCDateTime:
        return self.time_of(int(self.end.max()) - 1)

    def keep_from(self) -> int:
        keep = self.processed
        for seg in self.segments:
            keep = min(keep, seg.final_upto - self.history)
            for trig in seg.triggers:  # an open trigger's pick may lie anywhere in its run
                if trig.run_start is not None:
                    keep = min(keep, trig.run_start - self.history)
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
