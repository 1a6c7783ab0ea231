"""False alerts: events declared on picks where no real event can be coherent across stations.

Continuous records of single stations (different places, days and networks) are cut into
segments of ``segment_s``; each segment becomes one station of a layout (a real station
file: a dense array is where chance coincidences are likeliest) and is shifted in time by
its own random offset of minutes (circularly, inside the segment, so no data is lost and
none is repeated). All segments then share one time axis. Whatever the online associator
declares on these picks is a false declaration, since a real earthquake in one record has
no counterpart at the other stations. The rate is per 1,000 station-hours of picked data.

A realisation is one draw of stations and offsets; several draws reuse the same picks
(:func:`measure_false_declarations` reports the distinct data hours apart from the total).

>>> rows = [{"network": "CM", "station": "A", "location": "", "phase": "P",
...          "time": "2017-10-15T06:00:10.000000Z", "probability": "0.9", "picker": "x"}]
>>> start = obspy.UTCDateTime("2017-10-15T06:00:00").timestamp
>>> segments = cut_segments({"CM.A": (rows, start, start + 5400.0)}, segment_s=3600.0)
>>> [(s.seconds, list(s.offsets)) for s in segments]
[(3600.0, [10.0]), (1800.0, [])]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import obspy

from xiaonet.detect.association import picks_frame
from xiaonet.detect.online import OnlineAssociator
from xiaonet.detect.stations import StationTable

#: The common start of the shifted time axis (any time works: only differences matter).
AXIS_START = obspy.UTCDateTime("2030-01-01T00:00:00")


@dataclass
class Segment:
    """``seconds`` of one record from ``start`` (timestamp), and its pick times (s after start)."""

    record: str
    start: float
    seconds: float
    offsets: np.ndarray  # pick times, seconds after start
    phases: list[str]


def cut_segments(records: dict, segment_s: float = 3600.0, min_segment_s: float = 600.0) -> list[Segment]:
    """``records``: name -> (pick rows, start timestamp, end timestamp) of one station's record.
    Each record is cut into whole segments of ``segment_s`` and a last shorter one when it
    holds at least ``min_segment_s``."""
    segments = []
    for name, (rows, start, end) in records.items():
        frame = picks_frame(rows, name) if rows else None
        times = frame["timestamp"].to_numpy() if frame is not None else np.zeros(0)
        phases = frame["phase"].to_numpy() if frame is not None else np.zeros(0, dtype=str)
        t = float(start)
        while end - t >= min_segment_s:
            seconds = min(segment_s, end - t)
            inside = (times >= t) & (times < t + seconds)
            segments.append(Segment(name, t, seconds, times[inside] - t, list(phases[inside])))
            t += seconds
    return segments


def shifted_picks(segments: list[Segment], layout: StationTable, seed: int, min_shift_s: float = 60.0) -> list[dict]:
    """Every segment at its own station of ``layout`` (drawn without repeats) on one time axis,
    circularly shifted by a random offset of at least ``min_shift_s``; pick rows in time order."""
    if len(segments) > len(layout):
        raise ValueError(f"{len(segments)} segments but only {len(layout)} stations in the layout; "
                         "use longer segments or a larger station file")
    rng = np.random.default_rng(seed)
    places = rng.permutation(len(layout))[: len(segments)]
    rows = []
    for segment, place in zip(segments, places):
        shift = rng.uniform(min_shift_s, max(min_shift_s, segment.seconds - min_shift_s))
        network, _, station = layout.ids[place].partition(".")
        for offset, phase in zip((segment.offsets + shift) % segment.seconds, segment.phases):
            rows.append({"network": network, "station": station, "location": "", "phase": phase,
                         "time": (AXIS_START + float(offset)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                         "probability": "1.0", "picker": "shifted", "_t": float(offset)})
    rows.sort(key=lambda r: r["_t"])
    for row in rows:
        del row["_t"]
    return rows


def replay_picks(rows: list[dict], associator: OnlineAssociator, step_s: float = 1.0) -> list:
    """Picks (in time order) into ``associator`` as a stream delivers them: the data clock in
    ``step_s`` steps, each pick in the step that holds its time; every version declared."""
    if not rows:
        return []
    times = picks_frame(rows, "shifted picks")["timestamp"].to_numpy()
    versions, i = [], 0
    clock = float(times[0])
    while i < len(rows):
        clock += step_s
        j = int(np.searchsorted(times, clock, side="right"))
        associator.add(rows[i:j])
        i = j
        versions += associator.advance(clock)
    versions += associator.flush()
    return versions


@dataclass
class FalseAlertResult:
    station_hours: float  # picked station-hours, over all realisations
    data_station_hours: float  # distinct station-hours of data (one realisation)
    realisations: int
    segments: int
    picks: int
    declared: int  # first declarations that were alerts (status new), even if later withdrawn
    withdrawn: int
    final_only: int  # events declared only once final (never met the alert rule)
    versions: list = field(default_factory=list)

    @property
    def per_1000_station_hours(self) -> float:
        return 1000.0 * self.declared / self.station_hours if self.station_hours else float("nan")


def measure_false_declarations(segments: list[Segment], layout: StationTable, model, realisations: int = 1,
                               seed: int = 0, note: Callable[[str], None] | None = None,
                               **associator_options) -> FalseAlertResult:
    """Declarations on ``realisations`` shuffles of ``segments`` (see the module docstring);
    ``note`` hears each draw's figures as it ends (a long measurement can be stopped early)."""
    hours = sum(s.seconds for s in segments) / 3600.0
    declared = withdrawn = final_only = picks = 0
    versions = []
    for r in range(realisations):
        started = time.monotonic()
        rows = shifted_picks(segments, layout, seed + r)
        picks += len(rows)
        associator = OnlineAssociator(layout, model, **associator_options)
        found = replay_picks(rows, associator)
        versions += found
        alerts = sum(v.version == 1 and v.status == "new" for v in found)
        declared += alerts
        if note is not None:
            note(f"draw {r + 1}/{realisations} (seed {seed + r}): {len(rows)} picks, {alerts} alert(s), "
                 f"{associator.runs} association runs ({associator.skipped_runs} left out), "
                 f"{time.monotonic() - started:.0f} s")
        final_only += sum(v.version == 1 and v.status == "final" for v in found)
        withdrawn += sum(v.status == "withdrawn" for v in found)
    return FalseAlertResult(hours * realisations, hours, realisations, len(segments), picks, declared, withdrawn,
                            final_only, versions)
