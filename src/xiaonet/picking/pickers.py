"""One picker interface for the student, the SeisBench teachers and STA/LTA.

``Picker.pick(stream)`` is whole-trace, gap-safe picking of any ObsPy stream: traces are
grouped by instrument, cleaned (:func:`xiaonet.data.waveforms.prepare_station`) and each
contiguous block is picked on its own, so no pick is ever made across a gap. All pickers
return SeisBench ``Pick`` objects (``trace_id`` = ``NET.STA.LOC``, ``peak_time``,
``peak_value``, ``phase``), which the pick table writers and the evaluation score alike.
"""

from __future__ import annotations

import abc
import logging
from typing import Callable

import obspy

from xiaonet.data.waveforms import pickable_blocks

logger = logging.getLogger(__name__)


class Picker(abc.ABC):
    """Turns waveforms into P/S picks. Subclasses implement :meth:`pick_block`."""

    name: str = "picker"
    #: Shortest block (seconds) the picker can pick; None when any length works.
    min_duration: float | None = None
    #: Components the picker reads (None: any) and the rate it picks at (None: any); stations
    #: it cannot use, or only poorly, get a note instead of silently no picks.
    component_order: str | None = None
    sampling_rate: float | None = None

    def pick(
        self, stream: obspy.Stream, note: Callable[[str], None] | None = None
    ) -> list:
        """Pick every instrument in ``stream``, sorted; problems are passed to ``note``."""
        note = note or logger.warning
        picks = []
        for _, block in pickable_blocks(stream, note, self.min_duration, self.name,
                                        component_order=self.component_order, sampling_rate=self.sampling_rate):
            picks += self.pick_block(block)
        return sorted(picks)

    @abc.abstractmethod
    def pick_block(self, stream: obspy.Stream) -> list:
        """Pick one instrument's contiguous, cleaned stream: ``Pick`` objects (SeisBench's, or
        :class:`xiaonet.edge.picks.EdgePick`, the same fields without torch)."""

    @abc.abstractmethod
    def annotate(self, stream: obspy.Stream) -> obspy.Stream:
        """Characteristic functions or probabilities as an ObsPy stream."""


class ModelPicker(Picker):
    """Any SeisBench ``WaveformModel`` (the student or a teacher) as a picker.

    ``thresholds`` maps phase to the trigger threshold on its probability (SeisBench's
    ``P_threshold`` / ``S_threshold``); the model's own defaults are used where missing.
    """

    def __init__(self, model, name: str | None = None, thresholds: dict[str, float] | None = None,
                 batch_size: int = 256, **annotate_args):
        self.model = model.eval()
        self.name = name or type(model).__name__.lower()
        self.thresholds = dict(thresholds or {})
        self.annotate_args = {"batch_size": batch_size, **annotate_args}
        self.component_order = model.component_order
        self.sampling_rate = model.sampling_rate
        fully_convolutional = bool(getattr(model, "fully_convolutional", False))
        if not fully_convolutional and model.in_samples and model.sampling_rate:
            # SeisBench returns nothing for records shorter than one window: say so.
            self.min_duration = (model.in_samples - 1) / model.sampling_rate
        elif fully_convolutional:
            # Records under the grouping's minimum (1 s for the student) are dropped: say so.
            self.min_duration = float(getattr(getattr(model, "_grouping", None), "min_record_s", 0.0)) or None

    def __repr__(self) -> str:
        return f"ModelPicker({self.name}, thresholds={self.thresholds})"

    def window_predictor(self):
        """This picker as the streaming engine sees it: windows in, probabilities out, with the
        overlap, stacking and thresholds its offline ``classify`` uses
        (:func:`xiaonet.picking.torch_windows.predictor_from_model_picker`)."""
        from xiaonet.picking.torch_windows import predictor_from_model_picker

        return predictor_from_model_picker(self)

    def _args(self) -> dict:
        args = dict(self.annotate_args)
        for phase, value in self.thresholds.items():
            args[f"{phase}_threshold"] = value
        return args

    def annotate(self, stream: obspy.Stream) -> obspy.Stream:
        return self.model.annotate(stream, **self.annotate_args)

    def pick_block(self, stream: obspy.Stream) -> list:
        rates: dict[str, set] = {}
        for trace in stream:
            rates.setdefault(trace.id, set()).add(trace.stats.sampling_rate)
        if any(len(r) > 1 for r in rates.values()):
            # A channel that changes rate inside a record: SeisBench merges before it resamples
            # (and fails); resample first, with its own method, so the record stays one.
            from xiaonet.data.streams import resample_stream

            stream = stream.copy()
            resample_stream(stream, self.model.sampling_rate, zerophase=True)
        if getattr(self.model, "early_warning", None):
            return self._pick_as_streamed(stream)
        # SeisBench's classify (annotate, then classify_aggregate), with the curves kept for
        # the picks' uncertainty
        argdict = {**self.model.default_args, **self._args()}
        annotations = self.model.annotate(self.model.classify_stream_pre(stream, argdict), **argdict)
        output = self.model.classify_aggregate(annotations, argdict)
        picks = [p for p in output.picks if p.phase in ("P", "S")]
        return with_quality(picks, annotations, stream, self.model.component_order, self.model.sampling_rate)

    def _pick_as_streamed(self, stream: obspy.Stream) -> list:
        """An early-warning student picks offline exactly as it streams: windows every
        ``hop_s`` ending ``lookahead_s`` after the samples they decide, and picks emitted at
        confirmation (see :class:`StreamedPicker`)."""
        from xiaonet.stream.settings import early_warning_config

        return StreamedPicker(self, early_warning_config(self.model.early_warning)).pick_block(stream)


