"""The data every benchmark row picks: blocks of 3-component samples from files (or synthetic
noise), saved once for the fresh processes, and calibration windows for int8 export."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

class BenchmarkError(RuntimeError):
    """The benchmark cannot run as asked; the message says what to change."""


# --- data -------------------------------------------------------------------------------------


@dataclass
class Block:
    """One instrument's contiguous record: (3, n) float32 in ZNE order at 100 Hz."""

    trace_id: str  # NET.STA.LOC
    channel_prefix: str  # band + instrument code, e.g. "HH"
    start: float  # POSIX seconds
    data: np.ndarray

    def to_stream(self):
        import obspy

        network, station, location = self.trace_id.split(".")
        return obspy.Stream([
            obspy.Trace(self.data[i].copy(), {
                "network": network, "station": station, "location": location,
                "channel": self.channel_prefix + component, "sampling_rate": 100.0,
                "starttime": obspy.UTCDateTime(self.start),
            })
            for i, component in enumerate("ZNE")
        ])


@dataclass
class BenchmarkData:
    blocks: list[Block]
    description: str
    synthetic: bool = False
    #: The waveform files the blocks came from, and whether the blocks hold all of them
    #: (no block skipped, at most a second cut at ``hours``): then ``xiaonet pick`` can be run on them as they are.
    files: list[str] = field(default_factory=list)
    whole_files: bool = False

    @property
    def station_hours(self) -> float:
        return sum(b.data.shape[-1] for b in self.blocks) / 100.0 / 3600.0

    def save(self, path: Path) -> Path:
        arrays = {f"data_{i}": b.data for i, b in enumerate(self.blocks)}
        meta = [{"trace_id": b.trace_id, "channel_prefix": b.channel_prefix, "start": b.start}
                for b in self.blocks]
        np.savez(path, meta=json.dumps(meta), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "BenchmarkData":
        with np.load(path) as saved:
            meta = json.loads(str(saved["meta"]))
            blocks = [Block(m["trace_id"], m["channel_prefix"], m["start"], saved[f"data_{i}"])
                      for i, m in enumerate(meta)]
        return cls(blocks, description=str(path))


def load_benchmark_data(paths: list[str], hours: float,
                        note: Callable[[str], None] = print) -> BenchmarkData:
    """Contiguous 3-component blocks from waveform files, up to ``hours`` station-hours.

    Data are cleaned like ``xiaonet pick`` does (:func:`xiaonet.data.waveforms.prepare_station`) and
    resampled to 100 Hz; blocks without all three components are skipped with a note.
    """
    from xiaonet.data.waveforms import WaveformInputError, file_blocks, waveform_files
    from xiaonet.edge.windowing import stream_to_grid_array

    budget = int(round(hours * 3600 * 100))
    blocks: list[Block] = []
    whole = True
    try:
        files = waveform_files(paths)
    except WaveformInputError as error:
        raise BenchmarkError(str(error)) from None
    for block in file_blocks(files, note, 100.0):
        if budget <= 0:
            whole = False
            break
        piece = block.stream
        components = {tr.stats.channel[-1] for tr in piece}
        if not ({"Z", "N", "E"} <= components or {"Z", "1", "2"} <= components):
            note(f"{block.key}: block from {block.start} lacks three components; skipped")
            whole = False
            continue
        converted = stream_to_grid_array(piece, "ZNE", 100.0)
        if converted is None:
            whole = False
            continue
        t0, data, trace_id = converted
        whole = whole and data.shape[-1] <= budget + 100  # a file of "1 h" often holds one sample more
        data = data[:, :budget].astype(np.float32)
        budget -= data.shape[-1]
        blocks.append(Block(trace_id, piece[0].stats.channel[:2], float(t0.timestamp), data))
    if not blocks:
        raise BenchmarkError(
            f"no 3-component data in {paths}: give miniSEED files or folders with --data "
            "(or --synthetic SECONDS for a smoke test)"
        )
    data = BenchmarkData(blocks, description=", ".join(str(p) for p in paths),
                         files=[str(f) for f in files], whole_files=whole)
    data.description += f" ({data.station_hours:.3f} station-hours in {len(blocks)} block(s))"
    return data


def synthetic_data(seconds: float, rng: np.random.Generator) -> BenchmarkData:
    """Seeded random-walk noise, 3 components at 100 Hz: for smoke tests, not for figures."""
    n = int(seconds * 100)
    data = (np.cumsum(rng.standard_normal((3, n)), axis=-1) * 0.1 + rng.standard_normal((3, n))) * 100
    block = Block("XX.SYNTH.", "HH", 1.7e9, data.astype(np.float32))
    return BenchmarkData([block], description=f"SYNTHETIC NOISE, {seconds:g} s (not real data)",
                         synthetic=True)


def calibration_from_blocks(blocks: list[Block], n_windows: int, rng: np.random.Generator,
                            window: int = 6001) -> np.ndarray:
    """Windows (n, 3, up to ``window``) in ZNE order cut at random offsets of the benchmark data."""
    longest = max(b.data.shape[-1] for b in blocks)
    length = min(window, longest)
    usable = [b for b in blocks if b.data.shape[-1] >= length]
    out = np.empty((max(1, n_windows), 3, length), dtype=np.float32)
    for i in range(out.shape[0]):
        block = usable[int(rng.integers(len(usable)))]
        offset = int(rng.integers(0, block.data.shape[-1] - length + 1))
        out[i] = block.data[:, offset : offset + length]
    return out
