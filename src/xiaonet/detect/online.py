"""Detection while streaming (``xiaonet stream --detect STATIONS``): picks in, versioned events out.

An early-warning user needs an event seconds after its origin, not once every pick is in.
:class:`OnlineAssociator` therefore declares in versions, each a new JSON line with the
same event id and a higher ``version`` (:func:`event_json`); a line is never changed or
taken back silently:

* **new** (version 1): the first association run that finds the event with P picks at
  ``DeclarationRule.min_p_stations`` distinct stations and an RMS residual of at most
  ``DeclarationRule.max_rms_s`` declares it. No S pick is needed: at a few seconds after
  the origin none has arrived at most stations.
* **update**: a later run finds it again (it shares picks with the declared version) with
  other picks or another location.
* **final**: the data clock is ``delay_s`` past its last associated pick, so no pick still
  on its way can change it; its picks then leave the window. **withdrawn** instead, when
  the last run no longer found it (its picks no longer form an event): the alert is taken
  back on its own line, never dropped.

Each line carries ``declared_at``, the data time of the newest sample the engine had when
the event was declared (the associator's clock). Association (PyOcto on the picks of the
last ``window_s`` data seconds) costs tens of milliseconds on hundreds of picks, so it runs
at most every ``interval_s`` data seconds and only when a pick arrived or a version is due.

``magnitude``: the hook that measures each version's magnitude, called ``(event, arrivals,
declared_at, final) -> EventMagnitude`` (``arrivals``: ``NET.STA -> {phase: time}`` of the
version's picks; ``declared_at``: the clock; ``final``: whether the version is final, when a
hook may measure more than for an early one) for every new, updated and final version, so
each line carries the local magnitude of the data that had arrived when it was declared
(:class:`xiaonet.realtime.waveform_ring.StreamedMagnitude` measures it on the stream's own
records); its ``settle(event, arrivals, clock)`` is called as the clock advances with each
open event's latest version (work it can do between versions). Without one the lines say
``"magnitude": null`` and why.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Callable

import obspy

from xiaonet.detect.association import AssociationConfig, DetectedEvent, associate, picks_frame
from xiaonet.detect.catalog import KM_PER_DEGREE
from xiaonet.detect.magnitude import EventMagnitude, event_arrivals

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass
class DeclarationRule:
    """What an event found while streaming needs for its first declaration.

    Five P picks fix an origin (four unknowns) with one pick to spare; on a dense array
    they are the five nearest stations, about a second after the first P arrival. Chance
    coincidences of five picks are common on a dense array whose stations pick dozens of
    times an hour (issue 27's shifted records: four in 50 s on 291 stations at 47 picks per
    station-hour, all with the epicentre outside the stations that picked them, three with
    picks at under half the stations within reach), so an alert also needs the stations to
    surround the epicentre (``max_gap_deg``) and most stations within reach of its farthest
    pick to have picked (``min_station_fraction``, of the stations with any pick in the window).
    An event that never meets the rule is still declared, at once final, when it meets the
    offline minimums (:class:`AssociationConfig`) once its picks are in.
    """

    min_p_stations: int = 5
    max_rms_s: float = 0.3  # RMS of the located event's pick residuals
    max_gap_deg: float = 180.0  # largest azimuthal gap: the epicentre inside the stations that picked
    min_station_fraction: float = 0.5


def early_association_config(rule: DeclarationRule, base: AssociationConfig | None = None) -> AssociationConfig:
    """``base`` with PyOcto's pick minimums lowered to what the rule declares on (P picks only)."""
    return dataclasses.replace(base or AssociationConfig(), n_picks=rule.min_p_stations,
                               n_p_picks=rule.min_p_stations, n_s_picks=0, n_p_and_s_picks=0)


@dataclass
class EventVersion:
    """One line of an event's history: what was known when it was declared."""

    event_id: int
    version: int
    status: str  # new, update, final, withdrawn
    event: DetectedEvent
    declared_at: float  # data time (timestamp) of the newest sample when declared
    last_pick: float
    magnitude: EventMagnitude | None = None  # of the data up to declared_at (None: not measured)
    arrivals: dict = field(default_factory=dict, repr=False)  # NET.STA -> {phase: time}, what it is measured at


@dataclass
class _Tracked:
    event_id: int
    versions: list[EventVersion] = field(default_factory=list)
    picks: frozenset = frozenset()
    found_last_run: bool = True

    @property
    def latest(self) -> EventVersion:
        return self.versions[-1]


