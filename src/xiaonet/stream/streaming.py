"""Real-time picking from packets: per-station ring buffers, sliding windows, final picks.

:class:`StreamingPicker` is fed ObsPy ``Trace`` packets (miniSEED records of any size, the
channels of a station in any interleaving) and returns each pick once, as soon as it can no
longer change, with the time it was emitted.

How it works, per station (``NET.STA.LOC`` + band/instrument code, as offline):

1. **Ring buffer.** Each packet is written into a station buffer (components x samples, on
   a sample grid anchored at the station's first packet), with a mask of which samples were
   received. Duplicates, overlaps, reordered and late packets are sorted out here.
2. **Frontier.** The station is processed up to the *frontier*: the first sample not yet
   received on every live channel. A channel that lags the others by more than
   ``channel_timeout`` seconds is declared stopped (and treated as missing, i.e. zeros, as
   the offline path does for a missing component) until it sends data again.
3. **Segments.** Where no channel has data (a gap), the current record ends, exactly as the
   offline path splits a station into contiguous blocks; with ``gap_policy="zero-fill"``
   gaps up to ``max_fill`` seconds are filled with zeros instead, and picks touching the
   filled span are suppressed (no pick is invented across a gap).
4. **Windows.** In ``mode="offline"`` windows start every ``in_samples - overlap`` samples
   from the record start and one more window is aligned to the record end when the record
   ends (SeisBench's ``_cut_fragments_array``); window predictions are averaged where they
   overlap (SeisBench's ``avg`` stacking, in float32 and in window order). A sample is
   final once no future window can cover it; the end-of-record window means the last
   ``in_samples`` samples of a record are final only when the record ends (a gap, a rate
   change, :meth:`StreamingPicker.flush`). Picks are then identical to
   ``ModelPicker.pick`` on the whole record, at the price of latency (up to one window).
   In ``mode="low-latency"`` a window ending at the newest data is predicted every ``hop``
   seconds and each sample takes its probability from the one window in which it lies
   ``lookahead`` seconds before the window end: final ``lookahead`` + ``hop`` seconds after
   it arrived, at the price of less context after an onset than offline picking sees.
5. **Triggers.** Final probabilities go through the same trigger as SeisBench's
   ``picks_from_annotations`` (on at the threshold, off below half of it, peak inside),
   kept as a state machine so a trigger may span many packets.

Windows from all stations that are ready are predicted in one batch per call of
:meth:`StreamingPicker.feed_many` (or :meth:`StreamingPicker.process`), so a thousand
stations cost one model call per batch, not one per station.

The windowing helpers :func:`window_offsets` and :func:`stack_windows_average` are pure
numpy (no torch, no ObsPy) and document SeisBench's offline rules for other engines.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

import numpy as np
import obspy
import seisbench.util as sbu

logger = logging.getLogger("xiaonet.stream.streaming")

STREAMING_MODES = ("offline", "low-latency")
GAP_POLICIES = ("reset", "zero-fill")
STACKING_METHODS = ("avg", "max")


# --- Offline windowing rules, pure numpy -------------------------------------------------


def overlap_in_samples(overlap: float, in_samples: int) -> int:
    """SeisBench's rule: an overlap below 1 is a fraction of the window, else a count."""
    return int(overlap * in_samples) if overlap < 1 else int(overlap)


def window_offsets(n_samples: int, in_samples: int, overlap: int) -> np.ndarray:
    """Start samples of the offline windows over a record of ``n_samples`` samples.

    Windows every ``in_samples - overlap`` samples, plus one window aligned to the end of the
    record when the regular ones do not reach it (SeisBench's ``_cut_fragments_array``).
    Empty when the record is shorter than one window.

    >>> window_offsets(10000, 3001, 750).tolist()
    [0, 2251, 4502, 6753, 6999]
    """
    step = in_samples - overlap
    if step <= 0:
        raise ValueError(f"overlap {overlap} must be smaller than the window {in_samples}")
    offsets = np.arange(0, n_samples - in_samples + 1, step, dtype=np.int64)
    if offsets.size and offsets[-1] + in_samples < n_samples:
        offsets = np.concatenate([offsets, [n_samples - in_samples]])
    return offsets


