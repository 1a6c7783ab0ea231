"""Training data: whole records from SeisBench datasets and continuous miniSEED, the station
split, and random training windows cut from them.

A :class:`Record` is one whole trace (a labelled dataset row, or one contiguous block of a
continuous file) as a (3, n) float32 array in ZNE order at the model's sampling rate, with
its analyst pick samples. Teacher probabilities are attached to records by
:mod:`xiaonet.distill.teacher_labels`; :class:`WindowSampler` then cuts waveform and labels together
at random offsets (in ``phasenet_ncedc2019`` the P pick is always at sample 3000, so fixed
windows would teach the student a position, not a phase).
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from xiaonet.distill.config import SourceConfig, TrainConfig
from xiaonet.edge.streams import component_index
from xiaonet.data.waveforms import NOT_WAVEFORM_SUFFIXES  # noqa: F401  (re-exported for older imports)

logger = logging.getLogger(__name__)

COMPONENTS = "ZNE"
#: Row of each component code, horizontals of unrotated sensors (1/2) mapped onto N and E.
COMPONENT_ALIASES = component_index(COMPONENTS)


class DataError(ValueError):
    """A data folder cannot be used; the message names it and says what was expected."""


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


def load_labelled_records(path: Path, source: SourceConfig, sampling_rate: float,
                          note: Callable[[str], None]) -> list[Record]:
    """Every trace of a SeisBench ``WaveformDataset`` folder as a :class:`Record`."""
    import seisbench.data as sbd

    if not (path / "metadata.csv").is_file() or not (path / "waveforms.hdf5").is_file():
        raise DataError(
            f"{path}: not a SeisBench WaveformDataset folder (expected metadata.csv and "
            "waveforms.hdf5)"
        )
    dataset = sbd.WaveformDataset(path, component_order=COMPONENTS, cache=None)
    meta = dataset.metadata
    records = []
    for i in range(len(dataset)):
        row = meta.iloc[i]
        rate = float(row.get("trace_sampling_rate_hz", sampling_rate))
        waveform = resample(dataset.get_waveforms(i).astype(np.float64), rate, sampling_rate)
        waveform = np.nan_to_num(waveform).astype(np.float32)
        factor = sampling_rate / rate
        p = _pick_samples(row.get("trace_p_arrival_sample"), factor)
        s = _pick_samples(row.get("trace_s_arrival_sample"), factor)
        category = str(row.get("trace_category", "earthquake"))
        is_noise = category == "noise"
        start = row.get("trace_start_time")
        start_time = _parse_time(start)
        station = f"{row.get('station_network_code', '')}.{row.get('station_code', '')}"
        records.append(
            Record(
                name=f"{path.name}/{row.get('trace_name', i)}",
                source=path.name,
                station=station,
                waveform=waveform,
                start_time=start_time,
                p_samples=p,
                s_samples=s,
                hard_labels=source.hard_labels and (is_noise or (p.size > 0 and s.size > 0)),
                category="noise" if is_noise else "earthquake",
            )
        )
    return records


def _pick_samples(value, factor: float) -> np.ndarray:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return np.zeros(0)
    if not np.isfinite(value):
        return np.zeros(0)
    return np.asarray([value * factor])


def _parse_time(value) -> float:
    import obspy

    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return 0.0
    try:
        return float(obspy.UTCDateTime(str(value)))
    except Exception:
        try:
            import datetime

            parsed = datetime.datetime.strptime(str(value), "%d/%m/%Y %H:%M")
            return float(obspy.UTCDateTime(parsed))
        except Exception:
            return 0.0


# --- continuous miniSEED ---------------------------------------------------------------------


def load_continuous_records(path: Path, sampling_rate: float, min_samples: int,
                            note: Callable[[str], None]) -> list[Record]:
    """Contiguous 3-component blocks of every waveform file under ``path`` (no picks)."""
    from xiaonet.data.waveforms import (WaveformInputError, contiguous_blocks, expand_inputs,
                                   group_by_station, prepare_station, read_waveform_file)

    files = [f for f in expand_inputs([str(path)]) if f.suffix.lower() not in NOT_WAVEFORM_SUFFIXES]
    if not files:
        raise DataError(f"{path}: no waveform files found (expected miniSEED files)")
    records = []
    for file in files:
        try:
            stream = read_waveform_file(file, note)
        except WaveformInputError as error:
            note(str(error))
            continue
        for key, station_stream in group_by_station(stream).items():
            prepared = prepare_station(station_stream, note)
            for block_index, (start, end) in enumerate(contiguous_blocks(prepared)):
                block = prepared.slice(start, end)
                waveform = _stream_to_array(block, sampling_rate, start, end)
                if waveform is None or waveform.shape[-1] < min_samples:
                    continue
                net, sta = key.split(".")[:2]
                records.append(
                    Record(
                        name=f"{path.name}/{file.name}#{key}#{block_index}",
                        source=path.name,
                        station=f"{net}.{sta}",
                        waveform=waveform,
                        start_time=float(start),
                        category="continuous",
                    )
                )
    return records


def _stream_to_array(block, sampling_rate: float, start, end) -> np.ndarray | None:
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


# --- loading all sources and the station split -----------------------------------------------


@dataclass
class DataBundle:
    """All records of a config: held-out networks, and a station split of the others.

    ``test`` holds the records of test networks (``role: test``, never trained on, never used
    to choose anything): the first table of the model card. ``val`` holds validation networks
    (``role: validation``) and any validation stations of training networks; it chooses the
    epoch and the thresholds. ``dev`` holds held-out stations of training networks (the
    secondary, in-network column). Continuous records in ``val`` and ``test`` are scored
    against the teachers' consensus; ``dev`` holds labelled records only.
    """

    train: list[Record]
    dev: list[Record]
    source_of: dict[str, SourceConfig]
    dev_stations: set[str]
    notes: list[str]
    val: list[Record] = field(default_factory=list)
    val_stations: set[str] = field(default_factory=set)
    #: Records of held-out test networks (``role: test``): only reported, never chosen on.
    test: list[Record] = field(default_factory=list)

    @property
    def splits(self) -> tuple[tuple[str, list[Record]], ...]:
        return (("train", self.train), ("val", self.val), ("dev", self.dev), ("test", self.test))

    @property
    def selection(self) -> tuple[str, list[Record]]:
        """The split that chooses epoch and thresholds: validation, else dev (old configs)."""
        return ("val", self.val) if self.val else ("dev", self.dev)

    def manifest(self) -> dict:
        """Files, traces, station-hours and split, for the run folder."""
        rows = {}
        for split, records in self.splits:
            for record in records:
                entry = rows.setdefault(
                    record.source,
                    {"kind": self.source_of[record.source].kind, "teacher_labelled_records": 0,
                     **{f"{name}_{key}": set() if key == "stations" else 0
                        for name, _ in self.splits for key in ("records", "station_hours", "stations")}},
                )
                entry[f"{split}_records"] += 1
                entry[f"{split}_station_hours"] += record.n_samples / 100.0 / 3600.0
                entry[f"{split}_stations"].add(record.station)
                entry["teacher_labelled_records"] += record.teacher is not None
        for entry in rows.values():
            for split, _ in self.splits:
                entry[f"{split}_stations"] = len(entry[f"{split}_stations"])
                entry[f"{split}_station_hours"] = round(entry[f"{split}_station_hours"], 3)
        return {"sources": rows, "dev_stations": sorted(self.dev_stations),
                "val_stations": sorted(self.val_stations), "notes": self.notes}

    def write_split(self, path: Path) -> None:
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["split", "source", "station", "record", "samples", "p_picks", "s_picks"])
            for split, records in self.splits:
                for r in records:
                    writer.writerow([split, r.source, r.station, r.name, r.n_samples, r.p_samples.size,
                                     r.s_samples.size])


def choose_held_out_stations(stations: list[str], fraction: float, seed: int, source: str) -> set[str]:
    """A fixed, seeded choice of ``fraction`` of the stations (at least one when fraction > 0)."""
    unique = sorted(set(stations))
    if fraction <= 0 or not unique:
        return set()
    key = int(hashlib.sha1(source.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng([seed, key])
    count = max(1, int(round(fraction * len(unique))))
    return set(rng.choice(unique, size=count, replace=False).tolist())


def load_data(config: TrainConfig, note: Callable[[str], None] | None = None) -> DataBundle:
    """Read every source of the config and split it by station (dev and val stations never train).

    Dev stations are drawn first, so adding a validation split leaves the dev split unchanged.
    """
    notes: list[str] = []

    def collect(message: str) -> None:
        notes.append(message)
        (note or logger.debug)(message)

    rate = config.data.sampling_rate
    by_source: dict[str, list[Record]] = {}
    source_of: dict[str, SourceConfig] = {}
    for source in config.data.sources:
        path = config.source_path(source)
        if not path.is_dir():
            raise DataError(
                f"{path}: data folder not found (data.sources path '{source.path}', shared dir "
                f"{config.shared_path()}; set data.shared_dir or XIAONET_SHARED)"
            )
        if source.kind == "labelled":
            records = load_labelled_records(path, source, rate, collect)
        else:
            records = load_continuous_records(path, rate, config.data.window_len, collect)
        by_source[path.name] = records
        source_of[path.name] = source
    held_out: dict[str, list[Record]] = {"validation": [], "test": []}
    for name, source in source_of.items():
        kept = []
        for record in by_source[name]:
            role = config.data.networks.get(record.network, source.role)
            (kept if role == "train" else held_out[role]).append(record)
        by_source[name] = kept
    dev_stations: set[str] = set()
    for name, source in source_of.items():
        dev_stations |= choose_held_out_stations([r.station for r in by_source[name]], source.dev_fraction,
                                            config.seed, name)
    val_stations: set[str] = set()
    for name, source in source_of.items():
        candidates = [r.station for r in by_source[name] if r.station not in dev_stations]
        fraction = source.val_fraction / (1 - source.dev_fraction)  # of the whole source, like dev_fraction
        val_stations |= choose_held_out_stations(candidates, fraction, config.seed, name + "/val")
    val_stations -= dev_stations
    train, val, dev = [], [], []
    for name, records in by_source.items():
        for record in records:
            if record.station in dev_stations:
                dev.append(record)
            elif record.station in val_stations:
                val.append(record)
            else:
                train.append(record)
    # held-out records of any length are scored whole; training needs a whole window
    short = [r for r in train if r.n_samples < config.data.window_len]
    for name in sorted({r.source for r in short}):
        count = sum(r.source == name for r in short)
        collect(f"{name}: {count} record(s) shorter than the {config.data.window_len}-sample training window "
                "not trained on")
    train = [r for r in train if r.n_samples >= config.data.window_len]
    dev = [r for r in dev if source_of[r.source].kind == "labelled"]
    val = [r for r in val if source_of[r.source].kind == "labelled"] + held_out["validation"]
    return DataBundle(train, dev, source_of, dev_stations, notes, val, val_stations, held_out["test"])


# --- labels and windows ----------------------------------------------------------------------


def hard_label_curve(n: int, picks: np.ndarray, shape: str, width: float) -> np.ndarray:
    """Label curve of length ``n`` peaking at 1 on each pick (sample positions)."""
    t = np.arange(n, dtype=np.float32)
    out = np.zeros(n, dtype=np.float32)
    for pick in picks:
        d = t - float(pick)
        if shape == "gaussian":
            curve = np.exp(-0.5 * (d / width) ** 2)
        elif shape == "triangle":
            curve = np.clip(1.0 - np.abs(d) / (2 * width), 0.0, None)
        else:
            curve = (np.abs(d) <= width).astype(np.float32)
        out = np.maximum(out, curve)
    return out


def phase_targets(p: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(3, n) P / S / noise target with noise = 1 - P - S, renormalised where P + S > 1."""
    total = p + s
    scale = np.where(total > 1.0, 1.0 / np.maximum(total, 1e-12), 1.0)
    p, s = p * scale, s * scale
    return np.stack([p, s, np.clip(1.0 - p - s, 0.0, None)]).astype(np.float32)


