"""SeisBench-format dataset folders (``metadata.csv`` + ``waveforms.hdf5``): opening one, and
reading its metadata columns (start time, analyst picks) the same way for training
(:func:`xiaonet.data.records.load_labelled_records`) and evaluation
(:class:`xiaonet.evaluate.traces.LabelledDataset`).

>>> str(parse_start_time("27/10/2016 19:12"))
'2016-10-27T19:12:00.000000Z'
>>> parse_start_time(float("nan")) is None
True
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import obspy

#: The metadata column holding each phase's analyst pick (a sample index into the row).
PHASE_COLUMNS = {"P": "trace_p_arrival_sample", "S": "trace_s_arrival_sample"}
REQUIRED_FILES = ("metadata.csv", "waveforms.hdf5")


def open_seisbench_folder(path: str | Path, error: type[Exception] = ValueError):
    """``seisbench.data.WaveformDataset`` of a folder, components in Z, N, E order, at the
    stored sampling rate; ``error`` (naming the folder and what was expected) otherwise."""
    import seisbench.data as sbd

    path = Path(path)
    for required in REQUIRED_FILES:
        if not (path / required).is_file():
            raise error(
                f"{path}: not a SeisBench-format dataset, {required} is missing "
                "(expected a folder with metadata.csv + waveforms.hdf5)"
            )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sbd.WaveformDataset(path, component_order="ZNE", sampling_rate=None, cache=None)
    except Exception as exc:
        raise error(f"{path}: SeisBench cannot open it as a WaveformDataset: "
                    f"{type(exc).__name__}: {exc}") from None


def metadata_value(row, column: str, default=None):
    """``row[column]``, or ``default`` where the column is missing or the cell empty (NaN)."""
    value = row.get(column, default)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return default
    return value


def parse_start_time(value) -> obspy.UTCDateTime | None:
    """A ``trace_start_time`` cell as a time: ISO 8601, or day first as some datasets write
    it (``27/10/2016 19:12``); None where it is empty or unparsable."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    try:
        return obspy.UTCDateTime(str(value))
    except Exception:
        pass
    try:
        import pandas as pd

        return obspy.UTCDateTime(pd.to_datetime(str(value), dayfirst=True).isoformat())
    except Exception:
        return None


def pick_sample(row, phase: str) -> float | None:
    """The analyst pick of ``phase`` in a metadata row, in samples of the stored trace (None
    where the cell is empty); ValueError where it holds something else than a number."""
    value = metadata_value(row, PHASE_COLUMNS[phase])
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{PHASE_COLUMNS[phase]} is {value!r}, expected a sample index") from None
    return value if np.isfinite(value) else None
