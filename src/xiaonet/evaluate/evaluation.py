"""Whole-trace evaluation of any picker over SeisBench-format labelled datasets.

A labelled dataset is a folder with ``metadata.csv`` + ``waveforms.hdf5`` (SeisBench's
``WaveformDataset`` format). Each row becomes an ObsPy stream with the dataset's own sampling
rate, component order (read from the file's ``data_format``, reordered to Z, N, E), start
time (``trace_start_time`` when given, else 2000-01-01) and amplitudes exactly as stored, so
data in physical units (~1e-20 m/s) reaches the picker untouched. The analyst picks
(``trace_p_arrival_sample`` / ``trace_s_arrival_sample``) become
:class:`xiaonet.evaluate.scoring.ReferencePick` objects.

Every picker runs through :meth:`xiaonet.picking.pickers.Picker.pick` on the full trace and is
scored by :func:`xiaonet.evaluate.scoring.score_picks`. Because several rows can share a station,
picks and analyst picks are keyed by the row (``dataset/row``), never by station alone.

>>> from xiaonet.evaluate.evaluation import parse_picker_spec
>>> parse_picker_spec("xiaonet-s@window=1001").window_len
1001
"""

from __future__ import annotations

import copy
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import obspy
import seisbench.util as sbu

from xiaonet.data.waveforms import NOT_WAVEFORM_SUFFIXES
from xiaonet.evaluate.consensus import CONSENSUS_TEACHERS
from xiaonet.evaluate.scoring import (
    ReferencePick,
    SweepPoint,
    best_f1_threshold,
    score_picks,
    sweep_thresholds,
)

logger = logging.getLogger(__name__)

PHASES = ("P", "S")

PHASE_COLUMNS = {"P": "trace_p_arrival_sample", "S": "trace_s_arrival_sample"}
#: Start time given to rows without ``trace_start_time`` (only differences matter).
DEFAULT_START = obspy.UTCDateTime(2000, 1, 1)
#: A dataset whose median trace peak amplitude is below this is "in physical units".
PHYSICAL_UNITS_PEAK = 1e-3
DEFAULT_THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))



