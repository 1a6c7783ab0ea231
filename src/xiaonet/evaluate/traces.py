"""What an evaluation scores: SeisBench-format labelled datasets (every row an ObsPy stream
with its analyst picks) and folders of continuous waveforms (scored against the teachers'
consensus), plus the training split files that say which records to leave out.

A labelled dataset is a folder with ``metadata.csv`` + ``waveforms.hdf5`` (SeisBench's
``WaveformDataset`` format). Each row becomes an ObsPy stream with the dataset's own sampling
rate, component order (read from the file's ``data_format``, reordered to Z, N, E), start
time (``trace_start_time`` when given, else 2000-01-01) and amplitudes exactly as stored, so
data in physical units (~1e-20 m/s) reaches the picker untouched.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import obspy

from xiaonet.data.records import DataError
from xiaonet.data.seisbench_folders import (PHASE_COLUMNS, metadata_value, open_seisbench_folder,
                                            parse_start_time, pick_sample)
from xiaonet.data.waveforms import NOT_WAVEFORM_SUFFIXES
from xiaonet.scoring.matching import ReferencePick

logger = logging.getLogger(__name__)

#: Start time given to rows without ``trace_start_time`` (only differences matter).
DEFAULT_START = obspy.UTCDateTime(2000, 1, 1)
#: A dataset whose median trace peak amplitude is below this is "in physical units".
PHYSICAL_UNITS_PEAK = 1e-3


# --- datasets ---------------------------------------------------------------------------------


@dataclass
class LabelledTrace:
    """One row of a labelled dataset, ready for a picker."""

    key: str  # "<dataset>/<row>", unique across datasets
    station: str  # NET.STA.LOC
    stream: obspy.Stream
    references: list[ReferencePick]  # trace_id == key
    category: str


class LabelledDataset:
    """A SeisBench-format folder (``metadata.csv`` + ``waveforms.hdf5``) as ObsPy streams.

    :param gain: multiply every waveform by this factor (1 = as stored). Use it to *declare*
        a stress test (``gain=1e-20`` imitates data in m/s); the dataset is then named
        ``<name>x<gain>`` in every table so it is never mistaken for the stored data.
    :param exclude: records to leave out, written ``<folder name>/<trace_name>`` as in a
        training run's ``split.csv`` (see :func:`training_records`): a student is never
        scored on what it was trained on.
    """

    def __init__(self, path: str | Path, gain: float = 1.0, name: str | None = None,
                 exclude: set[str] | None = None):
        self.path = Path(path)
        self._dataset = open_seisbench_folder(self.path, DataError)
        self.metadata = self._dataset.metadata
        if not any(column in self.metadata for column in PHASE_COLUMNS.values()):
            raise DataError(
                f"{self.path / 'metadata.csv'}: no analyst pick column; expected "
                f"{' and/or '.join(PHASE_COLUMNS.values())}"
            )
        self.gain = float(gain)
        base = name or self.path.name
        self.name = base if self.gain == 1.0 else f"{base}x{self.gain:g}"
        self.data_format = dict(self._dataset.data_format)
        self.notes: Counter = Counter()
        #: Row numbers (of metadata.csv) that are evaluated.
        self.rows = list(range(len(self.metadata)))
        if exclude:
            names = self.metadata.get("trace_name")
            if names is None:
                raise DataError(f"{self.path / 'metadata.csv'}: no trace_name column to match a split file")
            self.rows = [i for i in self.rows if f"{self.path.name}/{names.iloc[i]}" not in exclude]
            self.excluded = len(self.metadata) - len(self.rows)
            if self.excluded:
                self.notes["rows left out as training records of the split file"] = self.excluded
        else:
            self.excluded = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"LabelledDataset({self.name!r}, {len(self)} traces)"

    # metadata helpers
    _value = staticmethod(metadata_value)

    def sampling_rate(self, index: int) -> float:
        row = self.metadata.iloc[index]
        rate = self._value(row, "trace_sampling_rate_hz") or self.data_format.get("sampling_rate")
        if rate is None:
            raise DataError(
                f"{self.path}: row {index} has no trace_sampling_rate_hz and the file has no "
                "data_format/sampling_rate"
            )
        return float(rate)

    def start_time(self, index: int) -> obspy.UTCDateTime:
        text = self._value(self.metadata.iloc[index], "trace_start_time")
        if text is None:
            self.notes["no trace_start_time; rows start at 2000-01-01"] += 1
            return DEFAULT_START
        start = parse_start_time(text)
        if start is None:
            self.notes[f"unparsable trace_start_time such as {text!r}; rows start at 2000-01-01"] += 1
            return DEFAULT_START
        return start

    def station(self, index: int) -> tuple[str, str, str]:
        row = self.metadata.iloc[index]
        network = str(self._value(row, "station_network_code", "XX"))
        station = str(self._value(row, "station_code", f"R{index}"))
        location = str(self._value(row, "station_location_code", ""))
        return network, station, location

    def band_code(self, index: int) -> str:
        codes = str(self._value(self.metadata.iloc[index], "station_channel_code", "") or "")
        first = codes.split(",")[0].strip()
        return first[:2] if len(first) >= 2 else "HH"

    def waveforms(self, index: int) -> np.ndarray:
        """(3, samples) array in Z, N, E order, multiplied by ``gain``."""
        data = np.asarray(self._dataset.get_waveforms(index), dtype=np.float64)
        if data.ndim != 2 or data.shape[0] != 3:
            raise DataError(
                f"{self.path}: row {index} has waveforms of shape {data.shape}; expected "
                "(3 components, samples)"
            )
        return data * self.gain if self.gain != 1.0 else data

    def trace(self, index: int) -> LabelledTrace:
        row = self.metadata.iloc[index]
        rate = self.sampling_rate(index)
        start = self.start_time(index)
        network, station, location = self.station(index)
        band = self.band_code(index)
        data = self.waveforms(index)
        stream = obspy.Stream()
        for component, samples in zip("ZNE", data):
            stream.append(
                obspy.Trace(
                    data=samples.copy(),
                    header={
                        "network": network,
                        "station": station,
                        "location": location,
                        "channel": band + component,
                        "sampling_rate": rate,
                        "starttime": start,
                    },
                )
            )
        key = f"{self.name}/{index}"
        references = []
        for phase in PHASE_COLUMNS:
            try:
                sample = pick_sample(row, phase)
            except ValueError as error:
                raise DataError(f"{self.path / 'metadata.csv'}: row {index}: {error}") from None
            if sample is not None:
                references.append(ReferencePick(key, phase, float(start + float(sample) / rate)))
        category = str(self._value(row, "trace_category", "unknown"))
        return LabelledTrace(key, f"{network}.{station}.{location}", stream, references, category)

    def __iter__(self) -> Iterator[LabelledTrace]:
        for index in self.rows:
            yield self.trace(index)

    def amplitude_summary(self) -> dict[str, float]:
        """Median / min / max over rows of the per-row peak absolute amplitude (after gain)."""
        peaks = []
        for index in self.rows:
            try:
                peaks.append(float(np.abs(self.waveforms(index)).max()))
            except Exception:
                continue
        peaks = np.asarray(peaks) if peaks else np.asarray([np.nan])
        return {"median_peak": float(np.median(peaks)), "min_peak": float(np.min(peaks)),
                "max_peak": float(np.max(peaks))}

    def describe(self) -> dict:
        """What the dataset is: traces, picks, rates, units, amplitude range."""
        amplitudes = self.amplitude_summary()
        kept = self.metadata.iloc[self.rows]
        n_picks = {
            phase: int(kept[column].notna().sum()) if column in kept else 0
            for phase, column in PHASE_COLUMNS.items()
        }
        rates = sorted({self.sampling_rate(i) for i in self.rows})
        physical = amplitudes["median_peak"] < PHYSICAL_UNITS_PEAK
        return {
            "dataset": self.name,
            "path": str(self.path),
            "traces": len(self),
            "excluded_training_rows": self.excluded,
            "P_picks": n_picks["P"],
            "S_picks": n_picks["S"],
            "sampling_rate": ",".join(f"{r:g}" for r in rates),
            "unit": str(self.data_format.get("unit", "unknown")),
            "gain": self.gain,
            **amplitudes,
            "amplitudes": "physical units (tiny)" if physical else "counts-like",
        }


class ContinuousDataset:
    """A folder (or files) of continuous waveforms without analyst picks, for consensus scoring.

    One trace per station and file: the station's stream exactly as read (every picker
    cleans it itself). The reference is filled in by :func:`evaluate` from the teachers'
    consensus (:mod:`xiaonet.scoring.consensus`), so ``references`` start empty. With ``network`` only
    that network's stations are kept and the dataset is named ``<folder>:<network>``, which
    gives one table row per network.
    """

    reference = "consensus"

    def __init__(self, path: str | Path, network: str | None = None, name: str | None = None):
        from xiaonet.data.waveforms import WaveformInputError, expand_inputs

        self.path = Path(path)
        self.network = network
        base = name or self.path.name
        self.name = base if network is None else f"{base}:{network}"
        self.notes: Counter = Counter()
        try:
            files = [f for f in expand_inputs([str(self.path)])
                     if f.suffix.lower() not in NOT_WAVEFORM_SUFFIXES]
        except WaveformInputError as error:
            raise DataError(str(error)) from None
        if not files:
            raise DataError(f"{self.path}: no waveform files (expected miniSEED, SAC, ... files)")
        self.files = files
        self._streams: dict[str, obspy.Stream] = {}
        self.rows: list[str] = []
        self.failures: list[str] = []
        self._read()
        if not self.rows:
            raise DataError(f"{self.path}: no readable station streams"
                               + (f" of network {network}" if network else ""))

    def _read(self) -> None:
        from xiaonet.data.waveforms import WaveformInputError, group_by_station, read_waveform_file

        for file in self.files:
            try:
                stream = read_waveform_file(file, note=lambda m: self.notes.update([m.split(": ", 1)[-1]]))
            except WaveformInputError as error:
                self.failures.append(str(error))
                self.notes["unreadable file"] += 1
                continue
            for key, station_stream in group_by_station(stream).items():
                if self.network is not None and station_stream[0].stats.network != self.network:
                    continue
                row = f"{file.name}#{key}"
                self._streams[row] = station_stream
                self.rows.append(row)

    @staticmethod
    def networks_in(path: str | Path) -> list[str]:
        """Network codes of the waveform files under ``path`` (headers only)."""
        from xiaonet.data.waveforms import expand_inputs

        found = set()
        for file in expand_inputs([str(path)], unmatched=lambda message: None):
            if file.suffix.lower() in NOT_WAVEFORM_SUFFIXES:
                continue
            try:
                found |= {tr.stats.network for tr in obspy.read(str(file), headonly=True)}
            except Exception:
                continue
        return sorted(found)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"ContinuousDataset({self.name!r}, {len(self)} station streams)"

    def trace(self, row: str) -> LabelledTrace:
        stream = self._streams[row]
        first = stream[0].stats
        return LabelledTrace(f"{self.name}/{row}", f"{first.network}.{first.station}.{first.location}",
                             stream.copy(), [], "continuous")

    def __iter__(self) -> Iterator[LabelledTrace]:
        for row in self.rows:
            yield self.trace(row)

    def describe(self) -> dict:
        hours = sum(max(tr.stats.npts / tr.stats.sampling_rate for tr in st) for st in self._streams.values()) / 3600
        rates = sorted({tr.stats.sampling_rate for st in self._streams.values() for tr in st})
        return {
            "dataset": self.name,
            "path": str(self.path),
            "traces": len(self),
            "station_hours": round(hours, 2),
            "excluded_training_rows": 0,
            "P_picks": 0,  # filled in from the consensus by evaluate()
            "S_picks": 0,
            "sampling_rate": ",".join(f"{r:g}" for r in rates),
            "unit": "as stored; reference: teacher consensus",
            "gain": 1.0,
            "reference": "teacher consensus",
            "amplitudes": "not measured",
        }


def training_records(split_csv: str | Path, keep: tuple[str, ...] = ("dev", "test")) -> set[str]:
    """Records of a training run's ``split.csv`` whose split is not in ``keep`` (to exclude).

    The file has the columns ``split`` and ``record`` (``<folder>/<trace_name>``), as written
    by ``xiaonet train``; rows of a dataset the file does not mention are all kept. Kept by
    default: ``dev`` (held-out stations) and ``test`` (held-out networks); left out: what
    trained the student (``train``) and what chose its epoch and thresholds (``val``).
    """
    import csv

    path = Path(split_csv)
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if not {"split", "record"} <= set(reader.fieldnames or []):
                raise DataError(f"{path}: expected a split file with columns split and record, "
                                   f"got {reader.fieldnames}")
            return {row["record"] for row in reader if row["split"] not in keep}
    except FileNotFoundError:
        raise DataError(f"{path}: split file not found") from None
