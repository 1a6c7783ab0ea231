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
   ends (SeisBench's ``_cut_fragments_array``), or, for a model with the ``absolute`` window
   grid (the students), on that grid after one window at the record start; window predictions are averaged where they
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

from typing import Callable

# One concept per module; this module keeps the names the engine was always imported by.
from xiaonet.stream.config import (COUNTER_NAMES, GAP_POLICIES, STREAMING_MODES, EmittedPick,  # noqa: F401
                                   StreamingConfig, format_time)
from xiaonet.stream.engine import StreamingPicker  # noqa: F401
from xiaonet.stream.predictors import (ArrayWindowPredictor, TorchWindowPredictor, WindowPredictor,  # noqa: F401
                                       predictor_from_edge_model, predictor_from_model_picker)
from xiaonet.stream.stalta import StreamingStaLta  # noqa: F401
from xiaonet.stream.windows import (STACKING_METHODS, overlap_in_samples, stack_windows_average,  # noqa: F401
                                    window_offsets)


def make_streaming_picker(picker, config: StreamingConfig | None = None,
                          note: Callable[[str], None] | None = None):
    """The streaming engine for any picker: STA/LTA or a model picker / window predictor."""
    from xiaonet.picking.stalta import StaLtaPicker

    if isinstance(picker, StaLtaPicker):
        return StreamingStaLta(picker, config, note)
    return StreamingPicker(picker, config, note)