def _search_diagonal_km(stations, margin_km: float) -> float:
    """The diagonal of the search volume around all ``stations`` (km; flat earth, for sizing a table)."""
    import numpy as np

    if not len(stations):
        return 0.0
    north = float(np.ptp(stations.latitude)) * KM_PER_DEGREE
    east = float(np.ptp(stations.longitude)) * KM_PER_DEGREE * float(np.cos(np.radians(np.mean(stations.latitude))))
    return 1.05 * float(np.hypot(north + 2 * margin_km, east + 2 * margin_km))  # 5 %: the projection differs


def p_span_s(stations, model, config: AssociationConfig) -> float:
    """The longest time between two P picks of one event on ``stations``.

    The P travel times from any source to two stations differ by at most the travel time
    between the stations (first arrivals obey the triangle inequality), which is at most
    their distance at the model's slowest P velocity; each pick may also be off by the
    association tolerance. The stations' bounding-box diagonal bounds their distance."""
    import numpy as np

    slowest = float(np.min(model.vp))
    return (_search_diagonal_km(stations, 0.0) / slowest
            + 2.0 * max(config.tolerance, config.pick_match_tolerance))


def _pick_keys(frame, rows) -> frozenset:
    """The picks of an event as (station id, phase, time): how versions of it are recognised."""
    part = frame.loc[rows]
    return frozenset((sid, phase, round(float(t), 4)) for sid, phase, t in
                     zip(part["id"], part["phase"], part["timestamp"]))


def _rms(detection, event: DetectedEvent) -> float:
    residuals = detection.picks.loc[event.pick_rows, "residual"].to_numpy(dtype=float)
    return float((residuals ** 2).mean() ** 0.5) if len(residuals) else float("inf")


