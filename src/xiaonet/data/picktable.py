"""Pick tables: CSV (one row per pick) and QuakeML, the same for every picker.

CSV columns: network, station, location, channel, phase, time (ISO 8601 UTC), probability,
uncertainty_s, snr_db, picker. ``channel`` is the instrument picked (band + instrument code
and ``?``: ``HH?``, ``HN?``), so a station's broadband and strong-motion picks stay apart;
``uncertainty_s`` (s) and ``snr_db`` (dB) are defined in :mod:`xiaonet.edge.pick_quality`
(empty: not measured). An associator such as PyOcto reads it after ``pandas.read_csv``
(station = NET.STA). Tables written before the quality columns existed still read: the
missing columns come back empty.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterable, TextIO

import obspy

PICK_COLUMNS = ("network", "station", "location", "channel", "phase", "time", "probability", "uncertainty_s",
                "snr_db", "picker")
#: Columns a table from before the instrument and quality columns lacks (read as empty).
QUALITY_COLUMNS = ("channel", "uncertainty_s", "snr_db")
#: Decimals written: 0.1 ms of uncertainty, 0.01 dB.
QUALITY_DIGITS = {"uncertainty_s": 4, "snr_db": 2}


def pick_rows(picks: Iterable, picker: str) -> list[dict]:
    rows = []
    for pick in picks:
        network, station, location = (pick.trace_id.split(".") + ["", "", ""])[:3]
        time = pick.peak_time if pick.peak_time is not None else pick.start_time
        rows.append(
            {
                "network": network,
                "station": station,
                "location": location,
                "channel": getattr(pick, "channel", ""),
                "phase": pick.phase,
                "time": obspy.UTCDateTime(time).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "probability": f"{float(pick.peak_value):.4f}" if pick.peak_value is not None else "",
                **{name: "" if value is None else f"{value:.{QUALITY_DIGITS[name]}f}"
                   for name, value in quality_numbers(pick).items()},
                "picker": picker,
            }
        )
    return rows


def quality_numbers(pick) -> dict[str, float | None]:
    """A pick's ``uncertainty_s`` and ``snr_db`` rounded as the tables write them, None when not
    measured (NaN, or a picker that has none): numbers for JSON lines, text for the CSV."""
    numbers = {}
    for name, digits in QUALITY_DIGITS.items():
        value = getattr(pick, name, None)
        numbers[name] = round(float(value), digits) if value is not None and math.isfinite(float(value)) else None
    return numbers


def _number(value, digits: int) -> str:
    """A quality figure as text; "" when not measured (None or NaN)."""
    if value is None or not math.isfinite(float(value)):
        return ""
    return f"{float(value):.{digits}f}"


def write_csv(rows: list[dict], destination: str | Path | TextIO) -> None:
    if isinstance(destination, (str, Path)):
        with open(destination, "w", newline="") as handle:
            write_csv(rows, handle)
        return
    writer = csv.DictWriter(destination, fieldnames=PICK_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def read_csv(path: str | Path) -> list[dict]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(PICK_COLUMNS) - set(reader.fieldnames or []) - set(QUALITY_COLUMNS)
        if missing:
            raise ValueError(f"{path}: not a XiaoNet pick table, missing columns {sorted(missing)}")
        absent = {column: "" for column in QUALITY_COLUMNS if column not in reader.fieldnames}
        return [{**row, **absent} for row in reader]


UNASSOCIATED_PICKS = ("picks only, not associated into events: no origin; the one Event is the container "
                      "QuakeML requires for picks, not an earthquake (xiaonet detect associates them)")


def write_quakeml(picks: Iterable, picker: str, path: str | Path) -> None:
    """Picks (SeisBench ``Pick`` objects) as QuakeML (each as :func:`quakeml_pick` makes it).
    QuakeML keeps picks inside an event, so they go into one Event without an origin or a
    type, whose id (``smi:xiaonet/unassociated-picks/...``), comment and the catalog's
    description say that it holds unassociated picks rather than one event."""
    from obspy.core.event import Catalog, Comment, Event, ResourceIdentifier

    event = Event(resource_id=ResourceIdentifier(prefix="smi:xiaonet/unassociated-picks"),
                  comments=[Comment(text=UNASSOCIATED_PICKS)])
    for pick in picks:
        network, station, location = (pick.trace_id.split(".") + ["", "", ""])[:3]
        time = pick.peak_time if pick.peak_time is not None else pick.start_time
        event.picks.append(quakeml_pick(network, station, location, pick.phase, time, pick.peak_value, picker,
                                        getattr(pick, "channel", ""), getattr(pick, "uncertainty_s", None),
                                        getattr(pick, "snr_db", None)))
    Catalog(events=[event], description=UNASSOCIATED_PICKS).write(str(path), format="QUAKEML")


def quakeml_channel(channel: str, phase: str) -> str | None:
    """A pick's ``channel`` (``HH?``) as QuakeML's one channel code: the vertical (``HHZ``) for
    P; for S, picked on both horizontals, the north one (``HHN``; 1/2 channels are read as
    N/E). None without an instrument."""
    if not channel:
        return None
    return channel[:-1] + ("Z" if phase == "P" else "N")


def quakeml_pick(network: str, station: str, location: str, phase: str, time, probability, picker: str,
                 channel: str = "", uncertainty_s=None, snr_db=None):
    """One ObsPy ``Pick``: the picker is its ``method_id`` (``smi:xiaonet/picker/NAME``) and
    author, the channel its waveform id (:func:`quakeml_channel`), ``uncertainty_s`` its
    ``time_errors.uncertainty``, the probability and SNR (when there are) comments."""
    from obspy.core.event import Comment, CreationInfo, Pick, QuantityError, ResourceIdentifier, WaveformStreamID

    comments = []
    if _number(probability if str(probability) != "" else None, 4):
        comments.append(Comment(text=f"probability={float(probability):.4f}"))
    if _number(snr_db if str(snr_db) != "" else None, QUALITY_DIGITS["snr_db"]):
        comments.append(Comment(text=f"snr_db={float(snr_db):.2f}"))
    uncertainty = _number(uncertainty_s if str(uncertainty_s) != "" else None, QUALITY_DIGITS["uncertainty_s"])
    return Pick(
        time=obspy.UTCDateTime(time),
        time_errors=QuantityError(uncertainty=float(uncertainty)) if uncertainty else QuantityError(),
        waveform_id=WaveformStreamID(network_code=network, station_code=station, location_code=location,
                                     channel_code=quakeml_channel(channel, phase)),
        phase_hint=phase,
        method_id=ResourceIdentifier(f"smi:xiaonet/picker/{picker}"),
        evaluation_mode="automatic",
        creation_info=CreationInfo(author=picker),
        comments=comments,
    )