def stack_windows_average(predictions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Average (labels, samples) window predictions where they overlap, NaN where none.

    ``predictions`` is (windows, labels, samples); NaN samples (blinded window edges) do not
    count. Sums are float32 in window order, as SeisBench's C ``stack_windows`` does, so the
    result matches it bit for bit.
    """
    predictions = np.asarray(predictions, dtype=np.float32)
    n_windows, n_labels, length = predictions.shape
    total = int(np.max(offsets)) + length if n_windows else 0
    summed = np.zeros((n_labels, total), dtype=np.float32)
    count = np.zeros((n_labels, total), dtype=np.float32)
    for prediction, offset in zip(predictions, offsets):
        valid = ~np.isnan(prediction)
        summed[:, offset : offset + length] += np.where(valid, prediction, np.float32(0))
        count[:, offset : offset + length] += valid
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, summed / np.maximum(count, 1), np.float32(np.nan))


# --- What the engine needs from a model --------------------------------------------------


class WindowPredictor(Protocol):
    """A model as the streaming engine sees it: raw windows in, probabilities out.

    ``predict`` maps float32 (batch, components, samples) raw windows, components in
    ``component_order``, to (batch, labels, samples) probabilities, NaN where a window's
    edges are blinded. ``dynamic_length`` models also take records shorter than one window.
    """

    name: str
    labels: str | tuple[str, ...]
    component_order: str
    sampling_rate: float
    in_samples: int
    overlap: int
    stacking: str
    dynamic_length: bool
    min_record_s: float
    thresholds: dict[str, float]

    def predict(self, windows: np.ndarray) -> np.ndarray: ...


@dataclass
class TorchWindowPredictor:
    """Any SeisBench array ``WaveformModel`` (the student, PhaseNet, EQTransformer).

    Uses the model's own ``annotate_batch_pre`` / ``forward`` / ``annotate_batch_post``, as
    ``annotate`` does, so normalisation and blinding are the model's.
    """

    model: object
    name: str
    labels: tuple[str, ...]
    component_order: str
    sampling_rate: float
    in_samples: int
    overlap: int
    stacking: str
    dynamic_length: bool
    min_record_s: float
    thresholds: dict[str, float]
    argdict: dict = field(default_factory=dict)
    #: The model's whole-stream filter (EQTransformer: zero-phase 1-45 Hz band-pass). A
    #: stream cannot be filtered zero-phase as it arrives, so it is applied to each window
    #: instead; picks then differ slightly from offline ones (see docs/streaming.md).
    window_filter: tuple | None = None

    def predict(self, windows: np.ndarray) -> np.ndarray:
        import torch

        if self.window_filter is not None:
            windows = _filter_windows(windows, self.window_filter, self.sampling_rate)
        batch = torch.as_tensor(np.ascontiguousarray(windows, dtype=np.float32))
        with torch.no_grad():
            pre = self.model.annotate_batch_pre(batch, argdict=self.argdict)
            piggyback = None
            if isinstance(pre, tuple):
                pre, piggyback = pre
            out = self.model(pre)
            out = self.model.annotate_batch_post(out, piggyback=piggyback, argdict=self.argdict)
        if isinstance(out, (tuple, list)):
            out = torch.stack(list(out), dim=-1)
        return out.numpy().transpose(0, 2, 1)  # (batch, samples, labels) -> (batch, labels, samples)


def _filter_windows(windows: np.ndarray, window_filter: tuple, rate: float) -> np.ndarray:
    """Apply an ObsPy filter (``filter_args``, ``filter_kwargs``) along the sample axis."""
    import obspy.signal.filter as filters

    args, kwargs = window_filter
    kind, *rest = args
    kwargs = dict(kwargs)
    data = np.asarray(windows, dtype=np.float64)
    if kind == "bandpass":
        return filters.bandpass(data, kwargs.pop("freqmin"), kwargs.pop("freqmax"), rate, axis=-1, **kwargs)
    if kind == "highpass":
        return filters.highpass(data, kwargs.pop("freq"), rate, axis=-1, **kwargs)
    if kind == "lowpass":
        return filters.lowpass(data, kwargs.pop("freq"), rate, axis=-1, **kwargs)
    raise ValueError(f"stream filter '{kind}' is not supported in streaming")


@dataclass
class ArrayWindowPredictor:
    """A numpy callable (e.g. the ONNX edge runtime) with the metadata the engine needs."""

    predict_fn: Callable[[np.ndarray], np.ndarray]
    name: str
    labels: tuple[str, ...]
    component_order: str
    sampling_rate: float
    in_samples: int
    overlap: int
    stacking: str = "avg"
    dynamic_length: bool = False
    min_record_s: float = 1.0
    thresholds: dict[str, float] = field(default_factory=dict)
    blinding: tuple[int, int] = (0, 0)

    def predict(self, windows: np.ndarray) -> np.ndarray:
        out = np.array(self.predict_fn(np.ascontiguousarray(windows, dtype=np.float32)),
                       dtype=np.float32)
        before, after = self.blinding
        if before > 0:
            out[..., :before] = np.nan
        if after > 0:
            out[..., -after:] = np.nan
        return out


def predictor_from_model_picker(picker) -> TorchWindowPredictor:
    """The window predictor behind a :class:`xiaonet.picking.pickers.ModelPicker`.

    Overlap, stacking and thresholds are resolved as the picker's offline ``classify``
    resolves them (picker thresholds, then the model's ``default_args``, then the model
    class defaults).
    """
    model = picker.model
    if getattr(model, "output_type", None) != "array":
        raise ValueError(
            f"{picker.name}: streaming supports array models (per-sample probabilities, e.g. "
            f"the student, PhaseNet, EQTransformer); this model's output type is "
            f"'{getattr(model, 'output_type', None)}'"
        )
    argdict = dict(model.default_args)
    argdict.update({k: v for k, v in picker.annotate_args.items() if k != "batch_size"})
    overlap = overlap_in_samples(model._argdict_get_with_default(argdict, "overlap"),
                                 model.in_samples)
    stacking = str(model._argdict_get_with_default(argdict, "stacking")).lower()
    class_default = model._annotate_args.get("*_threshold", (None, 0.3))[1]
    thresholds = {}
    for phase in ("P", "S"):
        thresholds[phase] = float(
            picker.thresholds.get(phase, argdict.get(f"{phase}_threshold", class_default))
        )
    dynamic = bool(getattr(model, "fully_convolutional", False))
    window_filter = None
    if getattr(model, "filter_args", None):
        if isinstance(model.filter_args, dict):
            raise ValueError(f"{picker.name}: per-channel stream filters are not supported in streaming")
        window_filter = (tuple(model.filter_args), dict(model.filter_kwargs or {}))
    min_record_s = float(getattr(getattr(model, "_grouping", None), "min_record_s", 1.0))
    return TorchWindowPredictor(
        model=model.eval(),
        name=picker.name,
        labels=tuple(model.labels),
        component_order=model.component_order,
        sampling_rate=float(model.sampling_rate),
        in_samples=int(model.in_samples),
        overlap=overlap,
        stacking=stacking,
        dynamic_length=dynamic,
        min_record_s=min_record_s,
        thresholds=thresholds,
        argdict=argdict,
        window_filter=window_filter,
    )


def predictor_from_edge_model(edge_model) -> ArrayWindowPredictor:
    """Wrap an object with ``predict(windows)`` and ``metadata`` (the ONNX edge runtime)."""
    meta = edge_model.metadata
    if getattr(meta, "stream_filter", None):
        raise ValueError(
            f"{meta.name}: this model filters whole streams before windowing "
            f"({meta.stream_filter}); streaming it is not supported"
        )
    return ArrayWindowPredictor(
        predict_fn=edge_model.predict,
        name=meta.name,
        labels=tuple(meta.labels),
        component_order=meta.component_order,
        sampling_rate=float(meta.sampling_rate),
        in_samples=int(meta.in_samples),
        overlap=overlap_in_samples(meta.overlap, int(meta.in_samples)),
        stacking=str(getattr(meta, "stacking", "avg")).lower(),
        dynamic_length=bool(meta.dynamic_length),
        min_record_s=float(meta.min_record_s),
        thresholds={"P": 0.3, "S": 0.3, **dict(meta.thresholds)},
        blinding=tuple(meta.blinding),
    )


# --- Configuration, emitted picks, counters -----------------------------------------------


@dataclass
class StreamingConfig:
    """How the engine windows, waits and handles faults.

    :param mode: ``offline`` (picks identical to offline picking; latency up to one window)
        or ``low-latency`` (a window every ``hop`` s, final ``lookahead`` s after arrival).
    :param hop: Seconds between windows in ``low-latency`` mode (offline mode always uses
        ``in_samples - overlap``).
    :param lookahead: Seconds of data after a sample that low-latency mode waits for.
    :param window: Low-latency mode with a fully convolutional model (the student): window
        length in seconds (default: the model's own window). Shorter is cheaper; the
        model then sees less context.
    :param gap_policy: ``reset`` (a gap ends the record, as offline) or ``zero-fill`` (gaps
        up to ``max_fill`` s become zeros, longer gaps reset).
    :param max_fill: Longest gap (seconds) that ``zero-fill`` fills.
    :param fill_guard: Seconds after a filled gap in which picks are suppressed as well.
    :param channel_timeout: A channel this many seconds behind the station's newest sample
        is treated as stopped (zeros) so the other channels are not held up.
    :param max_ahead: A packet more than this many seconds after the station's processed
        data (a clock jump) flushes the station and restarts it at that packet.
    :param batch_size: Most windows per model call.
    """

    mode: str = "offline"
    hop: float = 0.5
    lookahead: float = 1.0
    window: float | None = None
    gap_policy: str = "reset"
    max_fill: float = 5.0
    fill_guard: float = 1.0
    channel_timeout: float = 30.0
    max_ahead: float = 600.0
    batch_size: int = 512

    def __post_init__(self):
        if self.mode not in STREAMING_MODES:
            raise ValueError(f"Unknown streaming mode '{self.mode}'. Known: {', '.join(STREAMING_MODES)}.")
        if self.gap_policy not in GAP_POLICIES:
            raise ValueError(f"Unknown gap policy '{self.gap_policy}'. Known: {', '.join(GAP_POLICIES)}.")
        for name in ("hop", "channel_timeout", "max_ahead"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.lookahead < 0 or self.max_fill < 0 or self.fill_guard < 0:
            raise ValueError("lookahead, max_fill and fill_guard must not be negative")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclass
class EmittedPick:
    """A final pick and when the engine emitted it.

    ``emitted_at`` is the wall-clock time of emission; ``data_time`` is the time of the
    newest sample the station had delivered then (so ``data_time - pick.peak_time`` is the
    latency in data time, independent of replay speed).
    """

    pick: sbu.Pick
    picker: str
    emitted_at: obspy.UTCDateTime
    data_time: obspy.UTCDateTime

    def as_row(self) -> dict:
        network, station, location = (self.pick.trace_id.split(".") + ["", "", ""])[:3]
        return {
            "network": network,
            "station": station,
            "location": location,
            "phase": self.pick.phase,
            "time": format_time(self.pick.peak_time),
            "probability": f"{float(self.pick.peak_value):.4f}",
            "picker": self.picker,
            "emitted_at": format_time(self.emitted_at),
        }


def format_time(t) -> str:
    return obspy.UTCDateTime(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


COUNTER_NAMES = (
    "packets",
    "samples",
    "duplicate_packets",
    "late_packets",
    "reordered_packets",
    "overlapping_packets",
    "unknown_component_packets",
    "unsupported_rate_packets",
    "empty_packets",
    "gaps",
    "zero_filled_samples",
    "channels_stopped",
    "rate_changes",
    "resyncs",
    "windows",
    "model_calls",
    "picks",
    "suppressed_picks",
)


# --- Per-station state -------------------------------------------------------------------


@dataclass
class _Trigger:
    """SeisBench's trigger (on >= threshold, off when below threshold / 2) as a state machine."""

    phase: str
    threshold: float
    run_start: int | None = None  # first sample of the current run >= off threshold
    on: int | None = None  # first sample >= on threshold in the run
    peak: int = -1
    peak_value: float = -np.inf


@dataclass
class _Segment:
    """One contiguous record of a station (offline: one block)."""

    start: int  # absolute sample index of the first sample
    triggers: list
    next_window: int = 0  # index of the next regular window
    end: int | None = None  # absolute end (exclusive) once the record has ended
    final_upto: int = 0  # absolute: samples before this have gone through the triggers
    owned_upto: int = 0  # low-latency: samples before this have their probability
    filled: list = field(default_factory=list)  # zero-filled spans (absolute start, end)


class _Station:
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
        self.segments: list[_Segment] = []
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

    def ensure(self, until: int, window_start: Callable[[_Segment], int]) -> None:
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
class _Window:
    station: _Station
    segment: _Segment
    offset: int  # absolute
    length: int
    owns: tuple[int, int] | None = None  # low-latency: absolute span this window decides


# --- The engine --------------------------------------------------------------------------


class StreamingPicker:
    """Per-station streaming picking with any picker of the project's interface.

    :param picker: a :class:`xiaonet.picking.pickers.ModelPicker` (student or teacher), an ONNX
        ``xiaonet.edge.model.EdgeModel``, or any :class:`WindowPredictor`. For STA/LTA use
        :class:`StreamingStaLta` (or :func:`make_streaming_picker`, which picks the engine).
    :param config: :class:`StreamingConfig`.
    :param note: called with a message for every fault worth telling a person about.
    """

    def __init__(self, picker, config: StreamingConfig | None = None,
                 note: Callable[[str], None] | None = None):
        self.config = config or StreamingConfig()
        self.note = note or logger.warning
        if hasattr(picker, "predict") and hasattr(picker, "in_samples"):
            self.predictor = picker
        elif hasattr(picker, "predict") and hasattr(picker, "metadata"):
            self.predictor = predictor_from_edge_model(picker)
        elif hasattr(picker, "model"):
            self.predictor = predictor_from_model_picker(picker)
        else:
            raise TypeError(
                f"{picker!r}: StreamingPicker needs a model picker or a WindowPredictor; "
                "for STA/LTA use xiaonet.stream.streaming.StreamingStaLta"
            )
        p = self.predictor
        if p.stacking not in STACKING_METHODS:
            raise ValueError(f"{p.name}: stacking '{p.stacking}' is not supported ({STACKING_METHODS})")
        self.picker_name = p.name
        self.labels = tuple(p.labels)
        phases = [ph for ph in ("P", "S") if ph in self.labels]
        # Only the P and S probabilities are stacked and kept (row i = phases[i]).
        self.phase_rows = [self.labels.index(ph) for ph in phases]
        self.phase_channels = {ph: i for i, ph in enumerate(phases)}
        self.component_index = _component_index(p.component_order)
        self.in_samples = int(p.in_samples)
        if self.config.mode == "offline":
            self.step = self.in_samples - int(p.overlap)
            self.lookahead = 0
        else:
            if self.config.window is not None:
                if not p.dynamic_length:
                    raise ValueError(f"{p.name}: window= needs a fully convolutional model (the "
                                     f"student); this model takes exactly {p.in_samples} samples")
                self.in_samples = int(round(self.config.window * p.sampling_rate))
            self.step = max(1, int(round(self.config.hop * p.sampling_rate)))
            self.lookahead = int(round(self.config.lookahead * p.sampling_rate))
            if self.lookahead + self.step > self.in_samples:
                raise ValueError(
                    f"lookahead + hop ({self.config.lookahead} + {self.config.hop} s) must fit "
                    f"in one {self.in_samples}-sample window"
                )
        if self.step <= 0:
            raise ValueError(f"{p.name}: overlap {p.overlap} leaves no step between windows")
        self.stations: dict[str, _Station] = {}
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        self._dirty: set[str] = set()
        self._channel_keys: dict[tuple, tuple[str, int | None]] = {}
        self._warned: set[tuple[str, str]] = set()
        self.model_seconds = 0.0

    # --- feeding -----------------------------------------------------------------------

    def feed(self, packet: obspy.Trace) -> list[EmittedPick]:
        """Take one packet and return the picks that became final."""
        return self.feed_many([packet])

    def feed_many(self, packets: Iterable[obspy.Trace]) -> list[EmittedPick]:
        """Take packets (any stations, any order) and predict all ready windows in batches."""
        emitted: list[EmittedPick] = []
        for packet in packets:
            try:
                emitted += self._accept(packet)
            except Exception as error:  # one bad packet never takes the engine down
                self._warn_once(getattr(packet, "id", "?"), "bad packet",
                                f"{getattr(packet, 'id', '?')}: packet dropped: "
                                f"{type(error).__name__}: {error}")
        return emitted + self.process()

    def process(self, flush: bool = False) -> list[EmittedPick]:
        """Advance every station with new data; ``flush=True`` ends every record."""
        keys = list(self.stations) if flush else sorted(self._dirty)
        self._dirty.clear()
        windows: list[_Window] = []
        touched: list[_Station] = []
        for key in keys:
            station = self.stations[key]
            windows += self._advance(station, flush=flush)
            touched.append(station)
        self._predict(windows)
        emitted: list[EmittedPick] = []
        for station in touched:
            emitted += self._finalize(station)
        return sorted(emitted, key=lambda e: (e.pick.peak_time, e.pick.trace_id, e.pick.phase))

    def flush(self, station_keys: Iterable[str] | None = None) -> list[EmittedPick]:
        """End the records of all (or the given) stations: the end of data."""
        if station_keys is None:
            return self.process(flush=True)
        windows: list[_Window] = []
        stations = [self.stations[k] for k in station_keys if k in self.stations]
        for station in stations:
            windows += self._advance(station, flush=True)
        self._predict(windows)
        emitted = []
        for station in stations:
            emitted += self._finalize(station)
        return emitted

    def flush_idle(self, idle_seconds: float, now: float | None = None) -> list[EmittedPick]:
        """End the records of stations silent for ``idle_seconds`` (wall clock), free them.

        A station that sends again later starts afresh, as after a gap.
        """
        now = time.time() if now is None else now
        idle = [k for k, s in self.stations.items() if now - s.last_arrival > idle_seconds]
        if not idle:
            return []
        emitted = self.flush(idle)
        for key in idle:
            del self.stations[key]
            self._dirty.discard(key)
        return emitted

    def memory_bytes(self) -> int:
        """Bytes held in station buffers (the per-station state that grows with stations)."""
        return sum(s.nbytes() for s in self.stations.values())

    # --- packet intake -----------------------------------------------------------------

    def _warn_once(self, key: str, kind: str, message: str) -> None:
        if (key, kind) not in self._warned:
            self._warned.add((key, kind))
            self.note(message)

    def _accept(self, packet: obspy.Trace) -> list[EmittedPick]:
        stats = packet.stats
        self.counters["packets"] += 1
        if stats.npts == 0:
            self.counters["empty_packets"] += 1
            return []
        channel = stats.channel
        ids = (stats.network, stats.station, stats.location, channel)
        cached = self._channel_keys.get(ids)
        if cached is None:
            key = f"{stats.network}.{stats.station}.{stats.location}.{channel[:-1]}"
            cached = self._channel_keys[ids] = (key, self.component_index.get(channel[-1:]))
        key, component = cached
        if component is None:
            self.counters["unknown_component_packets"] += 1
            self._warn_once(key, "component", f"{packet.id}: component '{stats.channel[-1:]}' is "
                            f"not one of {self.predictor.component_order} (or 1/2); ignored")
            return []
        rate = float(stats.sampling_rate)
        emitted: list[EmittedPick] = []
        station = self.stations.get(key)
        if station is not None and abs(station.sampling_rate - rate) > 1e-6 * rate:
            self.counters["rate_changes"] += 1
            self.note(f"{key}: sampling rate changed from {station.sampling_rate:g} to {rate:g} Hz; "
                      "record ended and station restarted")
            emitted += self.flush([key])
            del self.stations[key]
            station = None
        if abs(rate - self.predictor.sampling_rate) > 1e-6 * rate:
            self.counters["unsupported_rate_packets"] += 1
            self._warn_once(key, f"rate {rate}", f"{packet.id}: {rate:g} Hz packets are dropped: "
                            f"{self.picker_name} streams at {self.predictor.sampling_rate:g} Hz "
                            "(resample upstream)")
            return emitted
        data = np.asarray(packet.data)
        if not np.issubdtype(data.dtype, np.number):
            raise ValueError(f"non-numeric samples ({data.dtype})")
        if station is None:
            station = self._new_station(key, stats, rate)
        start = station.index_of(stats.starttime)
        if start - station.processed > int(self.config.max_ahead * rate) and station.seen.any():
            self.counters["resyncs"] += 1
            self.note(f"{key}: packet at {stats.starttime} is more than {self.config.max_ahead:g} s "
                      "ahead of the station's data; record ended and station restarted there")
            emitted += self.flush([key])
            station = self._new_station(key, stats, rate)
            start = 0
        self._write(station, component, start, data)
        station.last_arrival = time.time()
        self._dirty.add(key)
        return emitted

    def _new_station(self, key: str, stats, rate: float) -> _Station:
        # One window, one step and a few packets; grows (doubling) only while a channel lags.
        capacity = self.in_samples + self.step + 1024
        station = _Station(key, f"{stats.network}.{stats.station}.{stats.location}", rate,
                           obspy.UTCDateTime(stats.starttime), len(self.predictor.component_order),
                           len(self.phase_rows), capacity, start_margin=int(round(rate)))
        self.stations[key] = station
        return station

    def _write(self, station: _Station, component: int, start: int, data: np.ndarray) -> None:
        n = data.size
        stop = start + n
        self.counters["samples"] += n
        if (station.seen[component] and start == station.end[component] and start >= station.processed
                and not np.ma.isMaskedArray(data)):
            # Fast path, the usual case: the channel's next packet, in order, all finite.
            values = data.astype(np.float32, copy=False)
            if np.isfinite(values).all():
                station.ensure(stop, self._window_start)
                lo, hi = start - station.base, stop - station.base
                station.data[component, lo:hi] = values
                station.present[component, lo:hi] = True
                station.end[component] = stop
                station.recent_packets[station.recent_next % station.recent_packets.size] = hash(
                    (component, start, n))
                station.recent_next += 1
                if station.stopped[component]:
                    self._resume(station, component)
                return
        end = int(station.end[component]) if station.seen[component] else None
        base = station.base
        # Samples before the processed frontier can no longer be used: duplicates or late.
        first = max(start, station.processed)
        old_all_present = True
        if first > start:
            lo = max(start, base)
            hi = min(stop, station.processed)
            old_all_present = start >= base and bool(station.present[component, lo - base:hi - base].all())
        signature = hash((component, start, n))
        if (station.recent_packets == signature).any():
            old_all_present = True  # the same record again, even if older than the buffer
        else:
            station.recent_packets[station.recent_next % station.recent_packets.size] = signature
            station.recent_next += 1
        if first >= stop:
            self.counters["duplicate_packets" if old_all_present else "late_packets"] += 1
            return
        station.ensure(stop, self._window_start)
        lo, hi = first - station.base, stop - station.base
        have = station.present[component, lo:hi]
        if np.ma.isMaskedArray(data):
            valid = ~np.ma.getmaskarray(data)[first - start:]
            values = np.asarray(data.filled(0)[first - start:], dtype=np.float32)
        else:
            values = np.asarray(data[first - start:], dtype=np.float32)
            valid = np.ones(values.size, dtype=bool)
        valid &= np.isfinite(values)  # NaN / inf samples are a gap, as offline
        if have.all() and old_all_present:
            self.counters["duplicate_packets"] += 1
            return
        if not old_all_present:
            self.counters["late_packets"] += 1
        elif end is not None and start < end:
            self.counters["overlapping_packets" if stop > end else "reordered_packets"] += 1
        write = valid & ~have
        np.copyto(station.data[component, lo:hi], values, where=write)
        station.present[component, lo:hi] |= write
        if not station.seen[component]:
            station.seen[component] = True
            station.end[component] = stop
        else:
            station.end[component] = max(int(station.end[component]), stop)
        if station.stopped[component]:
            self._resume(station, component)

    def _resume(self, station: _Station, component: int) -> None:
        station.stopped[component] = False
        self.note(f"{station.key}: component {self.predictor.component_order[component]} "
                  "sends data again")

    def _window_start(self, seg: _Segment) -> int:
        """Oldest absolute sample the segment's next window needs."""
        if seg.end is not None:  # its last windows are predicted in the same call
            return seg.final_upto
        return min(seg.start + seg.next_window * self.step, seg.final_upto)

    # --- frontier, segments, windows ---------------------------------------------------

    def _advance(self, station: _Station, flush: bool) -> list[_Window]:
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
        frontier = newest if flush or not live.any() else int(station.end[live].min())
        windows: list[_Window] = []
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
    def _lag(station: _Station, component: int, newest: int) -> int:
        """Samples the other components delivered after this one's last (gaps not counted)."""
        lo = max(int(station.end[component]), station.base) - station.base
        return int(station.present[:, lo : newest - station.base].any(axis=0).sum())

    def _segment_runs(self, station: _Station, any_present: np.ndarray, offset: int,
                      flush: bool) -> tuple[int, list[_Window]]:
        """Open and close records along runs of received / missing samples.

        Returns the absolute index up to which the span was consumed (a trailing run of
        missing samples is left for later unless flushing: its length is not known yet).
        """
        windows: list[_Window] = []
        if any_present.all():  # the usual case: data on some channel at every sample
            if not station.segments or station.segments[-1].end is not None:
                station.segments.append(self._new_segment(offset))
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
                    station.segments.append(self._new_segment(a_abs))
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

    def _new_segment(self, start: int) -> _Segment:
        triggers = [_Trigger(ph, self.predictor.thresholds.get(ph, 0.3)) for ph in self.phase_channels]
        return _Segment(start=start, triggers=triggers, final_upto=start, owned_upto=start)

    def _regular_windows(self, station: _Station, seg: _Segment, until: int) -> list[_Window]:
        windows = []
        while seg.start + seg.next_window * self.step + self.in_samples <= until:
            offset = seg.start + seg.next_window * self.step
            owns = None
            if self.config.mode == "low-latency":
                owned_end = offset + self.in_samples - self.lookahead
                owns = (seg.owned_upto, owned_end)
                seg.owned_upto = owned_end
            windows.append(_Window(station, seg, offset, self.in_samples, owns))
            seg.next_window += 1
        return windows

    def _close(self, station: _Station, seg: _Segment, end: int) -> list[_Window]:
        """End a record at absolute ``end`` and schedule its remaining windows."""
        windows = self._regular_windows(station, seg, end)
        seg.end = end
        n = end - seg.start
        if n < self.in_samples:
            # Shorter than one window: a fully convolutional model predicts it whole (records
            # under min_record_s are dropped, as offline); other models give nothing.
            if (self.predictor.dynamic_length and n > 0
                    and (n - 1) / station.sampling_rate >= self.predictor.min_record_s):
                windows.append(_Window(station, seg, seg.start, n, (seg.start, end)))
        elif self.config.mode == "offline":
            last_regular = seg.start + (seg.next_window - 1) * self.step
            if last_regular + self.in_samples < end:
                windows.append(_Window(station, seg, end - self.in_samples, self.in_samples))
        elif seg.owned_upto < end:
            windows.append(_Window(station, seg, end - self.in_samples, self.in_samples,
                                   (seg.owned_upto, end)))
        seg.owned_upto = end
        return windows

    # --- prediction and stacking -------------------------------------------------------

    def _predict(self, windows: list[_Window]) -> None:
        if not windows:
            return
        by_length: dict[int, list[_Window]] = defaultdict(list)
        for w in windows:
            by_length[w.length].append(w)
        predictions: dict[int, np.ndarray] = {}
        for length, group in by_length.items():
            for i in range(0, len(group), self.config.batch_size):
                chunk = group[i : i + self.config.batch_size]
                batch = np.stack([
                    w.station.data[:, w.offset - w.station.base : w.offset - w.station.base + length]
                    for w in chunk
                ])
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

    def _stack(self, w: _Window, prediction: np.ndarray) -> None:
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

    def _final_boundary(self, station: _Station, seg: _Segment) -> int:
        """Absolute index below which the segment's probabilities can no longer change."""
        if seg.end is not None:
            return seg.end
        if self.config.mode == "low-latency":
            return seg.owned_upto
        # Regular windows are cut as soon as their data is in, so no future regular window
        # covers samples before the processed frontier minus one window, and the end-of-record
        # window (offset = record length - in_samples >= frontier - in_samples) cannot either.
        return max(seg.start, min(seg.start + seg.next_window * self.step,
                                  station.processed - self.in_samples))

    def _finalize(self, station: _Station) -> list[EmittedPick]:
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
                    for on, off, peak, value in _advance_trigger(trig, values[ch], seg.final_upto):
                        emitted += self._emit(station, seg, trig.phase, on, off, peak, value)
                seg.final_upto = boundary
            if seg.end is not None and seg.final_upto >= seg.end:
                for trig in seg.triggers:
                    if trig.on is not None:
                        emitted += self._emit(station, seg, trig.phase, trig.on, seg.end - 1,
                                              trig.peak, trig.peak_value)
                    trig.run_start, trig.on = None, None
                station.segments.remove(seg)
        return emitted

    def _emit(self, station: _Station, seg: _Segment, phase: str, on: int, off: int,
              peak: int, value: float) -> list[EmittedPick]:
        guard = int(self.config.fill_guard * station.sampling_rate)
        for a, b in seg.filled:
            if on < b + guard and off >= a:
                self.counters["suppressed_picks"] += 1
                return []
        pick = sbu.Pick(
            trace_id=station.trace_id,
            start_time=station.time_of(on),
            end_time=station.time_of(off),
            peak_time=station.time_of(peak),
            peak_value=float(value),
            phase=phase,
        )
        self.counters["picks"] += 1
        return [EmittedPick(pick, self.picker_name, obspy.UTCDateTime(), station.newest_time())]


def _advance_trigger(trig: _Trigger, values: np.ndarray, first: int, off_level: float | None = None):
    """Feed final values to a trigger; yield (on, off, peak, value) of closed triggers.

    Same result as ``obspy.signal.trigger.trigger_onset(values, on, off)`` (``off`` defaults
    to half the threshold, SeisBench's rule) followed by SeisBench's peak search inside the
    trigger, over any split of the samples into chunks. ``first`` is the absolute index of
    ``values[0]``.
    """
    on_level = trig.threshold
    off_level = trig.threshold / 2 if off_level is None else off_level
    above_off = values >= off_level
    if not above_off.any() and trig.run_start is None:
        return
    change = np.flatnonzero(np.diff(above_off.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [values.size]])
    for a, b in zip(bounds[:-1], bounds[1:]):
        a, b = int(a), int(b)
        if above_off[a]:
            if trig.run_start is None:
                trig.run_start, trig.on, trig.peak, trig.peak_value = first + a, None, -1, -np.inf
            chunk = values[a:b]
            if trig.on is None:
                hits = np.flatnonzero(chunk >= on_level)
                if hits.size:
                    trig.on = first + a + int(hits[0])
            i = int(np.argmax(chunk))
            if chunk[i] > trig.peak_value:
                trig.peak, trig.peak_value = first + a + i, float(chunk[i])
        elif trig.run_start is not None:
            if trig.on is not None:
                yield trig.on, first + a - 1, trig.peak, trig.peak_value
            trig.run_start, trig.on = None, None


def _component_index(order: str) -> dict[str, int]:
    """Component code -> position, with 1/2 accepted as N/E (SeisBench's flexible rule)."""
    from xiaonet.edge.streams import component_index

    return component_index(order)


# --- STA/LTA, streamed ---------------------------------------------------------------------


@dataclass
class _StaLtaChannel:
    """Causal STA/LTA state of one vertical channel (one contiguous record)."""

    trace_id: str
    sampling_rate: float
    start: obspy.UTCDateTime  # time of the record's first sample
    next_index: int = 0  # samples received in this record
    warmup: list = field(default_factory=list)  # raw samples until the LTA can be warmed up
    mean: float = 0.0
    sos_state: np.ndarray | None = None
    sta: float = 0.0
    lta: float = 0.0
    trigger: _Trigger | None = None
    recent_starts: list = field(default_factory=list)
    last_arrival: float = 0.0


class StreamingStaLta:
    """:class:`xiaonet.picking.stalta.StaLtaPicker` run causally on packets.

    What streaming means for STA/LTA: the band-pass keeps its filter state across packets,
    the recursive STA and LTA keep theirs, and the trigger (on at ``trigger_on``, off below
    ``trigger_off``) is a state machine, so a pick is emitted once, when its trigger
    switches off. The LTA is warmed up on the time-reversed first ``lta`` seconds of each
    record, as offline. How close to offline: the offline picker removes the mean of the
    whole record and tapers both of its ends; streaming removes the mean of the first
    ``lta`` seconds and tapers only the start. The difference is a constant offset through
    a 1 Hz high-pass, which dies out within seconds, so picks after the first ~30 s of a
    record and before its last second are the offline ones (a test checks this).
    Gaps and sampling-rate changes end the record, as offline.
    """

    def __init__(self, picker, config: StreamingConfig | None = None,
                 note: Callable[[str], None] | None = None):
        self.config = config or StreamingConfig()
        self.note = note or logger.warning
        self.stalta = picker
        self.picker_name = picker.name
        self.channels: dict[str, _StaLtaChannel] = {}
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        self._taper_cache: dict[float, np.ndarray] = {}
        self._sos_cache: dict[float, np.ndarray] = {}
        self.model_seconds = 0.0

    @property
    def stations(self) -> dict[str, _StaLtaChannel]:
        return self.channels

    def feed(self, packet: obspy.Trace) -> list[EmittedPick]:
        return self.feed_many([packet])

    def feed_many(self, packets: Iterable[obspy.Trace]) -> list[EmittedPick]:
        emitted: list[EmittedPick] = []
        for packet in packets:
            try:
                emitted += self._accept(packet)
            except Exception as error:  # one bad packet never takes the engine down
                self.note(f"{getattr(packet, 'id', '?')}: packet dropped: "
                          f"{type(error).__name__}: {error}")
        return emitted

    def process(self, flush: bool = False) -> list[EmittedPick]:
        return self.flush() if flush else []

    def flush(self, station_keys: Iterable[str] | None = None) -> list[EmittedPick]:
        keys = list(self.channels) if station_keys is None else list(station_keys)
        emitted: list[EmittedPick] = []
        for key in keys:
            if key in self.channels:
                emitted += self._end_record(self.channels.pop(key))
        return emitted

    def flush_idle(self, idle_seconds: float, now: float | None = None) -> list[EmittedPick]:
        now = time.time() if now is None else now
        return self.flush([k for k, c in self.channels.items() if now - c.last_arrival > idle_seconds])

    def memory_bytes(self) -> int:
        return sum(8 * (len(c.warmup) + (c.sos_state.size if c.sos_state is not None else 0)) + 256
                   for c in self.channels.values())

    # --- internals ---------------------------------------------------------------------

    def _accept(self, packet: obspy.Trace) -> list[EmittedPick]:
        stats = packet.stats
        self.counters["packets"] += 1
        if not stats.channel.endswith("Z"):
            return []  # the offline picker uses the vertical only
        if stats.npts == 0:
            self.counters["empty_packets"] += 1
            return []
        data = np.asarray(np.ma.filled(packet.data, np.nan) if np.ma.isMaskedArray(packet.data)
                          else packet.data, dtype=np.float64)
        self.counters["samples"] += data.size
        key = packet.id
        rate = float(stats.sampling_rate)
        emitted: list[EmittedPick] = []
        channel = self.channels.get(key)
        if channel is not None and abs(channel.sampling_rate - rate) > 1e-6 * rate:
            self.counters["rate_changes"] += 1
            self.note(f"{key}: sampling rate changed from {channel.sampling_rate:g} to {rate:g} Hz; "
                      "record ended")
            emitted += self.flush([key])
            channel = None
        start_ns = stats.starttime.ns
        if channel is not None:
            index = int(round((start_ns - channel.start.ns) * 1e-9 * rate))
            if index < channel.next_index:
                skip = channel.next_index - index
                if skip >= data.size:
                    duplicate = start_ns in channel.recent_starts
                    self.counters["duplicate_packets" if duplicate else "late_packets"] += 1
                    return emitted
                self.counters["overlapping_packets"] += 1
                data = data[skip:]
            elif index > channel.next_index:
                self.counters["gaps"] += 1
                emitted += self.flush([key])
                channel = None
            if channel is not None:
                channel.recent_starts.append(start_ns)
        if channel is None:
            channel = _StaLtaChannel(key, rate, obspy.UTCDateTime(stats.starttime))
            channel.recent_starts.append(start_ns)
            self.channels[key] = channel
        del channel.recent_starts[:-16]
        channel.last_arrival = time.time()
        bad = ~np.isfinite(data)
        if bad.any():  # NaN runs are gaps, as offline
            first_bad = int(np.flatnonzero(bad)[0])
            emitted += self._push(channel, data[:first_bad])
            self.counters["gaps"] += 1
            emitted += self.flush([key])
            rest = np.flatnonzero(~bad[first_bad:])
            if rest.size:
                tail = packet.copy()
                tail.data = data[first_bad + int(rest[0]):]
                tail.stats.starttime = stats.starttime + (first_bad + int(rest[0])) / rate
                emitted += self._accept(tail)
                self.counters["packets"] -= 1
            return emitted
        return emitted + self._push(channel, data)

    def _filters(self, rate: float) -> tuple[np.ndarray, np.ndarray]:
        if rate not in self._sos_cache:
            from scipy.signal import iirfilter

            cfg = self.stalta.config
            nyquist = 0.5 * rate
            freqmax = min(cfg.freqmax, 0.45 * rate)
            self._sos_cache[rate] = iirfilter(4, [cfg.freqmin / nyquist, freqmax / nyquist],
                                              btype="band", ftype="butter", output="sos")
            ones = obspy.Trace(np.ones(int(200 * rate)), header={"sampling_rate": rate})
            ones.taper(0.01, max_length=1.0)
            self._taper_cache[rate] = ones.data[: int(1.0 * rate)].copy()
        return self._sos_cache[rate], self._taper_cache[rate]

    def _lengths(self, rate: float) -> tuple[int, int]:
        cfg = self.stalta.config
        n_sta = max(1, int(round(cfg.sta * rate)))
        n_lta = max(n_sta + 1, int(round(cfg.lta * rate)))
        return n_sta, n_lta

    def _push(self, channel: _StaLtaChannel, data: np.ndarray) -> list[EmittedPick]:
        from scipy.signal import lfilter, sosfilt

        if data.size == 0:
            return []
        sos, taper = self._filters(channel.sampling_rate)
        n_sta, n_lta = self._lengths(channel.sampling_rate)
        first = channel.next_index
        channel.next_index += data.size
        if channel.trigger is None:
            channel.warmup.extend(data.tolist())
            if len(channel.warmup) < n_lta + 1:
                return []
            raw = np.asarray(channel.warmup)
            channel.warmup = []
            first = 0
            channel.mean = float(raw[: n_lta + 1].mean())
            x = raw - channel.mean
            x[: taper.size] *= taper[: x.size]
            channel.sos_state = np.zeros((sos.shape[0], 2))
            filtered, channel.sos_state = sosfilt(sos, x, zi=channel.sos_state)
            pad = filtered[1 : n_lta + 1][::-1]
            cfg = self.stalta.config
            channel.trigger = _Trigger("P", cfg.trigger_on)
            channel.lta = np.finfo(0.0).tiny
            # Warm-up on the reversed start, as offline (its first sample is never used).
            self._stalta(channel, pad[1:] if pad.size else pad, lfilter, n_sta, n_lta)
        else:
            x = data - channel.mean
            if first < taper.size:
                x[: max(0, taper.size - first)] *= taper[first : first + x.size]
            filtered, channel.sos_state = sosfilt(sos, x, zi=channel.sos_state)
        cf = self._stalta(channel, filtered, lfilter, n_sta, n_lta)
        return self._trigger(channel, cf, first)

    @staticmethod
    def _stalta(channel: _StaLtaChannel, x: np.ndarray, lfilter, n_sta: int, n_lta: int) -> np.ndarray:
        if x.size == 0:
            return x
        sq = np.square(x)
        csta, clta = 1.0 / n_sta, 1.0 / n_lta
        sta, zs = lfilter([csta], [1.0, -(1 - csta)], sq, zi=[(1 - csta) * channel.sta])
        lta, zl = lfilter([clta], [1.0, -(1 - clta)], sq, zi=[(1 - clta) * channel.lta])
        channel.sta, channel.lta = float(sta[-1]), float(lta[-1])
        with np.errstate(divide="ignore", invalid="ignore"):
            return sta / lta

    def _trigger(self, channel: _StaLtaChannel, cf: np.ndarray, first: int) -> list[EmittedPick]:
        cfg = self.stalta.config
        trig = channel.trigger
        out = []
        for on, off, _, value in _advance_trigger(trig, cf, first, off_level=cfg.trigger_off):
            out += self._emit(channel, on, off, value)
        return out

    def _emit(self, channel: _StaLtaChannel, on: int, off: int, peak_ratio: float) -> list[EmittedPick]:
        cfg = self.stalta.config
        t_on = channel.start + on / channel.sampling_rate
        pick = sbu.Pick(
            trace_id=channel.trace_id.rsplit(".", 1)[0],
            start_time=t_on,
            end_time=channel.start + off / channel.sampling_rate,
            peak_time=t_on,
            peak_value=1.0 - cfg.trigger_on / max(peak_ratio, cfg.trigger_on),
            phase="P",
        )
        self.counters["picks"] += 1
        newest = channel.start + (channel.next_index - 1) / channel.sampling_rate
        return [EmittedPick(pick, self.picker_name, obspy.UTCDateTime(), newest)]

    def _end_record(self, channel: _StaLtaChannel) -> list[EmittedPick]:
        trig = channel.trigger
        if trig is None or trig.on is None:
            return []
        return self._emit(channel, trig.on, channel.next_index - 1, trig.peak_value)


def make_streaming_picker(picker, config: StreamingConfig | None = None,
                          note: Callable[[str], None] | None = None):
    """The streaming engine for any picker: STA/LTA or a model picker / window predictor."""
    from xiaonet.picking.stalta import StaLtaPicker

    if isinstance(picker, StaLtaPicker):
        return StreamingStaLta(picker, config, note)
    return StreamingPicker(picker, config, note)