class OnlineAssociator:
    """Picks in with :meth:`add`, the data clock with :meth:`advance`, versions out.

    ``delay_s``: data seconds after an event's last pick before its final version; it must
    cover the picker's own latency and the travel time across the network. ``window_s``
    (default 3 x ``delay_s``) must hold all of an event's picks.
    """

    def __init__(self, stations, model, config: AssociationConfig | None = None, delay_s: float = 40.0,
                 window_s: float | None = None, interval_s: float = 1.0, rule: DeclarationRule | None = None,
                 magnitude: Callable | None = None):
        self.stations, self.model = stations, model
        self.rule = rule or DeclarationRule()
        self.offline = config or AssociationConfig()  # what an event needs without an alert
        self.config = early_association_config(self.rule, self.offline)
        self.delay_s, self.interval_s = float(delay_s), float(interval_s)
        self.window_s = float(window_s) if window_s is not None else 3.0 * self.delay_s
        self.magnitude = magnitude
        self.rows: list[dict] = []
        self.clock = float("-inf")
        self._last_run = float("-inf")
        self._new_picks = False
        self.open: list[_Tracked] = []
        self.closed: list[_Tracked] = []
        self.missing: dict[str, int] = {}
        self.runs = 0
        self.skipped_runs = 0  # runs left out because they could find nothing (_could_find_event)
        self.p_span_s = p_span_s(stations, model, self.config)
        self._undeclared_due = float("inf")  # when an event found without an alert can be final
        # the velocity model's travel-time table, kept between runs, large enough for every station
        self._tables: dict = {"at_least_km": _search_diagonal_km(stations, self.config.margin_km)}

    @property
    def declared(self) -> list[_Tracked]:
        """Every event declared so far (open and closed), in order of first declaration."""
        return sorted(self.open + self.closed, key=lambda t: t.event_id)

    def add(self, rows) -> None:
        """Picks (pick-table rows) as they are emitted."""
        rows = list(rows)
        if not rows:
            return
        frame = picks_frame(rows, "stream")
        known = set(self.stations.ids)
        for row, stamp, sid in zip(rows, frame["timestamp"], frame["id"]):
            key = (sid, str(row["phase"]).upper(), round(float(stamp), 4))
            self.rows.append({**row, "_t": float(stamp), "_key": key})
            self.clock = max(self.clock, float(stamp))
            if sid not in known:
                self.missing[sid] = self.missing.get(sid, 0) + 1
        self._new_picks = True

    def _due(self) -> bool:
        return self.clock >= self._undeclared_due or any(
            self.clock >= t.latest.last_pick + self.delay_s for t in self.open)

    def advance(self, data_time) -> list[EventVersion]:
        """The newest data time seen; returns the versions declared now."""
        self.clock = max(self.clock, obspy.UTCDateTime(data_time).timestamp)
        out = []
        if (self._new_picks or self._due()) and self.clock - self._last_run >= self.interval_s:
            if not self.open and not self._due() and not self._could_find_event():
                out = self._skip_run()
            else:
                out = self._run(end=False)
        if self.magnitude is not None:
            for tracked in self.open:
                self.magnitude.settle(tracked.latest.event, tracked.latest.arrivals, self.clock)
        return out

    def _could_find_event(self) -> bool:
        """Whether the window holds ``n_p_picks`` P picks within :attr:`p_span_s` of each other.

        Every event association can find needs that many P picks, and two P picks of one event
        lie at most ``p_span_s`` apart, so without such a group a run finds nothing. On a
        network picking at a few picks an hour per station most runs are of this kind, and
        this check costs microseconds where PyOcto costs tens of milliseconds."""
        start = self.clock - self.window_s
        times = sorted(r["_t"] for r in self.rows if r["_t"] >= start and str(r["phase"]).upper() == "P")
        need = self.config.n_p_picks
        return any(times[i + need - 1] - times[i] <= self.p_span_s for i in range(len(times) - need + 1))

    def _skip_run(self) -> list[EventVersion]:
        """What a run that finds nothing leaves, without running association (no event is open)."""
        self._last_run, self._new_picks = self.clock, False
        self._undeclared_due = float("inf")
        self.rows = [r for r in self.rows if r["_t"] >= self.clock - self.window_s]
        self.skipped_runs += 1
        return []

    def flush(self) -> list[EventVersion]:
        """End of stream: what the remaining picks hold, every open event final (or withdrawn)."""
        return self._run(end=True) if self.rows or self.open else []

    def _measure(self, event: DetectedEvent, arrivals: dict, final: bool) -> EventMagnitude | None:
        return self.magnitude(event, arrivals, self.clock, final) if self.magnitude is not None else None

    def _version(self, tracked: _Tracked, status: str, event: DetectedEvent, last_pick: float,
                 frame) -> EventVersion:
        arrivals = event_arrivals(frame, event)
        version = EventVersion(tracked.event_id, len(tracked.versions) + 1, status, event, self.clock, last_pick,
                               self._measure(event, arrivals, status == "final"), arrivals)
        tracked.versions.append(version)
        return version

    def _run(self, end: bool) -> list[EventVersion]:
        self._last_run, self._new_picks = self.clock, False
        self._undeclared_due = float("inf")
        self.runs += 1
        self.rows = [r for r in self.rows if r["_t"] >= self.clock - self.window_s]
        out: list[EventVersion] = []
        found = []
        if self.rows:
            picks = [{k: v for k, v in r.items() if k not in ("_t", "_key")} for r in self.rows]
            detection = associate(picks, self.stations,
                                  self.model, self.config, source="stream", tables=self._tables)
            frame = detection.picks
            found = [(e, _pick_keys(frame, e.pick_rows)) for e in detection.events]
        for tracked in self.open:
            tracked.found_last_run = False
        for event, keys in found:
            last = max(k[2] for k in keys)
            tracked = max(self.open, key=lambda t: len(t.picks & keys), default=None)
            if tracked is not None and tracked.picks & keys:
                tracked.found_last_run = True
                if keys != tracked.picks:
                    tracked.picks = keys
                    out.append(self._version(tracked, "update", event, last, frame))
                continue
            if any(abs(event.time - t.latest.event.time) < self.config.min_interevent_time
                   for t in self.closed[-20:] if t.latest.status == "final"):
                continue  # late picks of a final event: already told
            tracked = _Tracked(len(self.open) + len(self.closed), picks=keys)
            if self._alert(event, detection):
                self.open.append(tracked)
                out.append(self._version(tracked, "new", event, last, frame))
            elif (end or self.clock >= last + self.delay_s) and self._offline_event(event, frame):
                # never an alert, but an event: declared once, final
                out.append(self._version(tracked, "final", event, last, frame))
                self.closed.append(tracked)
                self.rows = [r for r in self.rows if r["_key"] not in tracked.picks]
            else:
                self._undeclared_due = min(self._undeclared_due, last + self.delay_s)  # look again then
        for tracked in list(self.open):
            if end or self.clock >= tracked.latest.last_pick + self.delay_s:
                out.append(self._close(tracked, "final" if tracked.found_last_run else "withdrawn"))
        return out

    def _alert(self, event: DetectedEvent, detection) -> bool:
        """The :class:`DeclarationRule`: enough for a first declaration."""
        part = detection.picks.loc[event.pick_rows]
        return (part.loc[part["phase"] == "P", "id"].nunique() >= self.rule.min_p_stations
                and _rms(detection, event) <= self.rule.max_rms_s
                and event.azimuthal_gap <= self.rule.max_gap_deg
                and event.station_fraction >= self.rule.min_station_fraction)

    def _offline_event(self, event: DetectedEvent, frame) -> bool:
        """The offline minimums of :class:`AssociationConfig` (picks, P, S, stations with both)."""
        part = frame.loc[event.pick_rows]
        both = part.groupby("id")["phase"].nunique().eq(2).sum()
        c = self.offline
        return (len(part) >= c.n_picks and event.n_p >= c.n_p_picks and event.n_s >= c.n_s_picks
                and both >= c.n_p_and_s_picks)

    def _close(self, tracked: _Tracked, status: str) -> EventVersion:
        """The last version (the latest one's content, now final or withdrawn); its picks leave.
        A final version's magnitude is measured again, on the data that has arrived since."""
        latest = tracked.latest
        magnitude = self._measure(latest.event, latest.arrivals, True) if status == "final" else latest.magnitude
        version = dataclasses.replace(latest, version=latest.version + 1, status=status, declared_at=self.clock,
                                      magnitude=magnitude)
        tracked.versions.append(version)
        self.open.remove(tracked)
        self.closed.append(tracked)
        self.rows = [r for r in self.rows if r["_key"] not in tracked.picks]
        return version


