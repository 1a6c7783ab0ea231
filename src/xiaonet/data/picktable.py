"""Pick tables: CSV (one row per pick) and QuakeML, the same for every picker.

CSV columns: network, station, location, phase, time (ISO 8601 UTC), probability, picker.
An associator such as PyOcto reads it after ``pandas.read_csv`` (station = NET.STA).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, TextIO

import obspy

PICK_COLUMNS = ("network", "station", "location", "phase", "time", "probability", "picker")


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
                "phase": pick.phase,
                "time": obspy.UTCDateTime(time).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "probability": f"{float(pick.peak_value):.4f}" if pick.peak_value is not None else "",
                "picker": picker,
            }
        )
    return rows


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
        missing = set(PICK_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: not a XiaoNet pick table, missing columns {sorted(missing)}")
        return list(reader)


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
        event.picks.append(quakeml_pick(network, station, location, pick.phase, time, pick.peak_value, picker))
    Catalog(events=[event], description=UNASSOCIATED_PICKS).write(str(path), format="QUAKEML")


def quakeml_pick(network: str, station: str, location: str, phase: str, time, probability, picker: str):
    """One ObsPy ``Pick``: the picker is its ``method_id`` (``smi:xiaonet/picker/NAME``) and
    author, the probability (when there is one) a comment."""
    from obspy.core.event import Comment, CreationInfo, Pick, ResourceIdentifier, WaveformStreamID

    has_probability = probability is not None and str(probability) != ""
    comments = [Comment(text=f"probability={float(probability):.4f}")] if has_probability else []
    return Pick(
        time=obspy.UTCDateTime(time),
        waveform_id=WaveformStreamID(network_code=network, station_code=station, location_code=location),
        phase_hint=phase,
        method_id=ResourceIdentifier(f"smi:xiaonet/picker/{picker}"),
        evaluation_mode="automatic",
        creation_info=CreationInfo(author=picker),
        comments=comments,
    )
