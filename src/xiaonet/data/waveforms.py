"""Reading waveform files and cleaning a station's traces before picking.

Everything a picker needs to be safe on real archives lives here: files ObsPy cannot read
are reported by name, overlaps are merged, gaps (including NaN runs) split traces so that no
picker sees data across them, and dead channels are dropped with a note saying why.
"""

from __future__ import annotations

import glob
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import obspy

#: Files beside waveforms in a data folder that are metadata or figures, never waveforms
#: (the one list every folder walk uses).
NOT_WAVEFORM_SUFFIXES = (".csv", ".md", ".txt", ".json", ".xml", ".tvel", ".html", ".py", ".png")

MIN_SAMPLING_RATE = 20.0
MAX_SAMPLING_RATE = 1000.0


class WaveformInputError(ValueError):
    """A waveform file or station cannot be used; the message names it and says why."""


@dataclass
class ReadFailure:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def expand_inputs(inputs: Iterable[str], unmatched: Callable[[str], None] | None = None) -> list[Path]:
    """Expand globs and folders (recursively) into a sorted list of files.

    An input that matches nothing (or an empty folder) is passed to ``unmatched`` (one line
    naming it) and the other inputs are still expanded; without ``unmatched`` an unmatched
    glob raises :class:`WaveformInputError`. Batch commands pass a callback, so one missing path never
    costs the rest of the batch.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                Path(root) / name
                for root, _, names in os.walk(path)
                for name in names
                if not name.startswith(".")
            )
            if not found and unmatched is not None:
                unmatched(f"{item}: folder holds no files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True))
            matches = [p for p in matches if p.is_file()]
            if not matches:
                message = f"{item}: no such file, folder or matching glob"
                if unmatched is None:
                    raise WaveformInputError(message)
                unmatched(message)
            files.extend(matches)
    seen: set[Path] = set()
    unique = []
    for f in files:
        if f not in seen:
            seen.add(f)
            unique.append(f)
    return unique


def read_waveform_file(
    path: str | Path, note: Callable[[str], None] | None = None,
    starttime: obspy.UTCDateTime | None = None, endtime: obspy.UTCDateTime | None = None,
    headonly: bool = False, format: str | None = None,
) -> obspy.Stream:
    """Read one file with ObsPy; raise :class:`WaveformInputError` naming the file.

    Warnings ObsPy raises while reading (a truncated last record, for instance: the part
    before it is still returned) are passed to ``note`` prefixed with the file name.
    ``starttime`` / ``endtime`` read only that span (miniSEED: only the records in it are
    decoded, so a long file's samples are never held whole); a span without samples is then
    an empty stream, not an error. ``headonly`` reads the headers only (what a plan of the file's time span needs);
    ``format`` (e.g. ``"MSEED"``) skips ObsPy's format detection, where a plan knows it already.
    """
    import warnings

    path = Path(path)
    if path.stat().st_size == 0:
        raise WaveformInputError(f"{path}: file is empty (expected miniSEED, SAC, GSE2, ...)")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stream = obspy.read(str(path), format=format, starttime=starttime, endtime=endtime,
                                headonly=headonly)
    except Exception as error:  # ObsPy raises many types for bad files
        raise WaveformInputError(
            f"{path}: not a waveform file ObsPy can read (miniSEED, SAC, GSE2, ...): "
            f"{type(error).__name__}: {error}"
        ) from None
    messages = [str(warning.message) for warning in caught]
    if stream and stream[0].stats.get("_format") == "MSEED":
        record_length = stream[0].stats.mseed.record_length
        size = path.stat().st_size
        if size % record_length:
            messages.append(
                f"file size {size} B is not a multiple of its {record_length} B miniSEED "
                f"record length: the last record is truncated and its "
                f"{size % record_length} B were not read"
            )
    if note is not None:
        for message in messages:
            note(f"{path}: {message}")
    stream.traces = [tr for tr in stream if tr.stats.npts > 0]
    if len(stream) == 0 and starttime is None and endtime is None:
        raise WaveformInputError(f"{path}: contains no samples")
    return stream


def station_key(trace: obspy.Trace) -> str:
    """NET.STA.LOC.CH - the instrument a trace belongs to (band + instrument code)."""
    s = trace.stats
    return f"{s.network}.{s.station}.{s.location}.{s.channel[:-1]}"


def group_by_station(stream: obspy.Stream) -> dict[str, obspy.Stream]:
    groups: dict[str, obspy.Stream] = defaultdict(obspy.Stream)
    for trace in stream:
        groups[station_key(trace)].append(trace)
    return dict(sorted(groups.items()))


def _split_at_nan(trace: obspy.Trace) -> list[obspy.Trace]:
    bad = ~np.isfinite(trace.data)
    if not bad.any():
        return [trace]
    masked = trace.copy()
    masked.data = np.ma.masked_array(np.where(bad, 0.0, trace.data), mask=bad)
    return [t for t in masked.split() if t.stats.npts > 0]


def prepare_station(
    stream: obspy.Stream, note: Callable[[str], None] | None = None, dtype=np.float64
) -> obspy.Stream:
    """Clean one instrument's traces for picking.

    * data to ``dtype``: float64 (int32 counts and float64 physical units alike), or float32
      for a runtime that casts every window to float32 anyway (the same float32 values as
      going through float64, in half the memory);
    * NaN / inf runs become gaps;
    * overlaps are merged (ObsPy ``merge``), then traces are split at gaps, so every trace
      in the result is contiguous;
    * all-zero (dead) channels are dropped, possibly clipped channels are noted;
    * sampling rates outside 20-1000 Hz are refused with a reason.

    Returns a possibly empty stream; each dropped or suspicious channel is passed to ``note``.
    """
    note = note or (lambda message: None)
    traces = []
    for trace in stream:
        rate = trace.stats.sampling_rate
        if not (MIN_SAMPLING_RATE <= rate <= MAX_SAMPLING_RATE):
            note(
                f"{trace.id}: sampling rate {rate:g} Hz is outside the supported "
                f"{MIN_SAMPLING_RATE:g}-{MAX_SAMPLING_RATE:g} Hz; channel skipped"
            )
            continue
        # one copy (never the caller's array); the sum is finite unless a sample is NaN / inf
        # (or the sum overflows, then the exact count decides)
        trace = obspy.Trace(data=np.array(trace.data, dtype=dtype), header=trace.stats.copy())
        if not np.isfinite(trace.data.sum()):
            n_bad = int((~np.isfinite(trace.data)).sum())
            if n_bad:
                note(f"{trace.id}: {n_bad} NaN/inf samples treated as a gap")
                traces.extend(_split_at_nan(trace))
                continue
        traces.append(trace)
    merged = obspy.Stream()
    by_id: dict[tuple[str, float], obspy.Stream] = defaultdict(obspy.Stream)
    for trace in traces:
        by_id[(trace.id, trace.stats.sampling_rate)].append(trace)
    for (trace_id, _), group in by_id.items():
        if len(group) == 1 and not np.ma.isMaskedArray(group[0].data):
            merged.append(group[0])  # contiguous already: nothing to merge or split
            continue
        try:
            group.merge(method=1, fill_value=None, interpolation_samples=0)
        except Exception as error:
            note(f"{trace_id}: overlapping records could not be merged ({error}); channel skipped")
            continue
        for piece in group.split():
            if piece.stats.npts > 0:
                merged.append(piece)
    result = obspy.Stream()
    for trace_id in sorted({tr.id for tr in merged}):
        pieces = merged.select(id=trace_id)
        extremes = [(float(p.data.max()), float(p.data.min())) for p in pieces]
        if all(high == low for high, low in extremes):
            note(f"{trace_id}: channel is constant (dead or all zero); channel skipped")
            continue
        for piece, (high, low) in zip(pieces, extremes):
            peak = max(high, -low)
            if peak > 0 and piece.stats.npts > 100:
                level = peak * (1 - 1e-9)
                at_peak = np.count_nonzero(piece.data >= level) + np.count_nonzero(piece.data <= -level)
                if at_peak > max(5, 0.001 * piece.stats.npts):
                    note(
                        f"{trace_id}: {at_peak} samples sit at the peak amplitude "
                        f"{peak:g} (clipped?); picks near them may be late or missing"
                    )
        result.extend(pieces)
    rates = {tr.stats.sampling_rate for tr in result}
    if len(rates) > 1:
        note(
            f"{station_key(result[0])}: channels with different sampling rates "
            f"{sorted(rates)}; each picker resamples to its own rate"
        )
    result.sort()
    return result


def contiguous_blocks(stream: obspy.Stream) -> list[tuple[obspy.UTCDateTime, obspy.UTCDateTime]]:
    """Time spans covered by at least one channel, separated wherever all channels have a gap."""
    spans = sorted((tr.stats.starttime, tr.stats.endtime, tr.stats.delta) for tr in stream)
    blocks: list[list] = []
    for start, end, delta in spans:
        if blocks and start <= blocks[-1][1] + 1.5 * delta:
            blocks[-1][1] = max(blocks[-1][1], end)
        else:
            blocks.append([start, end])
    return [(start, end) for start, end in blocks]


#: A picker's rate over a channel's rate above which upsampling leaves the model little of the
#: band it was trained on (20 Hz data for a 100 Hz model: nothing above 10 Hz).
LOW_RATE_FACTOR = 2.0


def pickable_blocks(stream: obspy.Stream, note: Callable[[str], None], min_seconds: float | None = None,
                    picker_name: str = "the picker", dtype=np.float64, component_order: str | None = None,
                    sampling_rate: float | None = None):
    """Yield ``(station key, block)``: every instrument cleaned and cut into contiguous blocks.

    The one way every picker (torch or edge) walks a stream, so that no pick is made across
    a gap. Nothing is left out silently: stations with no usable channel, stations with no
    channel of the picker's ``component_order`` (``1``/``2`` count as ``N``/``E``; e.g.
    EHU/EHV/EHW), and blocks shorter than ``min_seconds`` are passed to ``note`` instead,
    and so are channels sampled well below the picker's ``sampling_rate`` (picked, but
    expect fewer picks).
    """
    from xiaonet.data.streams import component_index

    components = component_index(component_order) if component_order else None
    for key, station_stream in group_by_station(stream).items():
        if components is not None and not any(tr.stats.channel[-1:] in components for tr in station_stream):
            channels = ", ".join(sorted({tr.stats.channel for tr in station_stream}))
            note(f"{key}: no channel with a component {picker_name} reads ({', '.join(components)}) "
                 f"among {channels}; station not picked (rename the channels if they are Z/N/E)")
            continue
        if components is not None:  # channels the picker never reads are not cleaned (STA/LTA: Z only)
            station_stream = obspy.Stream([tr for tr in station_stream if tr.stats.channel[-1:] in components])
        prepared = prepare_station(station_stream, note, dtype)
        if len(prepared) == 0:
            note(f"{key}: no usable channel left; station not picked")
            continue
        if sampling_rate:
            low = sorted({tr.stats.sampling_rate for tr in prepared
                          if tr.stats.sampling_rate * LOW_RATE_FACTOR <= sampling_rate})
            if low:
                note(f"{key}: sampled at {', '.join(f'{r:g}' for r in low)} Hz, upsampled to "
                     f"{sampling_rate:g} Hz for {picker_name}: nothing above {low[0] / 2:g} Hz reaches "
                     "the model, expect fewer and later picks")
        for start, end in contiguous_blocks(prepared):
            block = prepared.slice(start, end)
            if len(block) == 0:
                continue
            if min_seconds is not None and end - start < min_seconds:
                note(f"{key}: {end - start:.2f} s of data from {start} is shorter than the "
                     f"{min_seconds:.2f} s {picker_name} needs at least; not picked")
                continue
            yield key, block


@dataclass
class FileBlock:
    """One contiguous, cleaned block of one instrument in one file."""

    path: Path
    key: str  # NET.STA.LOC.CH (band + instrument code), as group_by_station
    index: int  # the block's position among the instrument's blocks in that file
    start: obspy.UTCDateTime
    end: obspy.UTCDateTime
    stream: obspy.Stream


def waveform_files(inputs: Iterable[str]) -> list[Path]:
    """The waveform files under ``inputs`` (files, folders, globs), metadata files left out."""
    return [f for f in expand_inputs([str(i) for i in inputs]) if f.suffix.lower() not in NOT_WAVEFORM_SUFFIXES]


def file_blocks(files: Iterable[Path], note: Callable[[str], None], sampling_rate: float | None = None,
                unreadable: Callable[[str], None] | None = None) -> Iterator[FileBlock]:
    """Every contiguous block of every instrument of every file, cleaned as ``xiaonet pick``
    cleans (:func:`prepare_station`), optionally resampled; an unreadable file is passed to
    ``unreadable`` (default: ``note``) and the walk goes on. The one files -> stations -> blocks walk of training data,
    benchmark data and int8 calibration data."""
    from xiaonet.data.streams import resample_stream

    for path in files:
        try:
            stream = read_waveform_file(path, note)
        except WaveformInputError as error:
            (unreadable or note)(str(error))
            continue
        for key, station_stream in group_by_station(stream).items():
            prepared = prepare_station(station_stream, note)
            if sampling_rate is not None:
                resample_stream(prepared, sampling_rate)
            for index, (start, end) in enumerate(contiguous_blocks(prepared)):
                yield FileBlock(path, key, index, start, end, prepared.slice(start, end))
