"""Records: whole traces (a labelled dataset row, or one contiguous block of a continuous
file) as (3, n) float32 arrays in ZNE order at the model's sampling rate, with their analyst
picks, read from SeisBench datasets and continuous miniSEED; and a record back as an ObsPy
stream with its reference picks (analyst, or the teachers' consensus)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from xiaonet.data.streams import component_index

logger = logging.getLogger(__name__)

COMPONENTS = "ZNE"
#: Row of each component code, horizontals of unrotated sensors (1/2) mapped onto N and E.
COMPONENT_ALIASES = component_index(COMPONENTS)


class DataError(ValueError):
    """Data that cannot be used (a training source, a labelled dataset, a continuous folder, a
    split file); the message names the file or folder and says what was expected."""


@dataclass
class Record:
    """One whole trace at the model's sampling rate."""

    name: str  # unique: "<source>/<trace or file>[#block]"
    source: str  # source folder name
    station: str  # NET.STA
    waveform: np.ndarray  # (3, n) float32, ZNE
    start_time: float  # POSIX seconds of sample 0 (0 when unknown)
    p_samples: np.ndarray = field(default_factory=lambda: np.zeros(0))
    s_samples: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: Analyst labels are complete for this record (P and S, or a noise record).
    hard_labels: bool = False
    category: str = "continuous"
    #: Teacher P and S probabilities, (2, n) float16, or None.
    teacher: np.ndarray | None = None
    #: Each consensus teacher's own (2, n) curves (held-out continuous records only).
    teacher_members: dict[str, np.ndarray] = field(default_factory=dict)
    #: The teachers' consensus on this record's own time base, computed once (see
    #: :func:`xiaonet.scoring.references.record_references`): it is asked for after every epoch.
    consensus: object = None
    #: Network code (the part of ``station`` before the dot).
    @property
    def network(self) -> str:
        return self.station.split(".")[0]

    @property
    def n_samples(self) -> int:
        return int(self.waveform.shape[-1])

    def content_hash(self) -> str:
        digest = hashlib.sha1(self.name.encode())
        digest.update(str(self.waveform.shape).encode())
        digest.update(np.ascontiguousarray(self.waveform[:, :: max(1, self.n_samples // 4096)]).tobytes())
        return digest.hexdigest()[:16]


def resample(data: np.ndarray, rate: float, target: float) -> np.ndarray:
    """Resample along the last axis with a polyphase anti-aliasing filter."""
    if abs(rate - target) < 1e-6:
        return data
    from scipy.signal import resample_poly

    ratio = Fraction(target / rate).limit_denominator(1000)
    return resample_poly(data, ratio.numerator, ratio.denominator, axis=-1)


# --- labelled SeisBench datasets -------------------------------------------------------------


def load_labelled_records(path: Path, sampling_rate: float, note: Callable[[str], None],
                          hard_labels: bool = True) -> list[Record]:
    """Every trace of a SeisBench ``WaveformDataset`` folder as a :class:`Record`; with
    ``hard_labels`` (a source's setting) its analyst picks are training targets where they are
    complete (noise, or both P and S)."""
    from xiaonet.data.seisbench_folders import open_seisbench_folder, parse_start_time, pick_sample

    dataset = open_seisbench_folder(path, DataError)
    meta = dataset.metadata
    records = []
    for i in range(len(dataset)):
        row = meta.iloc[i]
        rate = float(row.get("trace_sampling_rate_hz", sampling_rate))
        waveform = resample(dataset.get_waveforms(i).astype(np.float64), rate, sampling_rate)
        waveform = np.nan_to_num(waveform).astype(np.float32)
        factor = sampling_rate / rate
        try:
            p, s = (pick_sample(row, phase) for phase in ("P", "S"))
        except ValueError as error:
            raise DataError(f"{path / 'metadata.csv'}: row {i}: {error}") from None
        p = np.zeros(0) if p is None else np.asarray([p * factor])
        s = np.zeros(0) if s is None else np.asarray([s * factor])
        category = str(row.get("trace_category", "earthquake"))
        is_noise = category == "noise"
        start = parse_start_time(row.get("trace_start_time"))
        station = f"{row.get('station_network_code', '')}.{row.get('station_code', '')}"
        records.append(
            Record(
                name=f"{path.name}/{row.get('trace_name', i)}",
                source=path.name,
                station=station,
                waveform=waveform,
                start_time=0.0 if start is None else float(start),
                p_samples=p,
                s_samples=s,
                hard_labels=hard_labels and (is_noise or (p.size > 0 and s.size > 0)),
                category="noise" if is_noise else "earthquake",
            )
        )
    return records


# --- continuous miniSEED ---------------------------------------------------------------------


def load_continuous_records(path: Path, sampling_rate: float, min_samples: int,
                            note: Callable[[str], None]) -> list[Record]:
    """Contiguous 3-component blocks of every waveform file under ``path`` (no picks)."""
    from xiaonet.data.waveforms import file_blocks, waveform_files

    files = waveform_files([path])
    if not files:
        raise DataError(f"{path}: no waveform files found (expected miniSEED files)")
    records = []
    for block in file_blocks(files, note):
        waveform = stream_to_array(block.stream, sampling_rate, block.start, block.end)
        if waveform is None or waveform.shape[-1] < min_samples:
            continue
        net, sta = block.key.split(".")[:2]
        records.append(
            Record(
                name=f"{path.name}/{block.path.name}#{block.key}#{block.index}",
                source=path.name,
                station=f"{net}.{sta}",
                waveform=waveform,
                start_time=float(block.start),
                category="continuous",
            )
        )
    return records


def stream_to_array(block, sampling_rate: float, start, end) -> np.ndarray | None:
    """One instrument's contiguous block ``[start, end]`` as a (3, n) float32 ZNE array at
    ``sampling_rate`` (missing components stay zero), or None without a Z/N/E/1/2 channel."""
    rate = block[0].stats.sampling_rate
    n = int(round((end - start) * rate)) + 1
    data = np.zeros((3, n), dtype=np.float64)
    found = False
    for trace in block:
        index = COMPONENT_ALIASES.get(trace.stats.channel[-1:].upper())
        if index is None:
            continue
        offset = int(round((trace.stats.starttime - start) * rate))
        values = np.asarray(trace.data, dtype=np.float64)[: max(0, n - offset)]
        data[index, offset: offset + values.size] = values
        found = True
    if not found:
        return None
    return resample(data, rate, sampling_rate).astype(np.float32)


# --- dev streams -----------------------------------------------------------------------------


def record_stream(record: Record, sampling_rate: float = 100.0, start_offset: float = 0.0):
    """An ObsPy stream of a record (all-zero components left out) for whole-trace picking."""
    import obspy

    net, _, sta = record.station.partition(".")
    start = obspy.UTCDateTime(record.start_time + start_offset)
    stream = obspy.Stream()
    for index, component in enumerate(COMPONENTS):
        data = record.waveform[index]
        if not np.any(data):
            continue
        stream.append(
            obspy.Trace(
                data=data.astype(np.float64),
                header={"network": net, "station": sta, "location": "", "channel": f"HH{component}",
                        "sampling_rate": sampling_rate, "starttime": start},
            )
        )
    return stream
