"""Step 5 of the streaming engine (:mod:`xiaonet.stream.engine`): windows predicted in one
batch, stacked into final probabilities, triggered, and emitted as picks with their quality
(half-maximum width as ``uncertainty_s``, ``snr_db`` on the station's buffer).

:class:`PickEmission` is a part of :class:`xiaonet.stream.engine.StreamingPicker`: its methods
work on the engine's state (``self.predictor``, the stations, the counters).
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import obspy

from xiaonet.edge.pick_quality import snr_db, snr_span, uncertainty_from_width
from xiaonet.edge.picks import EdgePick, advance_trigger, run_width
from xiaonet.edge.windowing import fill_record_start
from xiaonet.stream.settings import EmittedPick
from xiaonet.stream.station import PendingWindow, Segment, StationBuffer


class PickEmission:
    def _predict(self, windows: list[PendingWindow]) -> None:
        if not windows:
            return
        by_length: dict[int, list[PendingWindow]] = defaultdict(list)
        for w in windows:
            by_length[w.length].append(w)
        predictions: dict[int, np.ndarray] = {}
        for length, group in by_length.items():
            for i in range(0, len(group), self.config.batch_size):
                chunk = group[i : i + self.config.batch_size]
                batch = np.stack([self._window_data(w) for w in chunk])
                started = time.process_time()
                out = self.predictor.predict(batch)
                self.model_seconds += time.process_time() - started
                self.counters["model_calls"] += 1
                for w, pred in zip(chunk, out):
                    predictions[id(w)] = pred
        self.counters["windows"] += len(windows)
        # Stack in the order the windows were cut (ascending offsets per station), as offline.
        for w in windows:
            self._stack(w, predictions[id(w)])

    @staticmethod
    def _window_data(w: PendingWindow) -> np.ndarray:
        """The window's samples; those before its record's start (a padded start) filled."""
        st, lo = w.station, w.offset - w.station.base
        missing = w.segment.start - w.offset
        if missing <= 0:
            return st.data[:, lo : lo + w.length]
        window = np.empty((st.data.shape[0], w.length), dtype=np.float32)
        window[:, missing:] = st.data[:, lo + missing : lo + w.length]
        return fill_record_start(window, missing)

    def _stack(self, w: PendingWindow, prediction: np.ndarray) -> None:
        st = w.station
        prediction = np.asarray(prediction, dtype=np.float32)[self.phase_rows]
        if self.config.mode == "low-latency":
            a, b = w.owns
            a, b = max(a, w.offset), min(b, w.offset + w.length)
            if b > a:
                lo, hi = a - st.base, b - st.base
                st.prob_sum[:, lo:hi] = prediction[:, a - w.offset : b - w.offset]
                st.prob_count[:, lo:hi] = ~np.isnan(prediction[:, a - w.offset : b - w.offset])
            return
        lo, hi = w.offset - st.base, w.offset - st.base + w.length
        valid = ~np.isnan(prediction)
        if self.predictor.stacking == "max":
            current = np.where(st.prob_count[:, lo:hi] > 0, st.prob_sum[:, lo:hi], np.nan)
            st.prob_sum[:, lo:hi] = np.nan_to_num(np.fmax(current, prediction), nan=0.0)
        else:
            st.prob_sum[:, lo:hi] += np.where(valid, prediction, np.float32(0))
        st.prob_count[:, lo:hi] += valid

    # --- final samples, triggers, emission ---------------------------------------------

    def _final_boundary(self, station: StationBuffer, seg: Segment) -> int:
        """Absolute index below which the segment's probabilities can no longer change."""
        if seg.end is not None:
            return seg.end
        if self.config.mode == "low-latency":
            return seg.owned_upto
        # Regular windows are cut as soon as their data is in, so no future regular window
        # covers samples before the processed frontier minus one window, and the end-of-record
        # window (offset = record length - in_samples >= frontier - in_samples) cannot either.
        return max(seg.start, min(self._offset(seg, seg.next_window),
                                  station.processed - self.in_samples))

    def _finalize(self, station: StationBuffer) -> list[EmittedPick]:
        emitted: list[EmittedPick] = []
        for seg in list(station.segments):
            boundary = self._final_boundary(station, seg)
            if boundary > seg.final_upto:
                lo, hi = seg.final_upto - station.base, boundary - station.base
                count = station.prob_count[:, lo:hi].astype(np.float32)
                with np.errstate(invalid="ignore", divide="ignore"):
                    if self.predictor.stacking == "max" or self.config.mode == "low-latency":
                        values = np.where(count > 0, station.prob_sum[:, lo:hi], np.float32(np.nan))
                    else:
                        values = np.where(count > 0, station.prob_sum[:, lo:hi] / np.maximum(count, 1),
                                          np.float32(np.nan))
                for trig in seg.triggers:
                    ch = self.phase_channels[trig.phase]
                    for on, off, peak, value, width in advance_trigger(trig, values[ch], seg.final_upto,
                                                                       confirm=self.config.confirm):
                        emitted += self._emit(station, seg, trig.phase, on, off, peak, value, width)
                seg.final_upto = boundary
            if seg.end is not None and seg.final_upto >= seg.end:
                for trig in seg.triggers:
                    if trig.on is not None and not trig.confirmed:
                        emitted += self._emit(station, seg, trig.phase, trig.on, seg.end - 1,
                                              trig.peak, trig.peak_value, run_width(trig, seg.end - 1))
                    trig.run_start, trig.on, trig.confirmed, trig.run_values = None, None, False, []
                station.segments.remove(seg)
        return emitted

    def _emit(self, station: StationBuffer, seg: Segment, phase: str, on: int, off: int,
              peak: int, value: float, width: int) -> list[EmittedPick]:
        guard = int(self.config.fill_guard * station.sampling_rate)
        for a, b in seg.filled:
            if on < b + guard and off >= a:
                self.counters["suppressed_picks"] += 1
                return []
        pick = EdgePick(
            trace_id=station.trace_id,
            start_time=station.pick_time_of(on),
            end_time=station.pick_time_of(off),
            peak_time=station.pick_time_of(peak),
            peak_value=float(value),
            phase=phase,
            channel=station.key.rsplit(".", 1)[-1] + "?",
            uncertainty_s=uncertainty_from_width(width, station.sampling_rate),
            snr_db=self._snr(station, seg, phase, peak),
        )
        self.counters["picks"] += 1
        return [EmittedPick(pick, self.picker_name, obspy.UTCDateTime(), station.newest_time())]

    def _snr(self, station: StationBuffer, seg: Segment, phase: str, peak: int) -> float:
        """The pick's SNR on the record's samples as offline picking sees them (the record from
        ``seg.start``; NaN where the windows leave it, as offline at a block's edge). Its
        signal window is always received by now, so no pick waits for it: a final sample is a
        window behind the data (offline mode) or ``lookahead`` (low-latency mode, whose signal
        window is at most that long: :func:`xiaonet.edge.pick_quality.signal_seconds`)."""
        rate = station.sampling_rate
        before, after = snr_span(rate, self.signal_s)
        end = seg.end if seg.end is not None else station.processed
        if peak - before < seg.start or peak + after > end or peak - before < station.base:
            return float("nan")
        rows = self._snr_rows[phase]
        lo = peak - before - station.base
        return snr_db(station.data[rows, lo: lo + before + after], before, rate, self.signal_s)
