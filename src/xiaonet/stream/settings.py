"""Streaming settings, the picks the engine emits, and its counters."""

from __future__ import annotations

from dataclasses import dataclass

import obspy

from xiaonet.edge.picks import EdgePick


STREAMING_MODES = ("offline", "low-latency")
GAP_POLICIES = ("reset", "zero-fill")

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
    :param reorder_window: A hole in a channel (a packet overtaken by later ones) is waited
        for until the channel has sent this many seconds of newer data, so reordered packets
        are used, not dropped as late; a hole still open then is missing data. Costs latency
        only while a hole is open.
    :param max_ahead: A packet more than this many seconds after the station's processed
        data (a clock jump) flushes the station and restarts it at that packet.
    :param batch_size: Most windows per model call.
    :param confirm: Early-warning emission (low-latency mode): a pick is emitted as soon as
        its probability falls below ``confirm`` x its peak, instead of when the trigger
        closes; a higher maximum later in the same trigger makes no second pick (see
        :func:`xiaonet.edge.picks.advance_trigger`). None: emit when the trigger closes.
    :param padded_start: Low-latency mode: a record's first samples are decided like all
        others, each by a window ending ``lookahead`` after it, the time before the record
        filled with each channel's mean (:func:`xiaonet.edge.windowing.fill_record_start`; for
        early-warning students trained so); as after a filled gap, no pick starts within
        ``fill_guard`` of the fill. Otherwise the record's first whole window decides all of
        its samples up to ``lookahead`` before its end.
    """

    mode: str = "offline"
    hop: float = 0.5
    lookahead: float = 1.0
    window: float | None = None
    gap_policy: str = "reset"
    max_fill: float = 5.0
    fill_guard: float = 1.0
    channel_timeout: float = 30.0
    reorder_window: float = 30.0
    max_ahead: float = 600.0
    batch_size: int = 512
    confirm: float | None = None
    padded_start: bool = False

    def __post_init__(self):
        if self.mode not in STREAMING_MODES:
            raise ValueError(f"Unknown streaming mode '{self.mode}'. Known: {', '.join(STREAMING_MODES)}.")
        if self.gap_policy not in GAP_POLICIES:
            raise ValueError(f"Unknown gap policy '{self.gap_policy}'. Known: {', '.join(GAP_POLICIES)}.")
        if self.reorder_window < 0:
            raise ValueError(f"reorder_window must not be negative, got {self.reorder_window}")
        for name in ("hop", "channel_timeout", "max_ahead"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.lookahead < 0 or self.max_fill < 0 or self.fill_guard < 0:
            raise ValueError("lookahead, max_fill and fill_guard must not be negative")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.padded_start and self.mode != "low-latency":
            raise ValueError("padded_start needs mode='low-latency'")
        if self.confirm is not None:
            if self.mode != "low-latency":
                raise ValueError("confirm (early-warning emission) needs mode='low-latency'")
            if not 0 < self.confirm < 1:
                raise ValueError(f"confirm must be between 0 and 1, got {self.confirm}")


@dataclass
class EmittedPick:
    """A final pick and when the engine emitted it.

    ``emitted_at`` is the wall-clock time of emission; ``data_time`` is the time of the
    newest sample the station had delivered then (so ``data_time - pick.peak_time`` is the
    latency in data time, independent of replay speed).
    """

    pick: EdgePick
    picker: str
    emitted_at: obspy.UTCDateTime
    data_time: obspy.UTCDateTime

    def as_row(self) -> dict:
        """The pick-table row of :mod:`xiaonet.data.picktable`, plus when it was emitted; the
        quality fields as numbers (None when not measured), so a JSON line carries numbers
        and a CSV row the same figures as ``xiaonet pick`` writes."""
        from xiaonet.data.picktable import pick_rows, quality_numbers

        return {**pick_rows([self.pick], self.picker)[0], **quality_numbers(self.pick),
                "emitted_at": format_time(self.emitted_at)}


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
    "resampled_packets",
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


def early_warning_settings(picker) -> dict | None:
    """The streaming settings an early-warning student was trained for (``lookahead_s``,
    ``hop_s``, ``confirm``), from a torch picker or an exported ONNX model; None otherwise."""
    model = getattr(picker, "model", None)
    settings = (getattr(model, "early_warning", None)
                or getattr(getattr(picker, "metadata", None), "early_warning", None)  # an EdgeModel
                or getattr(getattr(model, "metadata", None), "early_warning", None))  # an EdgePicker
    return dict(settings) if settings else None


def early_warning_config(settings: dict, **options) -> StreamingConfig:
    """The :class:`StreamingConfig` of an early-warning student: a window every ``hop_s``,
    deciding the samples ``lookahead_s`` before its end, picks out at confirmation, a record's
    start padded if it was trained so."""
    return StreamingConfig(mode="low-latency", hop=settings["hop_s"], lookahead=settings["lookahead_s"],
                           confirm=settings["confirm"], padded_start=bool(settings.get("padded_start")),
                           **options)



def streaming_config_for(picker, label: str, mode: str | None = None, **options) -> StreamingConfig:
    """How ``picker`` streams: an early-warning student always with the hop, lookahead and
    confirmation it was trained for (``--mode early-warning``, the default for it); any other
    picker in ``mode`` (default offline) with ``options`` (``hop``, ``lookahead``, ``window``,
    ``confirm`` and the fault settings). A mode that does not fit the picker is a ValueError naming
    ``label``."""
    settings = early_warning_settings(picker)
    mode = mode or ("early-warning" if settings else "offline")
    if (mode == "early-warning") != bool(settings):
        raise ValueError(f"--mode {mode} needs an early-warning student (e.g. --picker xiaonet-ew)"
                         if settings is None else
                         f"{label} is an early-warning student: it streams in --mode early-warning only "
                         "(the hop and lookahead it was trained for)")
    if settings:
        faults = {k: v for k, v in options.items() if k not in ("hop", "lookahead", "window", "confirm")}
        return early_warning_config(settings, **faults)
    return StreamingConfig(mode=mode, **options)
