"""What ``xiaonet stream`` runs: a packet source, the streaming engine, where its picks go and,
with ``--detect``, the online associator.

The loop is :func:`run_session`; the command line only builds its parts. Picks and events go
to *sinks*, objects with ``pick(row, table_row)`` / ``event(line)`` / ``flush(data_time=None)`` /
``close()`` (``flush`` after each step of the engine, with the data clock when known: see
:class:`JsonLinesSink`, :class:`CsvPickSink`), so a new destination (a message broker, say)
is one more sink and no change to the loop.

Ctrl-C and a reader that closes stdout (``| head``) stop the session cleanly: the records
still open are ended (their last picks emitted and associated) before it returns.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from xiaonet.data.picktable import PICK_COLUMNS

#: Columns of the streamed CSV pick table: those of ``xiaonet pick --out``, plus when each
#: pick was emitted (wall clock, UTC).
STREAM_CSV_COLUMNS = (*PICK_COLUMNS, "emitted_at")


class JsonLinesSink:
    """Each pick (and event) as one JSON line, flushed as it is emitted."""

    def __init__(self, handle: TextIO | None = None):
        self.handle = handle

    def _out(self) -> TextIO:
        return self.handle if self.handle is not None else sys.stdout

    def pick(self, row: dict, table_row: dict | None = None) -> None:
        self._out().write(json.dumps(row) + "\n")

    def event(self, line: dict) -> None:
        self._out().write(json.dumps(line) + "\n")

    def flush(self, data_time: float | None = None) -> None:
        self._out().flush()

    def close(self) -> None:
        self.flush()


class CsvPickSink:
    """Picks appended to a CSV pick table (:data:`STREAM_CSV_COLUMNS`); a new or empty file
    gets the header first."""

    def __init__(self, path: str | Path):
        path = Path(path)
        new = not path.exists() or path.stat().st_size == 0
        self.handle = open(path, "a", newline="")
        self.writer = csv.DictWriter(self.handle, fieldnames=list(STREAM_CSV_COLUMNS), lineterminator="\n",
                                     extrasaction="ignore")
        if new:
            self.writer.writeheader()
            self.handle.flush()

    def pick(self, row: dict, table_row: dict | None = None) -> None:
        """``table_row``: the pick as ``xiaonet pick`` writes it (probability to 4 digits), so a
        streamed table equals the offline one; else ``row``."""
        self.writer.writerow(table_row if table_row is not None else row)

    def event(self, line: dict) -> None:
        pass

    def flush(self, data_time: float | None = None) -> None:
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


@dataclass
class SessionSummary:
    """What a session did, for the closing lines on stderr."""

    elapsed_s: float = 0.0
    picks: dict[str, int] = field(default_factory=dict)
    stations: set = field(default_factory=set)
    events: int = 0  # events declared (first versions)
    event_versions: int = 0  # event lines, every version counted
    interrupted: bool = False


def stream_row(emitted, table_row: dict | None = None) -> dict:
    """The JSON line of one emitted pick: the pick-table row with the probability unrounded
    (6 digits) and ``delay_s``, the data seconds between the pick and the newest sample of
    its station when it was emitted."""
    row = dict(table_row) if table_row is not None else emitted.as_row()
    row["probability"] = round(float(emitted.pick.peak_value), 6)
    row["delay_s"] = round(float(emitted.data_time - emitted.pick.peak_time), 3)
    return row


def run_session(source, engine, sinks: list, detector=None, duration_s: float | None = None,
                idle_flush_s: float | None = None, waveforms=None) -> SessionSummary:
    """Feed the batches of ``source`` (started) to ``engine`` until the source ends, ``duration_s`` wall
    seconds pass or Ctrl-C; every pick goes to each sink and, with a ``detector``
    (:class:`xiaonet.detect.online.OnlineAssociator`), into association, whose event versions
    go to the sinks as they come; the clock of association is the newest sample's data time.
    A source with ``latency_s`` (a replay's simulated transmission delay) has it counted in
    each event's ``after_origin_s``. ``idle_flush_s``: end the record of a station silent this
    long (wall clock; for live sources). ``waveforms``
    (:class:`xiaonet.realtime.waveform_ring.WaveformRing`) gets every packet before association
    runs: the records the magnitude of each event version is measured on."""
    from xiaonet.detect.online import event_json

    summary = SessionSummary()
    started = time.monotonic()

    def emit(picks, data_time: float | None = None) -> None:
        for emitted in picks:
            table_row = emitted.as_row()
            row = stream_row(emitted, table_row)
            summary.picks[row["phase"]] = summary.picks.get(row["phase"], 0) + 1
            for sink in sinks:
                sink.pick(row, table_row)
            if detector is not None:
                detector.add([row])
        for sink in sinks:
            sink.flush(data_time)

    latency_s = float(getattr(source, "latency_s", 0.0) or 0.0)

    def declare(versions) -> None:
        for version in versions:
            summary.events += version.version == 1
            summary.event_versions += 1
            line = json.loads(event_json(version, latency_s))
            for sink in sinks:
                sink.event(line)
        for sink in sinks:
            sink.flush()

    try:
        while True:
            if duration_s is not None and time.monotonic() - started > duration_s:
                break
            batch = source.next_batch(timeout=0.2)
            if batch is None:
                break
            summary.stations.update((p.stats.network, p.stats.station, p.stats.location) for p in batch)
            clock = max(p.stats.endtime for p in batch) if batch else None
            emit(engine.feed_many(batch), float(clock.timestamp) if clock is not None else None)
            if waveforms is not None:
                waveforms.append(batch)
            if detector is not None and batch:
                declare(detector.advance(clock))
            if idle_flush_s is not None:
                emit(engine.flush_idle(idle_flush_s))
    except KeyboardInterrupt:
        summary.interrupted = True
    except BrokenPipeError:  # stdout closed by the reader (e.g. `| head`): stop quietly
        summary.interrupted = True
        sys.stdout = open(os.devnull, "w")
    finally:
        source.stop()
        try:
            emit(engine.flush())
            if detector is not None:
                declare(detector.flush())
        except KeyboardInterrupt:
            summary.interrupted = True
        except BrokenPipeError:
            sys.stdout = open(os.devnull, "w")
        for sink in sinks:
            sink.close()
    summary.elapsed_s = time.monotonic() - started
    return summary
