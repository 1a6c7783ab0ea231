"""All sources of a config read and split: networks held out for validation and test, then
dev (and validation) stations of the training networks (:func:`load_data`)."""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from xiaonet.distill.config import SourceConfig, TrainConfig

logger = logging.getLogger(__name__)

from xiaonet.data.records import DataError, Record, load_continuous_records, load_labelled_records

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
    #: The last ``data.fit_fraction`` of the training networks' continuous records, never
    #: trained on: the fit figure (agreement with the teachers where the student learns).
    fit: list[Record] = field(default_factory=list)

    @property
    def splits(self) -> tuple[tuple[str, list[Record]], ...]:
        return (("train", self.train), ("val", self.val), ("dev", self.dev), ("test", self.test),
                ("fit", self.fit))

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
            records = load_labelled_records(path, rate, collect, source.hard_labels)
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
    train, fit = hold_out_last_part(train, config.data.fit_fraction, rate)
    # held-out records of any length are scored whole; training needs a whole window
    short = [r for r in train if r.n_samples < config.data.window_len]
    for name in sorted({r.source for r in short}):
        count = sum(r.source == name for r in short)
        collect(f"{name}: {count} record(s) shorter than the {config.data.window_len}-sample training window "
                "not trained on")
    train = [r for r in train if r.n_samples >= config.data.window_len]
    dev = [r for r in dev if source_of[r.source].kind == "labelled"]
    val = [r for r in val if source_of[r.source].kind == "labelled"] + held_out["validation"]
    return DataBundle(train, dev, source_of, dev_stations, notes, val, val_stations, held_out["test"], fit)


def hold_out_last_part(records: list[Record], fraction: float, sampling_rate: float) -> tuple[list[Record],
                                                                                            list[Record]]:
    """Continuous records cut in two: the first ``1 - fraction`` trains, the last ``fraction``
    (named ``<record>#fit``) is held out; other records are returned unchanged."""
    if fraction <= 0:
        return records, []
    train, fit = [], []
    for record in records:
        if record.category != "continuous":
            train.append(record)
            continue
        cut = int(round(record.n_samples * (1.0 - fraction)))
        train.append(replace(record, waveform=record.waveform[:, :cut]))
        fit.append(replace(record, name=f"{record.name}#fit", waveform=record.waveform[:, cut:],
                           start_time=record.start_time + cut / sampling_rate))
    return train, fit
