"""Whole-trace P/S picking with an exported model: numpy + ONNX Runtime, no torch.

:class:`EdgePicker` gives the same picks as the torch path (``xiaonet.picking.pickers.ModelPicker``
on the same weights): the same windows and averaging as SeisBench's ``annotate``
(:mod:`xiaonet.edge.windowing`), the same trigger (:mod:`xiaonet.edge.picks`), and, for ObsPy
streams, the same gap-safe cleaning (:mod:`xiaonet.data.waveforms`, ObsPy only).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from xiaonet.edge.filters import apply_stream_filter
from xiaonet.edge.onnx_model import EdgeModel
from xiaonet.edge.pick_quality import snr_components
from xiaonet.edge.picks import EdgePick, instrument_channel, picks_from_curve
from xiaonet.edge.windowing import (WindowStack, absolute_index, covered_span, grid_window_offsets, overlap_samples,
                                    stream_to_grid_array)

logger = logging.getLogger(__name__)

PICK_PHASES = ("P", "S")


class EdgePicker:
    """Picks P and S arrivals with an ONNX model written by ``xiaonet export``.

    :param model: path of the ONNX file, or an :class:`EdgeModel`.
    :param thresholds: trigger threshold per phase; the file's own thresholds where missing.
    :param threads: ONNX Runtime threads (1 = one core).
    :param batch_size: windows per ONNX Runtime call. One hour at 100 Hz is 160 windows of
        3001 samples; 16 per call was fastest for the student on x86 and keeps ONNX Runtime's
        activation memory to a few MB (64 per call: ~14 MB more peak RSS).
    """

    def __init__(self, model: str | Path | EdgeModel, thresholds: dict[str, float] | None = None,
                 threads: int = 1, batch_size: int = 16):
        self.model = model if isinstance(model, EdgeModel) else EdgeModel(model, threads=threads)
        meta = self.model.metadata
        self.name = f"{meta.name}-onnx-{meta.precision}"
        self.thresholds = {phase: meta.thresholds.get(phase, 0.3) for phase in PICK_PHASES}
        self.thresholds.update({k.upper(): float(v) for k, v in (thresholds or {}).items()})
        self.batch_size = int(batch_size)
        missing = [p for p in PICK_PHASES if p not in meta.labels]
        if missing:
            raise ValueError(f"{self.model.path}: model has no output for phase(s) {missing}")

    def __repr__(self) -> str:
        return f"EdgePicker({self.model!r}, thresholds={self.thresholds})"

    @property
    def min_samples(self) -> int:
        """Shortest record (samples) the model can predict."""
        meta = self.model.metadata
        if meta.dynamic_length:
            return max(1, int(np.ceil(meta.min_record_s * meta.sampling_rate)))
        return meta.in_samples

    # --- numpy arrays ------------------------------------------------------------------------

    def annotate_array(self, data: np.ndarray, filtered: bool = False,
                       labels: tuple[str, ...] | None = None, start: float = 0.0) -> tuple[np.ndarray, int]:
        """Probabilities for a (components, samples) record in the model's component order.

        Returns ``(probabilities (labels, samples'), first)``: the curves start at sample
        ``first`` of the record (> 0 only for teachers that blind window edges). Records
        shorter than :attr:`min_samples` give an empty array. ``labels`` selects the
        curves to stack (default: all of the model's labels, in its order). ``start`` (s, a
        UTC timestamp for real data) places the windows of a model with the ``absolute``
        window grid.
        """
        meta = self.model.metadata
        data = np.asarray(data)
        if data.ndim != 2 or data.shape[0] != len(meta.component_order):
            raise ValueError(
                f"expected data shaped ({len(meta.component_order)}, samples) in component order "
                f"{meta.component_order}, got {data.shape}"
            )
        n_samples = data.shape[-1]
        rows = [meta.labels.index(label) for label in (labels or meta.labels)]
        if n_samples < self.min_samples:
            return np.empty((len(rows), 0), dtype=np.float32), 0
        if not filtered:
            data = apply_stream_filter(data, meta.stream_filter, meta.sampling_rate)
        in_samples = meta.in_samples
        if n_samples < in_samples:  # fully convolutional model: the record is one window
            in_samples = n_samples
        first_index = absolute_index(start, meta.sampling_rate) if meta.window_grid == "absolute" else None
        offsets = grid_window_offsets(n_samples, in_samples, overlap_samples(meta.overlap, in_samples), first_index)
        stack = WindowStack(len(rows), n_samples, meta.blinding, meta.stacking)
        windows = np.empty((min(self.batch_size, len(offsets)), data.shape[0], in_samples), np.float32)
        for first in range(0, len(offsets), self.batch_size):
            batch_offsets = offsets[first : first + self.batch_size]
            batch = windows[: len(batch_offsets)]
            for i, offset in enumerate(batch_offsets):
                batch[i] = data[:, offset : offset + in_samples]
            predictions = self.model.predict(batch)
            for offset, prediction in zip(batch_offsets, predictions[:, rows]):
                stack.add(int(offset), prediction)
        probabilities = stack.result()
        if meta.blinding == (0, 0):  # windows cover every sample: nothing to trim
            return probabilities, 0
        begin, end = covered_span(probabilities)
        return probabilities[:, begin:end], begin

    def pick_array(self, data: np.ndarray, start_time: Any = 0.0, trace_id: str = "",
                   filtered: bool = False, channel: str = "") -> list[EdgePick]:
        """Picks in one contiguous (components, samples) record sampled at the model's rate.

        ``start_time`` may be seconds (float) or an ObsPy ``UTCDateTime``; pick times are of
        the same kind. The SNR of each pick is measured on ``data`` as the model sees it
        (filtered when the model filters), ``channel`` names the instrument.
        """
        meta = self.model.metadata
        if meta.early_warning:  # streaming takes the model itself (xiaonet.stream)
            raise ValueError(f"{self.model.path}: an early-warning student picks as it streams; run it with "
                             f"`xiaonet stream --picker {self.model.path}` (whole files: --replay FILES)")
        if not filtered:
            data = apply_stream_filter(np.asarray(data), meta.stream_filter, meta.sampling_rate)
        probabilities, first = self.annotate_array(data, filtered=True, labels=PICK_PHASES,
                                                   start=_seconds(start_time))
        if probabilities.shape[-1] == 0:
            return []
        start = start_time + first / meta.sampling_rate
        picks: list[EdgePick] = []
        for phase, curve in zip(PICK_PHASES, probabilities):
            waveform = data[snr_components(phase, meta.component_order)]
            picks += picks_from_curve(curve, start, meta.sampling_rate, self.thresholds[phase], phase, trace_id,
                                      channel, waveform, first)
        return sorted(picks)

    # --- ObsPy streams (ObsPy needed) --------------------------------------------------------

    def pick(self, stream, note: Callable[[str], None] | None = None) -> list[EdgePick]:
        """Gap-safe whole-trace picking of an ObsPy stream, as ``xiaonet.picking.pickers.Picker.pick``.

        Traces are grouped by instrument and cleaned (:func:`xiaonet.data.waveforms.prepare_station`);
        each contiguous block is picked on its own.
        """
        from xiaonet.data.waveforms import pickable_blocks

        note = note or logger.warning
        picks: list[EdgePick] = []
        meta = self.model.metadata
        min_seconds = (self.min_samples - 1) / meta.sampling_rate
        # float32 is the model's input type; a stream filter (EQTransformer) or resampling
        # keeps float64, as the torch path filters and resamples float64
        resampled = any(tr.stats.sampling_rate != meta.sampling_rate for tr in stream)
        dtype = np.float64 if meta.stream_filter or resampled else np.float32
        for _, block in pickable_blocks(stream, note, min_seconds, self.name, dtype,
                                        meta.component_order, meta.sampling_rate):
            picks += self.pick_block(block)
        return sorted(picks)

    def pick_block(self, block) -> list[EdgePick]:
        """Picks in one instrument's contiguous, cleaned stream."""
        converted = self._block_array(block)
        if converted is None:
            return []
        start_time, data, trace_id = converted
        return self.pick_array(data, start_time, trace_id, filtered=True, channel=instrument_channel(block))

    def _block_array(self, block):
        """``(start_time, data, trace_id)`` of a cleaned block, filtered and at the model's rate
        (None when no trace has one of the model's components)."""
        from xiaonet.data.streams import filter_stream, resample_stream

        meta = self.model.metadata
        if meta.stream_filter or any(tr.stats.sampling_rate != meta.sampling_rate for tr in block):
            block = block.copy()  # filtering and resampling work in place
            filter_stream(block, meta.stream_filter)
            resample_stream(block, meta.sampling_rate, zerophase=True)  # as SeisBench annotate does
        return stream_to_grid_array(block, meta.component_order, meta.sampling_rate)

    def annotate(self, stream, note: Callable[[str], None] | None = None):
        """Probability traces (channels ``<name>_P``, ``_S``, ...) for every contiguous block."""
        import obspy

        from xiaonet.data.waveforms import pickable_blocks

        meta = self.model.metadata
        output = obspy.Stream()
        for _, block in pickable_blocks(stream, note or (lambda message: None)):
            converted = self._block_array(block)
            if converted is None:
                continue
            start_time, data, trace_id = converted
            probabilities, first = self.annotate_array(data, filtered=True, start=_seconds(start_time))
            network, station, location = trace_id.split(".")
            for label, curve in zip(meta.labels, probabilities):
                output.append(obspy.Trace(curve.astype(np.float32), {
                    "network": network, "station": station, "location": location,
                    "channel": f"{meta.name}_{label}", "sampling_rate": meta.sampling_rate,
                    "starttime": start_time + first / meta.sampling_rate,
                }))
        return output


def _seconds(start_time: Any) -> float:
    """A record start as seconds: a UTC timestamp for ``UTCDateTime``, else the number itself."""
    return float(getattr(start_time, "timestamp", start_time))
