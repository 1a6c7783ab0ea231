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


def write_quakeml(picks: Iterable, picker: str, path: str | Path) -> None:
    """Picks (SeisBench ``Pick`` objects) into one ObsPy Catalog (one event holding them) as
    QuakeML; each pick names the picker as its ``method_id`` (``smi:xiaonet/picker/NAME``) and
    author, and carries its probability as a comment."""
    from obspy.core.event import (Catalog, Comment, CreationInfo, Event, Pick, ResourceIdentifier,
                                  WaveformStreamID)

    method = ResourceIdentifier(f"smi:xiaonet/picker/{picker}")
    event = Event()
    for pick in picks:
        network, station, location = (pick.trace_id.split(".") + ["", "", ""])[:3]
        time = pick.peak_time if pick.peak_time is not None else pick.start_time
        comments = [] if pick.peak_value is None else [Comment(text=f"probability={float(pick.peak_value):.4f}")]
        event.picks.append(
            Pick(
                time=obspy.UTCDateTime(time),
                waveform_id=WaveformStreamID(network_code=network, station_code=station, location_code=location),
                phase_hint=pick.phase,
                method_id=method,
                evaluation_mode="automatic",
                creation_info=CreationInfo(author=picker),
                comments=comments,
            )
        )
    Catalog(events=[event]).write(str(path), format="QUAKEML")