def is_flat(waveform: np.ndarray, relative: float = 1e-6) -> bool:
    """True when no component varies by more than ``relative`` x its level (constant data)."""
    spread = np.ptp(waveform, axis=-1)
    level = np.abs(waveform).max(axis=-1)
    return bool(np.all(spread <= relative * np.maximum(level, 1e-30)))


@dataclass
class Window:
    """A training window and its targets; ``soft`` / ``hard`` are (3, n) P/S/noise or None."""

    waveform: np.ndarray
    soft: np.ndarray | None
    hard: np.ndarray | None


class WindowSampler:
    """Cuts training windows at random offsets from records, by source weight.

    :param records: training records (those with neither teacher nor hard labels are skipped).
    :param weights: source name -> weight.
    """

    def __init__(self, records: list[Record], weights: dict[str, float], window_len: int,
                 label_shape: str = "gaussian", label_width: float = 15.0,
                 quiet_threshold: float = 0.05):
        self.window_len = window_len
        self.label_shape = label_shape
        self.label_width = label_width
        usable = [r for r in records if (r.teacher is not None or r.hard_labels)
                  and r.n_samples >= window_len]
        self.by_source: dict[str, list[Record]] = {}
        for record in usable:
            self.by_source.setdefault(record.source, []).append(record)
        self.sources = sorted(s for s in self.by_source if weights.get(s, 0) > 0)
        if not self.sources:
            raise DataError("no training records with teacher or analyst labels in any weighted source")
        w = np.asarray([weights[s] for s in self.sources], dtype=np.float64)
        self.source_p = w / w.sum()
        # Within a source, long records are drawn in proportion to the windows they hold.
        self.record_p = {}
        for source, recs in self.by_source.items():
            lengths = np.asarray([r.n_samples - window_len + 1 for r in recs], dtype=np.float64)
            self.record_p[source] = lengths / lengths.sum()
        self.events = [r for r in usable if r.p_samples.size and r.category != "noise"]
        self.noise_windows = self._find_quiet_windows(records, quiet_threshold)

    def _find_quiet_windows(self, records: list[Record], threshold: float) -> list[tuple[Record, int]]:
        """(record, offset) of windows with no analyst pick and a quiet teacher."""
        found = []
        n = self.window_len
        for record in records:
            if record.category == "noise":
                found += [(record, o) for o in range(0, record.n_samples - n + 1, n // 2)]
                continue
            if record.teacher is None:
                continue
            peak = record.teacher.max(axis=0).astype(np.float32)
            picks = np.concatenate([record.p_samples, record.s_samples])
            for offset in range(0, record.n_samples - n + 1, n // 2):
                if np.any((picks >= offset - 200) & (picks < offset + n + 200)):
                    continue
                if peak[offset: offset + n].max() < threshold:
                    found.append((record, offset))
        return found

    def cut(self, record: Record, offset: int) -> Window:
        n = self.window_len
        waveform = record.waveform[:, offset: offset + n].astype(np.float32, copy=True)
        soft = None
        if record.teacher is not None:
            t = record.teacher[:, offset: offset + n].astype(np.float32)
            soft = phase_targets(t[0], t[1])
        hard = None
        if record.hard_labels:
            p = hard_label_curve(n, record.p_samples - offset, self.label_shape, self.label_width)
            s = hard_label_curve(n, record.s_samples - offset, self.label_shape, self.label_width)
            hard = phase_targets(p, s)
        return Window(waveform, soft, hard)

    def draw(self, rng: np.random.Generator, max_tries: int = 20) -> Window:
        """A random window; flat windows (every component constant: dead or clipped stretches,
        which carry no phase and normalise to all zeros) are redrawn."""
        for _ in range(max_tries):
            source = self.sources[rng.choice(len(self.sources), p=self.source_p)]
            recs = self.by_source[source]
            record = recs[rng.choice(len(recs), p=self.record_p[source])]
            offset = int(rng.integers(0, record.n_samples - self.window_len + 1))
            window = self.cut(record, offset)
            if not is_flat(window.waveform):
                return window
        raise DataError("could not draw a non-flat training window in 20 tries: is the data all constant?")

    def draw_event(self, rng: np.random.Generator) -> Window | None:
        if not self.events:
            return None
        record = self.events[int(rng.integers(len(self.events)))]
        p = float(record.p_samples[0])
        lo = int(max(0, p - self.window_len + 100))
        hi = int(min(record.n_samples - self.window_len, p - 100))
        offset = int(rng.integers(lo, hi + 1)) if hi >= lo else int(rng.integers(0, record.n_samples - self.window_len + 1))
        return self.cut(record, offset)

    def draw_noise(self, rng: np.random.Generator) -> np.ndarray | None:
        if not self.noise_windows:
            return None
        record, offset = self.noise_windows[int(rng.integers(len(self.noise_windows)))]
        return record.waveform[:, offset: offset + self.window_len].astype(np.float32, copy=True)


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


def record_reference_picks(record: Record, sampling_rate: float = 100.0, start_offset: float = 0.0):
    """Analyst picks of a record as :class:`xiaonet.evaluate.scoring.ReferencePick`."""
    from xiaonet.evaluate.scoring import ReferencePick

    trace_id = f"{record.station}."
    start = record.start_time + start_offset
    refs = [ReferencePick(trace_id, "P", start + p / sampling_rate) for p in record.p_samples]
    refs += [ReferencePick(trace_id, "S", start + s / sampling_rate) for s in record.s_samples]
    return refs


def record_references(record: Record, sampling_rate: float = 100.0, start_offset: float = 0.0):
    """The reference of a record as a :class:`xiaonet.evaluate.consensus.ConsensusReference`.

    Labelled records: their analyst picks (nothing ignored). Continuous records: the picks
    every consensus teacher agrees on, with the picks of a single teacher ignored; a
    continuous record without both teachers' curves has no reference (an error to score).
    """
    from xiaonet.evaluate.consensus import CONSENSUS_TEACHERS, ConsensusReference, consensus_reference, \
        picks_from_probabilities

    if record.category != "continuous":
        return ConsensusReference(record_reference_picks(record, sampling_rate, start_offset), [])
    curves = {name: value for name, value in record.teacher_members.items()
              if name.split("_")[0] in CONSENSUS_TEACHERS}
    if len({name.split("_")[0] for name in curves}) < len(CONSENSUS_TEACHERS):
        raise DataError(f"{record.name}: continuous record without the curves of every consensus teacher "
                        f"({', '.join(CONSENSUS_TEACHERS)}); cannot score it")
    trace_id = f"{record.station}."
    start = record.start_time + start_offset
    picks = {name: picks_from_probabilities(value.astype(np.float32), trace_id, start, sampling_rate)
             for name, value in curves.items()}
    return consensus_reference(picks)