class DatasetError(ValueError):
    """A labelled dataset cannot be read; the message names the folder and what is expected."""


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
        import warnings

        import seisbench.data as sbd

        self.path = Path(path)
        for required in ("metadata.csv", "waveforms.hdf5"):
            if not (self.path / required).is_file():
                raise DatasetError(
                    f"{self.path}: not a SeisBench-format dataset, {required} is missing "
                    "(expected a folder with metadata.csv + waveforms.hdf5)"
                )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._dataset = sbd.WaveformDataset(
                    self.path, component_order="ZNE", sampling_rate=None, cache=None
                )
        except Exception as error:
            raise DatasetError(
                f"{self.path}: SeisBench cannot open it as a WaveformDataset: "
                f"{type(error).__name__}: {error}"
            ) from None
        self.metadata = self._dataset.metadata
        if not any(column in self.metadata for column in PHASE_COLUMNS.values()):
            raise DatasetError(
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
                raise DatasetError(f"{self.path / 'metadata.csv'}: no trace_name column to match a split file")
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
    def _value(self, row, column, default=None):
        value = row.get(column, default)
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return default
        return value

    def sampling_rate(self, index: int) -> float:
        row = self.metadata.iloc[index]
        rate = self._value(row, "trace_sampling_rate_hz") or self.data_format.get("sampling_rate")
        if rate is None:
            raise DatasetError(
                f"{self.path}: row {index} has no trace_sampling_rate_hz and the file has no "
                "data_format/sampling_rate"
            )
        return float(rate)

    def start_time(self, index: int) -> obspy.UTCDateTime:
        text = self._value(self.metadata.iloc[index], "trace_start_time")
        if text is None:
            self.notes["no trace_start_time; rows start at 2000-01-01"] += 1
            return DEFAULT_START
        try:
            return obspy.UTCDateTime(str(text))
        except Exception:
            pass
        try:  # e.g. "27/10/2016 19:12" (day first)
            import pandas as pd

            return obspy.UTCDateTime(pd.to_datetime(str(text), dayfirst=True).isoformat())
        except Exception:
            self.notes[f"unparsable trace_start_time such as {text!r}; rows start at 2000-01-01"] += 1
            return DEFAULT_START

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
            raise DatasetError(
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
        for phase, column in PHASE_COLUMNS.items():
            sample = self._value(row, column)
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
    consensus (:mod:`xiaonet.evaluate.consensus`), so ``references`` start empty. With ``network`` only
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
            raise DatasetError(str(error)) from None
        if not files:
            raise DatasetError(f"{self.path}: no waveform files (expected miniSEED, SAC, ... files)")
        self.files = files
        self._streams: dict[str, obspy.Stream] = {}
        self.rows: list[str] = []
        self.failures: list[str] = []
        self._read()
        if not self.rows:
            raise DatasetError(f"{self.path}: no readable station streams"
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
        for file in expand_inputs([str(path)]):
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
                raise DatasetError(f"{path}: expected a split file with columns split and record, "
                                   f"got {reader.fieldnames}")
            return {row["record"] for row in reader if row["split"] not in keep}
    except FileNotFoundError:
        raise DatasetError(f"{path}: split file not found") from None


# --- pickers ----------------------------------------------------------------------------------


@dataclass
class PickerSpec:
    """A picker to evaluate: ``spec`` as :func:`xiaonet.picking.loading.load_picker` reads it.

    ``"xiaonet"`` means the default student preset. ``window_len`` (samples) changes a
    student's prediction window (fully convolutional, so any length works); written
    ``xiaonet-s@window=1001`` on the command line.
    """

    spec: str
    label: str | None = None
    window_len: int | None = None
    thresholds: dict[str, float] | None = None

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        base = Path(self.spec).name if "/" in self.spec else self.spec  # weights path: its stem
        return base if self.window_len is None else f"{base}@window={self.window_len}"


def parse_picker_spec(text: str) -> PickerSpec:
    """``NAME[:WEIGHTS][@window=SAMPLES]`` into a :class:`PickerSpec`."""
    spec, _, options = text.strip().partition("@")
    window_len = None
    if options:
        key, sep, value = options.partition("=")
        if key != "window" or not sep or not value.isdigit():
            raise ValueError(
                f"Picker option '@{options}' in '{text}' is not understood; the only option is "
                "@window=SAMPLES (a student's prediction window, e.g. xiaonet-s@window=1001)"
            )
        window_len = int(value)
    return PickerSpec(spec, window_len=window_len)


def build_picker(spec: PickerSpec):
    """Load the picker of a spec (raises ValueError / FileNotFoundError / RuntimeError)."""
    from xiaonet.picking.pickers import ModelPicker
    from xiaonet.picking.loading import load_picker
    from xiaonet.models.presets import DEFAULT_PRESET

    name = DEFAULT_PRESET if spec.spec.lower() == "xiaonet" else spec.spec
    if "/" in name and not Path(name).exists() and not Path(name).with_suffix(".json").exists():
        raise FileNotFoundError(f"no XiaoNet weights at {name} (expected {name}.json + {name}.pt)")
    picker = load_picker(name, thresholds=spec.thresholds)
    if spec.window_len is not None:
        model = getattr(picker, "model", None)
        if not isinstance(picker, ModelPicker) or not getattr(model, "fully_convolutional", False):
            raise ValueError(
                f"@window= only applies to XiaoNet students (fully convolutional); "
                f"'{spec.spec}' is not one"
            )
        model.in_samples = spec.window_len
        model.pred_sample = (0, spec.window_len)
        model.window_len = spec.window_len
    picker.name = spec.name
    return picker


def operating_thresholds(picker) -> dict[str, str]:
    """The thresholds a picker picks with, as text for tables."""
    config = getattr(picker, "config", None)
    if config is not None and hasattr(config, "trigger_on"):
        return {phase: f"STA/LTA on {config.trigger_on:g}" for phase in PHASES}
    model = getattr(picker, "model", None)
    out = {}
    for phase in PHASES:
        value = getattr(picker, "thresholds", {}).get(phase)
        if value is None and model is not None:
            value = getattr(model, "default_args", {}).get(f"{phase}_threshold")
        out[phase] = f"{value if value is not None else 0.3:g}"
    return out


def sweep_picker(picker, floor: float):
    """A copy of a model picker that picks at ``floor`` (for threshold sweeps), else None.

    STA/LTA picks do not depend on a probability threshold: their sweep filters the
    operating picks by their pseudo-confidence instead.
    """
    if not hasattr(picker, "model") or not hasattr(picker, "thresholds"):
        return None
    low = copy.copy(picker)
    low.thresholds = {phase: floor for phase in PHASES}
    return low


# --- running ----------------------------------------------------------------------------------


def relabel_picks(picks, key: str) -> list[sbu.Pick]:
    """Copies of ``picks`` whose ``trace_id`` is the dataset row key."""
    return [
        sbu.Pick(trace_id=key, start_time=p.start_time, end_time=p.end_time,
                 peak_time=p.peak_time, peak_value=p.peak_value, phase=p.phase)
        for p in picks
        if p.phase in PHASES
    ]


@dataclass
class PickerRun:
    """One picker over one dataset: picks per row at the operating point and for the sweep."""

    picker: str
    dataset: str
    picks: dict[str, list[sbu.Pick]] = field(default_factory=dict)
    sweep_picks: dict[str, list[sbu.Pick]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    data_hours: float = 0.0

    def all_picks(self, sweep: bool = False) -> list[sbu.Pick]:
        source = self.sweep_picks if sweep else self.picks
        return [p for picks in source.values() for p in picks]


def run_picker(picker, traces: list[LabelledTrace], dataset: str, sweep_floor: float | None = 0.05,
               progress: bool = True) -> PickerRun:
    """Pick every trace whole; a failing trace is recorded and the rest still run."""
    from tqdm import tqdm

    run = PickerRun(getattr(picker, "name", str(picker)), dataset)
    low = sweep_picker(picker, sweep_floor) if sweep_floor is not None else None

    def note(message: str) -> None:
        # count notes by their text after the station id so a table can show them
        run.notes[message.split(": ", 1)[-1]] += 1

    for trace in tqdm(traces, desc=f"{run.picker} on {dataset}", unit="trace", disable=not progress):
        run.data_hours += max(tr.stats.npts / tr.stats.sampling_rate for tr in trace.stream) / 3600
        try:
            started = time.perf_counter()
            picks = picker.pick(trace.stream.copy(), note=note)
            run.seconds += time.perf_counter() - started  # operating pass only
            run.picks[trace.key] = relabel_picks(picks, trace.key)
            if low is not None:
                run.sweep_picks[trace.key] = relabel_picks(
                    low.pick(trace.stream.copy(), note=lambda m: None), trace.key
                )
        except Exception as error:  # one bad trace never takes the evaluation down
            run.failures.append(f"{trace.key}: {type(error).__name__}: {error}")
            run.picks.setdefault(trace.key, [])
        if low is None:
            run.sweep_picks[trace.key] = run.picks[trace.key]
    return run


@dataclass
class EvaluationSettings:
    tolerance: float = 0.5
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    outlier_threshold: float = 0.2
    progress: bool = True


def score_run(run: PickerRun, references: list[ReferencePick], settings: EvaluationSettings,
              operating: dict[str, str], amplitudes: str = "",
              ignored: list[ReferencePick] = ()) -> tuple[list[dict], list[SweepPoint]]:
    """Metric rows (one per phase) and the threshold sweep of one picker run.

    ``ignored``: picks neither rewarded nor penalised (a single teacher's, in consensus scoring).
    """
    scores = score_picks(run.all_picks(), references, settings.tolerance, PHASES,
                         outlier_threshold=settings.outlier_threshold, ignored=ignored)
    sweep_source = run.all_picks(sweep=True)
    sweep = sweep_thresholds(sweep_source, references, settings.thresholds, settings.tolerance, PHASES,
                             ignored=ignored)
    rows = []
    for phase in PHASES:
        n_reference = sum(r.phase == phase for r in references)
        best = best_f1_threshold(sweep, phase)
        note = []
        n_picks = scores[phase].true_positives + scores[phase].false_positives
        p_only = operating.get(phase, "").startswith("STA/LTA") and phase == "S"
        if p_only:
            note.append("STA/LTA picks P only")
        elif n_reference == 0:
            note.append(f"no analyst {phase} picks in this dataset")
        elif n_picks == 0:
            note.append("no picks at all")
            if amplitudes.startswith("physical"):
                note.append("fails on physical-unit amplitudes")
        too_short = sum(n for message, n in run.notes.items() if "shorter than" in message)
        if too_short:
            note.append(f"{too_short} record(s) shorter than its input window, not picked")
        if run.failures:
            note.append(f"{len(run.failures)} trace(s) failed")
        rows.append({
            "dataset": run.dataset,
            "picker": run.picker,
            "phase": phase,
            "threshold": operating.get(phase, ""),
            "n_reference": n_reference,
            **{k: v for k, v in scores[phase].as_dict().items() if k != "phase"},
            "best_threshold": best.threshold if best and n_reference else float("nan"),
            "best_f1": best.f1 if best and n_reference else float("nan"),
            "seconds_per_hour": run.seconds / run.data_hours if run.data_hours else float("nan"),
            "note": "; ".join(note),
        })
    return rows, sweep


@dataclass
class Evaluation:
    """Everything one evaluation measured (what :mod:`xiaonet.evaluate.reports` writes out)."""

    settings: EvaluationSettings
    datasets: list[dict] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    sweeps: list[dict] = field(default_factory=list)
    runs: list[PickerRun] = field(default_factory=list)
    unavailable: list[dict] = field(default_factory=list)
    traces: dict[str, list[LabelledTrace]] = field(default_factory=dict)
    #: The loaded pickers, in the order asked (for the pick benchmark and the gallery).
    pickers: list = field(default_factory=list)

    #: Consensus datasets: picks only some teachers made (neither rewarded nor penalised).
    ignored: dict[str, list[ReferencePick]] = field(default_factory=dict)

    def references(self, dataset: str) -> list[ReferencePick]:
        return [r for trace in self.traces.get(dataset, []) for r in trace.references]


def _consensus_teacher_runs(loaded: list, traces: list[LabelledTrace], dataset: str, settings,
                            note: Callable[[str], None]) -> dict[str, PickerRun]:
    """Runs of the consensus teachers on ``traces``: those already asked for, else loaded here."""
    from xiaonet.evaluate.consensus import CONSENSUS_TEACHERS
    from xiaonet.picking.loading import load_picker

    runs = {}
    for teacher in CONSENSUS_TEACHERS:
        picker = next((p for _, p in loaded if getattr(p, "name", "") in (teacher, f"{teacher}:original")), None)
        if picker is None:
            picker = load_picker(teacher)  # TeacherUnavailable says which file is missing
        runs[teacher] = run_picker(picker, traces, dataset, None, settings.progress)
        if runs[teacher].failures:
            note(f"{dataset}: {teacher} failed on {len(runs[teacher].failures)} trace(s); "
                 "they have no consensus reference")
    return runs


def fill_consensus(traces: list[LabelledTrace], runs: dict[str, PickerRun]) -> list[ReferencePick]:
    """Set each trace's references to the teachers' consensus; return the ignored picks."""
    from xiaonet.evaluate.consensus import consensus_reference

    ignored = []
    for trace in traces:
        reference = consensus_reference({name: run.picks.get(trace.key, []) for name, run in runs.items()})
        trace.references = reference.picks
        ignored += reference.ignored
    return ignored


def evaluate(
    pickers: list,
    datasets: list[LabelledDataset],
    settings: EvaluationSettings | None = None,
    max_traces: int | None = None,
    note: Callable[[str], None] | None = None,
) -> Evaluation:
    """Run and score every picker on every dataset (whole-trace picking).

    ``pickers`` are :class:`PickerSpec` (loaded here; one that cannot load is listed in
    ``unavailable`` with the reason) or already built :class:`xiaonet.picking.pickers.Picker` objects.
    """
    settings = settings or EvaluationSettings()
    note = note or logger.info
    result = Evaluation(settings)
    loaded = []
    for spec in pickers:
        if not isinstance(spec, PickerSpec):  # an already built Picker
            loaded.append((spec, spec))
            result.pickers.append(spec)
            continue
        try:
            loaded.append((spec, build_picker(spec)))
            result.pickers.append(loaded[-1][1])
        except (ValueError, FileNotFoundError, RuntimeError) as error:
            note(f"{spec.name}: not evaluated: {error}")
            result.unavailable.append({"picker": spec.name, "reason": str(error)})
    for dataset in datasets:
        description = dataset.describe()
        traces = []
        for index in dataset.rows[:max_traces]:
            try:
                traces.append(dataset.trace(index))
            except Exception as error:
                dataset.notes[f"row unreadable ({type(error).__name__}: {error})"] += 1
        description["evaluated_traces"] = len(traces)
        ignored: list[ReferencePick] = []
        if getattr(dataset, "reference", "analyst") == "consensus":
            ignored = fill_consensus(traces, _consensus_teacher_runs(loaded, traces, dataset.name, settings, note))
            for phase in PHASES:
                description[f"{phase}_picks"] = sum(r.phase == phase for t in traces for r in t.references)
            description["single_teacher_picks"] = len(ignored)
            result.ignored[dataset.name] = ignored
        description["notes"] = "; ".join(f"{n} x {m}" for m, n in dataset.notes.items())
        result.datasets.append(description)
        result.traces[dataset.name] = traces
        references = [r for trace in traces for r in trace.references]
        for spec, picker in loaded:
            run = run_picker(picker, traces, dataset.name, min(settings.thresholds), settings.progress)
            rows, sweep = score_run(run, references, settings, operating_thresholds(picker),
                                    description["amplitudes"], ignored)
            if ignored and getattr(picker, "name", "").split(":")[0] in CONSENSUS_TEACHERS:
                for row in rows:
                    row["note"] = "; ".join(filter(None, ["reference (a consensus teacher)", row["note"]]))
            result.rows.extend(rows)
            result.sweeps.extend({"dataset": dataset.name, "picker": run.picker, **p.as_dict()}
                                 for p in sweep)
            result.runs.append(run)
    return result