def event_json(version: EventVersion, latency_s: float = 0.0) -> str:
    """One event version as a JSON line.

    ``declared_at``: data time of the newest sample when declared; ``after_origin_s``: seconds
    from the origin to the declaration, counting ``latency_s`` (a replay's simulated
    transmission delay: the newest sample reached the engine that much after it was recorded);
    ``delay_s``: data seconds from the event's last pick to the declaration;
    ``azimuthal_gap_deg`` and ``station_fraction``: what the :class:`DeclarationRule` judged;
    the magnitude fields: :func:`magnitude_fields`.
    """
    event, e = version.event, version.event.errors
    return json.dumps({
        "type": "event", "event": version.event_id, "version": version.version, "status": version.status,
        "declared_at": obspy.UTCDateTime(version.declared_at).strftime(TIME_FORMAT),
        "after_origin_s": round(version.declared_at + latency_s - event.time.timestamp, 3),
        "time": event.time.strftime(TIME_FORMAT),
        "latitude": round(event.latitude, 5), "longitude": round(event.longitude, 5),
        "depth_km": round(event.depth_km, 3), "time_error_s": round(e.time_s, 3),
        "horizontal_error_km": round(e.major_km, 3), "depth_error_km": round(e.depth_km, 3),
        **magnitude_fields(version.magnitude),
        "n_picks": len(event.pick_rows), "n_p": event.n_p, "n_s": event.n_s, "n_stations": event.n_stations,
        "azimuthal_gap_deg": round(event.azimuthal_gap, 1), "station_fraction": round(event.station_fraction, 3),
        "emitted_at": obspy.UTCDateTime().strftime(TIME_FORMAT),
        "delay_s": round(version.declared_at - version.last_pick, 3),
    })


def magnitude_fields(result: EventMagnitude | None) -> dict:
    """An event line's magnitude: ``magnitude`` (ML, the median of the channel magnitudes),
    ``magnitude_spread`` (1.4826 x their median absolute deviation: ``xiaonet detect``'s
    ``ml_spread``), ``magnitude_type``, ``n_magnitude_stations``, ``magnitude_after_p_s`` (median
    seconds of data after P the channels' windows held), ``magnitude_complete_stations`` (stations
    whose window reached S + coda: below ``n_magnitude_stations``, the ML is a lower bound) and
    ``magnitude_note`` (why there is none, else null). A null magnitude is never a made-up one."""
    if result is None or result.ml is None:
        return {"magnitude": None, "magnitude_spread": None, "magnitude_type": None, "n_magnitude_stations": 0,
                "magnitude_after_p_s": None, "magnitude_complete_stations": 0,
                "magnitude_note": "not measured (no waveforms)" if result is None else result.summary()}
    return {"magnitude": round(result.ml, 2), "magnitude_spread": round(result.spread, 2), "magnitude_type": "ML",
            "n_magnitude_stations": result.n_stations, "magnitude_after_p_s": round(result.after_p_s, 2),
            "magnitude_complete_stations": result.n_complete_stations, "magnitude_note": None}
