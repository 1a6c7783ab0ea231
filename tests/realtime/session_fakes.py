"""Stand-ins for what `xiaonet.realtime.session.run_session` drives, so that tests of the
session's event lines need no model: an engine that hands out the picks of a table as the data
clock passes them, and a sink that keeps the event lines."""

from __future__ import annotations

import obspy


class Emitted:  # what run_session reads of an emitted pick
    def __init__(self, row, clock):
        self.row, self.data_time = row, obspy.UTCDateTime(clock)
        self.pick = type("Pick", (), {"peak_value": 0.9, "peak_time": obspy.UTCDateTime(row["time"])})

    def as_row(self):
        return dict(self.row)


class PickTableEngine:
    """Stands in for the picker: each pick of the table comes out once the data clock (the
    newest packet end) is ``delay_s`` past it."""

    def __init__(self, rows, delay_s: float = 0.5):
        self.rows = sorted(rows, key=lambda r: r["time"])
        self.times = [obspy.UTCDateTime(r["time"]).timestamp for r in self.rows]
        self.delay_s, self.i = delay_s, 0

    def feed_many(self, batch):
        clock = max(p.stats.endtime.timestamp for p in batch) if batch else float("-inf")
        out = []
        while self.i < len(self.rows) and self.times[self.i] + self.delay_s <= clock:
            out.append(Emitted(self.rows[self.i], clock))
            self.i += 1
        return out

    def flush(self):
        return []


class EventLines:
    """A sink that keeps the event lines (as dicts) and ignores the picks."""

    def __init__(self):
        self.events = []

    def pick(self, row, table_row=None):
        pass

    def event(self, line):
        self.events.append(line)

    def flush(self, data_time=None):
        pass

    def close(self):
        pass
