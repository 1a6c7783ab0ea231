"""Cutting an archive into station x time chunks, and picking a chunk as the whole stream would.

A chunk is one instrument over one span of time (a day by default): the unit of work a Dask
worker does and the unit a resumed run skips. Each chunk *owns* a half-open span; the owned
spans of an instrument tile its time axis, so every pick belongs to exactly one chunk (the
one owning its time) and none is lost or counted twice at midnight.

Inside a chunk, data are read and picked in blocks (an hour by default), each read with a
``margin`` on both sides and keeping only the picks it owns: memory is bounded by a block,
never by the file or the chunk, and a pick near a block edge sees the same data around it as
in the whole stream. Gaps are honoured as in whole-trace picking (the picker never picks
across one: :meth:`xiaonet.picking.pickers.Picker.pick`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import obspy

from xiaonet.data.archive_sources import DAY, FileSpan, read_span

INF = float("inf")
#: Blocks picked at a time inside a chunk (seconds): a 200 Hz 3-component hour is 17 MB in float64.
DEFAULT_BLOCK = 3600.0
#: Seconds of data read on each side of a block, at least (see :func:`default_margin`).
MIN_MARGIN = 60.0


@dataclass(frozen=True)
class Chunk:
    """One instrument over one span: picks with ``owned[0] <= time < owned[1]`` are its own."""

    id: str  # NET.STA.LOC.CH_YYYY-MM-DDTHHMMSS: the instrument and its cell on the chunk grid
    key: str  # NET.STA.LOC.CH
    owned: tuple[float, float]  # may be infinite at an instrument's first / last chunk
    data: tuple[float, float]  # the part of ``owned`` its files may cover (finite)
    files: tuple[FileSpan, ...]  # the files it reads, margins included

    @property
    def station_days(self) -> float:
        return (self.data[1] - self.data[0]) / DAY


def parse_duration(text: str) -> float:
    """``1d``, ``6h``, ``30m``, ``90s`` or plain seconds, as seconds (> 0)."""
    units = {"d": DAY, "h": 3600.0, "m": 60.0, "s": 1.0}
    text = str(text).strip().lower()
    try:
        value = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"'{text}' is not a duration (e.g. 1d, 6h, 30m, 90s or seconds > 0)")
    return value


def default_margin(picker) -> float:
    """Data read on each side of a block: three of the picker's windows (two for the windows
    around a pick, one for a trigger that runs on), STA/LTA ten LTAs (its recursive average
    forgets exponentially with the LTA), and never under a minute (filters settle)."""
    model = getattr(picker, "model", None)
    meta = getattr(model, "metadata", None)
    if meta is not None:  # ONNX student (xiaonet.edge)
        return max(MIN_MARGIN, 3 * meta.in_samples / meta.sampling_rate)
    if model is not None and getattr(model, "in_samples", None) and getattr(model, "sampling_rate", None):
        return max(MIN_MARGIN, 3 * model.in_samples / model.sampling_rate)
    config = getattr(picker, "config", None)
    return max(MIN_MARGIN, 10 * float(getattr(config, "lta", 0.0)))


def _coverage(files: list[FileSpan]) -> list[list[float]]:
    spans = sorted([f.start, f.end] for f in files)
    merged: list[list[float]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def plan_chunks(files: dict[str, list[FileSpan]], chunk_seconds: float | None = DAY,
                start: float = -INF, end: float = INF) -> list[Chunk]:
    """Chunks of every instrument, in order (instrument, time).

    Each instrument's time axis is tiled by owned spans: cells of ``chunk_seconds`` on a grid
    from the epoch (so ``1d`` chunks are UTC days) over the time its files cover, split in the
    middle of a gap between files, open at the first and last chunk, clipped to
    ``[start, end)``. Cells shorter than a quarter chunk at the edges of covered time (the
    minutes an SDS day file may reach into the next day) join their neighbour.
    ``chunk_seconds=None``: one chunk per stretch of covered time (plain ``xiaonet pick``).
    """
    chunks: list[Chunk] = []
    for key, spans in files.items():
        coverage = _coverage(spans)
        names: dict[str, int] = {}
        spans = tuple(spans)  # one tuple shared by the instrument's chunks (see with_files)
        for i, (a, b) in enumerate(coverage):
            low = -INF if i == 0 else (coverage[i - 1][1] + a) / 2
            high = INF if i == len(coverage) - 1 else (b + coverage[i + 1][0]) / 2
            low, high = max(low, start), min(high, end)
            a, b = max(a, low), min(b, high)
            if a >= b:
                continue
            if chunk_seconds is None:
                cells = [[a, b]]
            else:
                first = math.floor(a / chunk_seconds) * chunk_seconds
                cells = [[t, t + chunk_seconds] for t in _grid(first, b, chunk_seconds)]
                cells[0][0], cells[-1][1] = a, b
                while len(cells) > 1 and cells[0][1] - cells[0][0] < chunk_seconds / 4:
                    cells[1][0] = cells[0][0]
                    del cells[0]
                while len(cells) > 1 and cells[-1][1] - cells[-1][0] < chunk_seconds / 4:
                    cells[-2][1] = cells[-1][1]
                    del cells[-1]
            for j, (c0, c1) in enumerate(cells):
                owned = (low if j == 0 else c0, high if j == len(cells) - 1 else c1)
                label = c0 if chunk_seconds is None else math.floor((c0 + c1) / 2 / chunk_seconds) * chunk_seconds
                name = f"{key}_{obspy.UTCDateTime(label).strftime('%Y-%m-%dT%H%M%S')}"
                n_same = names.get(name, 0)
                names[name] = n_same + 1
                chunks.append(Chunk(f"{name}-{n_same + 1}" if n_same else name, key, owned, (c0, c1), spans))
    return chunks


def _grid(first: float, end: float, step: float) -> Iterable[float]:
    t = first
    while t < end:
        yield t
        t += step


def with_files(chunk: Chunk, margin: float) -> Chunk:
    """The chunk holding only the files it reads (its data span and margins): what a task ships."""
    lo, hi = chunk.data[0] - margin, chunk.data[1] + margin
    files = tuple(f for f in chunk.files if f.end >= lo and f.start <= hi)
    return Chunk(chunk.id, chunk.key, chunk.owned, chunk.data, files)


def blocks(data: tuple[float, float], block_seconds: float) -> list[tuple[float, float]]:
    """``data`` cut into equal blocks of about ``block_seconds`` (one block up to 1.5 of them)."""
    length = data[1] - data[0]
    n = max(1, round(length / block_seconds))
    return [(data[0] + length * k / n, data[0] + length * (k + 1) / n) for k in range(n)]


def pick_chunk(picker, chunk: Chunk, margin: float, block_seconds: float = DEFAULT_BLOCK,
               note: Callable[[str], None] | None = None) -> list:
    """The picks ``chunk`` owns, sorted: every block read with ``margin`` on each side, picked
    whole-trace by ``picker`` (any picker with ``pick(stream, note)``), and cut to the span it
    owns. Raises :class:`xiaonet.data.archive_sources.ChunkReadError` for an unreadable file of the
    owned span."""
    note = note or (lambda message: None)
    pieces = blocks(chunk.data, block_seconds)
    picks = []
    for k, (b0, b1) in enumerate(pieces):
        own0 = chunk.owned[0] if k == 0 else b0
        own1 = chunk.owned[1] if k == len(pieces) - 1 else b1
        stream = read_span(chunk.files, chunk.key, b0 - margin, b1 + margin, (own0, own1), note)
        if not len(stream):
            continue
        for pick in picker.pick(stream, note=note):
            time = float(obspy.UTCDateTime(pick_time(pick)).timestamp)
            if own0 <= time < own1:
                picks.append(pick)
        del stream
    return sorted(picks)


def pick_time(pick):
    """A pick's time: its peak, or its start where a picker gives no peak."""
    return pick.peak_time if pick.peak_time is not None else pick.start_time
