"""Step 3-4 of the streaming engine (:mod:`xiaonet.stream.engine`): a station's received
samples into records (segments, split at gaps as offline picking splits them) and the windows
each record needs, in offline mode (SeisBench's fragments or the absolute grid, one window
aligned to a record's end) or low-latency mode (a window every hop ending at the newest data).

:class:`SegmentWindows` is a part of :class:`xiaonet.stream.engine.StreamingPicker`: its
methods work on the engine's state (``self.config``, the model's window, the stations).
"""

from __future__ import annotations

import numpy as np

from xiaonet.edge.picks import TriggerState
from xiaonet.stream.station import PendingWindow, Segment, StationBuffer


class SegmentWindows:
    def _window_start(self, seg: Segment) -> int:
        """Oldest absolute sample the segment's next window needs."""
        if seg.end is not None:  # its last windows are predicted in the same call
            return seg.final_upto
        return max(seg.start, min(self._offset(seg, seg.next_window), seg.final_upto))

    def _offset(self, seg: Segment, k: int) -> int:
        """Absolute start of the segment's ``k``-th regular window (before the record's start
        for the first windows of a padded start)."""
        if self.config.padded_start:  # the first window decides the record's first hop
            return seg.start + self.step + self.lookahead - self.in_samples + k * self.step
        if seg.phase == 0:
            return seg.start + k * self.step
        return seg.start if k == 0 else seg.start + seg.phase + (k - 1) * self.step

    # --- frontier, segments, windows ---------------------------------------------------

    def _advance(self, station: StationBuffer, flush: bool) -> list[PendingWindow]:
        rate = station.sampling_rate
        seen = station.seen
        if not seen.any():
            return []
        newest = int(station.end[seen].max())
        timeout = int(self.config.channel_timeout * rate)
        for c in np.flatnonzero(~station.stopped):
            if newest - int(station.end[c]) > timeout and self._lag(station, c, newest) > timeout:
                station.stopped[c] = True
                self.counters["channels_stopped"] += 1
                what = "is more than" if seen[c] else "has sent nothing for"
                self.note(f"{station.key}: component {self.predictor.component_order[c]} {what} "
                          f"{self.config.channel_timeout:g} s behind; treated as missing (zeros)")
        live = ~station.stopped
        if flush or not live.any():
            frontier = newest
        else:
            # A hole in a live channel is waited for (a reordered packet may fill it) until the
            # channel has sent reorder_window seconds of newer data; then it is missing data.
            reorder = int(self.config.reorder_window * rate)
            frontier = min(max(station.contiguous_end(int(c)), int(station.end[c]) - reorder)
                           for c in np.flatnonzero(live))
        windows: list[PendingWindow] = []
        if frontier > station.processed:
            lo, hi = station.processed - station.base, frontier - station.base
            any_present = station.present[:, lo:hi].any(axis=0)
            consumed, new_windows = self._segment_runs(station, any_present, station.processed, flush)
            windows += new_windows
            station.processed = consumed
        if flush and station.segments and station.segments[-1].end is None:
            windows += self._close(station, station.segments[-1], station.processed)
        for seg in station.segments:
            if seg.end is None:
                windows += self._regular_windows(station, seg, station.processed)
        return windows

    @staticmethod
    def _lag(station: StationBuffer, component: int, newest: int) -> int:
        """Samples the other components delivered after this one's last (gaps not counted)."""
        lo = max(int(station.end[component]), station.base) - station.base
        return int(station.present[:, lo : newest - station.base].any(axis=0).sum())

    def _segment_runs(self, station: StationBuffer, any_present: np.ndarray, offset: int,
                      flush: bool) -> tuple[int, list[PendingWindow]]:
        """Open and close records along runs of received / missing samples.

        Returns the absolute index up to which the span was consumed (a trailing run of
        missing samples is left for later unless flushing: its length is not known yet).
        """
        windows: list[PendingWindow] = []
        if any_present.all():  # the usual case: data on some channel at every sample
            if not station.segments or station.segments[-1].end is not None:
                station.segments.append(self._new_segment(station, offset))
            return offset + any_present.size, windows
        change = np.flatnonzero(np.diff(any_present.astype(np.int8))) + 1
        bounds = np.concatenate([[0], change, [any_present.size]])
        max_fill = int(self.config.max_fill * station.sampling_rate)
        for a, b in zip(bounds[:-1], bounds[1:]):
            a_abs, b_abs = offset + int(a), offset + int(b)
            segs = station.segments
            current = segs[-1] if segs and segs[-1].end is None else None
            if any_present[a]:
                if current is None:
                    station.segments.append(self._new_segment(station, a_abs))
                continue
            closed_run = b < any_present.size
            if not closed_run and not flush:
                return a_abs, windows
            if current is None:
                continue
            if self.config.gap_policy == "zero-fill" and closed_run and b_abs - a_abs <= max_fill:
                current.filled.append((a_abs, b_abs))
                self.counters["zero_filled_samples"] += b_abs - a_abs
                continue
            if closed_run:
                self.counters["gaps"] += 1
            windows += self._close(station, current, a_abs)
        return offset + any_present.size, windows

    def _new_segment(self, station: StationBuffer, start: int) -> Segment:
        triggers = [TriggerState(ph, self.predictor.thresholds.get(ph, 0.3)) for ph in self.phase_channels]
        phase = 0
        if self.config.mode == "offline" and getattr(self.predictor, "window_grid", "record") == "absolute":
            # the offline grid: absolute index of the record's first sample
            phase = (-(station.epoch_index + start)) % self.step
        # a padded start is filled data before the record: no pick within fill_guard of it, as
        # after a filled gap (the step from the fill to the data is no onset)
        filled = [(start - self.in_samples, start)] if self.config.padded_start else []
        return Segment(start=start, triggers=triggers, final_upto=start, owned_upto=start, phase=phase,
                       filled=filled)

    def _regular_windows(self, station: StationBuffer, seg: Segment, until: int) -> list[PendingWindow]:
        windows = []
        while self._offset(seg, seg.next_window) + self.in_samples <= until:
            offset = self._offset(seg, seg.next_window)
            owns = None
            if self.config.mode == "low-latency":
                owned_end = offset + self.in_samples - self.lookahead
                owns = (seg.owned_upto, owned_end)
                seg.owned_upto = owned_end
            windows.append(PendingWindow(station, seg, offset, self.in_samples, owns))
            seg.next_window += 1
        return windows

    def _close(self, station: StationBuffer, seg: Segment, end: int) -> list[PendingWindow]:
        """End a record at absolute ``end`` and schedule its remaining windows."""
        windows = self._regular_windows(station, seg, end)
        seg.end = end
        n = end - seg.start
        if n < self.in_samples and not self.config.padded_start:
            # Shorter than one window: a fully convolutional model predicts it whole (records
            # under min_record_s are dropped, as offline); other models give nothing.
            if (self.predictor.dynamic_length and n > 0
                    and (n - 1) / station.sampling_rate >= self.predictor.min_record_s):
                windows.append(PendingWindow(station, seg, seg.start, n, (seg.start, end)))
        elif self.config.mode == "offline":
            last_regular = self._offset(seg, seg.next_window - 1)
            if last_regular + self.in_samples < end:
                windows.append(PendingWindow(station, seg, end - self.in_samples, self.in_samples))
        elif seg.owned_upto < end:
            windows.append(PendingWindow(station, seg, end - self.in_samples, self.in_samples,
                                   (seg.owned_upto, end)))
        seg.owned_upto = end
        return windows

    # --- prediction and stacking -------------------------------------------------------
