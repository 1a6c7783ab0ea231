"""Detection while streaming (``xiaonet stream --detect STATIONS``): picks in, events out.

:class:`OnlineAssociator` keeps the picks of the last ``window_s`` data seconds and runs
the offline associator (:func:`xiaonet.detect.association.associate`) on them as data
time advances. An event is declared once the data clock is ``delay_s`` past its last
associated pick (so no pick still on its way can change it): the delay after the last pick
is bounded by ``delay_s`` plus one association interval (``interval_s``). Picks stay in the
window, so every run sees what the offline command would; an event found again (origin
within ``min_interevent_time`` of a declared one) is not declared twice. At the end of the
stream, :meth:`flush` declares what is left.

``delay_s`` must cover the picker's own latency (the streaming engine emits a pick up to
one prediction window after its arrival in offline mode) plus the travel time across
the network; ``window_s`` must hold all of an event's picks.
"""

from __future__ import annotations

import json

import obspy

from xiaonet.detect.association import AssociationConfig, DetectedEvent, associate, picks_frame


class OnlineAssociator:
    def __init__(self, stations, model, config: AssociationConfig | None = None, delay_s: float = 40.0,
                 window_s: float | None = None, interval_s: float = 2.0):
        self.stations, self.model = stations, model
        self.config = config or AssociationConfig()
        self.delay_s, self.interval_s = float(delay_s), float(interval_s)
        self.window_s = float(window_s) if window_s is not None else 3.0 * self.delay_s
        self.rows: list[dict] = []
        self.clock = float("-inf")
        self._last_run = float("-inf")
        self._due = float("inf")  # data time at which an event could next become final
        self.declared: list[DetectedEvent] = []
        self.missing: dict[str, int] = {}

    def add(self, rows) -> None:
        """Picks (pick-table rows) as they are emitted."""
        rows = list(rows)
        if not rows:
            return
        frame = picks_frame(rows, "stream")
        known = set(self.stations.ids)
        for row, stamp, sid in zip(rows, frame["timestamp"], frame["id"]):
            self.rows.append({**row, "_t": float(stamp)})
            self.clock = max(self.clock, float(stamp))
            self._due = min(self._due, float(stamp) + self.delay_s)
            if sid not in known:
                self.missing[sid] = self.missing.get(sid, 0) + 1

    def advance(self, data_time) -> list[DetectedEvent]:
        """The newest data time seen; returns the events that became final."""
        self.clock = max(self.clock, obspy.UTCDateTime(data_time).timestamp)
        if self.clock >= self._due and self.clock - self._last_run >= self.interval_s:
            return self._run(final=False)
        return []

    def flush(self) -> list[DetectedEvent]:
        """End of stream: every event the remaining picks hold."""
        return self._run(final=True) if self.rows else []

    def _run(self, final: bool) -> list[DetectedEvent]:
        self._last_run = self.clock
        self._due = float("inf")
        start = self.clock - self.window_s
        self.rows = [r for r in self.rows if r["_t"] >= start]
        if not self.rows:
            return []
        detection = associate([{k: v for k, v in r.items() if k != "_t"} for r in self.rows], self.stations,
                              self.model, self.config, source="stream")
        new = []
        for event in detection.events:
            if any(abs(event.time - old.time) < self.config.min_interevent_time for old in self.declared):
                continue  # declared before
            last = float(detection.picks.loc[event.pick_rows, "timestamp"].max())
            if not final and self.clock < last + self.delay_s:
                self._due = min(self._due, last + self.delay_s)  # not final yet: look again then
                continue
            event.number = len(self.declared)
            event.last_pick = last
            self.declared.append(event)
            new.append(event)
        return new


def event_json(event: DetectedEvent, clock: float) -> str:
    """One declared event as a JSON line; ``delay_s``: data seconds from its last pick to now."""
    e = event.errors
    return json.dumps({
        "type": "event", "event": event.number, "time": event.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "latitude": round(event.latitude, 5), "longitude": round(event.longitude, 5),
        "depth_km": round(event.depth_km, 3), "time_error_s": round(e.time_s, 3),
        "horizontal_error_km": round(e.major_km, 3), "depth_error_km": round(e.depth_km, 3),
        "n_picks": len(event.pick_rows), "n_p": event.n_p, "n_s": event.n_s, "n_stations": event.n_stations,
        "emitted_at": obspy.UTCDateTime().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "delay_s": round(clock - event.last_pick, 3),
    })