def with_quality(picks: list, annotations: obspy.Stream, stream: obspy.Stream, component_order: str,
                 sampling_rate: float) -> list:
    """SeisBench picks of one instrument's block as ``EdgePick`` with its channel, the
    uncertainty from the peak's width on its probability curve and the SNR on the block at the
    model's rate (:mod:`xiaonet.edge.pick_quality`), as the ONNX picker measures them."""
    from xiaonet.data.streams import resample_stream
    from xiaonet.edge.pick_quality import half_maximum_width, snr_components, snr_db, uncertainty_from_width
    from xiaonet.edge.picks import EdgePick, instrument_channel
    from xiaonet.edge.windowing import stream_to_grid_array

    channel = instrument_channel(stream)
    if any(tr.stats.sampling_rate != sampling_rate for tr in stream):
        stream = stream.copy()
        resample_stream(stream, sampling_rate, zerophase=True)
    grid = stream_to_grid_array(stream, component_order, sampling_rate)
    curves = {trace.stats.channel.rsplit("_", 1)[-1]: trace for trace in annotations}
    out = []
    for pick in picks:
        curve = curves.get(pick.phase)
        uncertainty = snr = float("nan")
        if curve is not None:
            index = int(round((pick.peak_time - curve.stats.starttime) * curve.stats.sampling_rate))
            uncertainty = uncertainty_from_width(half_maximum_width(curve.data, index), curve.stats.sampling_rate)
        if grid is not None:
            start, data, _ = grid
            index = int(round((pick.peak_time - start) * sampling_rate))
            snr = snr_db(data[snr_components(pick.phase, component_order)], index, sampling_rate)
        out.append(EdgePick(pick.trace_id, pick.start_time, pick.end_time, pick.peak_time, pick.peak_value,
                            pick.phase, channel, uncertainty, snr))
    return out


class StreamedPicker(Picker):
    """Any model picker run through the streaming engine with a given
    :class:`xiaonet.stream.settings.StreamingConfig`, over whole records: the picks that
    streaming in that mode emits (every pick is final when emitted, so how the data is cut
    into packets does not matter). Scores a streaming mode with the offline scorer.
    """

    def __init__(self, picker: "ModelPicker", config, name: str | None = None):
        self.picker = picker
        self.config = config
        self.name = name or f"{picker.name} ({config.mode})"
        self.min_duration = getattr(picker, "min_duration", None)
        meta = getattr(getattr(picker, "model", None), "metadata", None)  # an exported model: one window
        if self.min_duration is None and meta is not None:
            self.min_duration = (meta.in_samples - 1) / meta.sampling_rate

    def __repr__(self) -> str:
        return f"StreamedPicker({self.picker!r}, {self.config})"

    @property
    def model(self):
        """The inner picker's model (what :func:`xiaonet.stream.settings.early_warning_settings` reads)."""
        return self.picker.model

    def pick_block(self, stream: obspy.Stream) -> list:
        from xiaonet.stream.engine import StreamingPicker

        engine = StreamingPicker(self.picker, self.config, note=logger.debug)
        emitted = engine.feed_many(list(stream)) + engine.flush()
        return sorted(e.pick for e in emitted)

    def annotate(self, stream: obspy.Stream) -> obspy.Stream:
        raise NotImplementedError(f"{self.name}: streamed probabilities are not kept; annotate the "
                                  "picker itself for offline probabilities")
