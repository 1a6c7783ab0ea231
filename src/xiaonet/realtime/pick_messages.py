"""Picks on the wire: what one MQTT message of picks holds, written and read.

A message is one JSON object. With one pick it is the pick itself; with several, the fields
every pick shares (station, channel, picker, ...) are said once and ``picks`` lists what differs
(phase, time, probability, ``seq``, ...)::

    {"network":"O2","station":"WILZ","channel":"EH?","picker":"xiaonet-m","publisher":"wilz","run":"q3Xk9A",
     "software":"xiaonet 0.1.0","picks":[{"phase":"P","time":"2024-02-03T05:19:51.655Z",...,"seq":7},
                                         {"phase":"S","time":"2024-02-03T05:19:53.120Z",...,"seq":8}]}

Each pick is the streamed pick row (every field, so fields added to pick rows flow through) plus
``publisher``, ``run`` (drawn at random when the publisher starts: a publisher restarted under
the same name counts ``seq`` from 0 again, as a new run), ``seq`` (the run's counter: with
``publisher`` and ``run``, the pick's id) and ``software`` (``xiaonet VERSION``; ``picker`` names the model). Digits that mean nothing stay
home: times to the millisecond (a tenth of a 100 Hz sample; the JSON line has microseconds),
the probability to 4 digits (as the pick table); empty fields (``location`` "", a quality field
not measured) are left out and read back as empty.
"""

from __future__ import annotations

import json
import secrets

import obspy

#: Fields a pick must have once read (those of a pick-table row, and who sent it).
REQUIRED_FIELDS = ("network", "station", "phase", "time", "publisher", "run", "seq")
#: Random bytes of a run id (6 characters on the wire): two runs of one publisher share an id
#: with odds of 1 in 4 billion.
RUN_ID_BYTES = 4
#: What a field left out (empty) reads back as.
EMPTY_FIELDS = {"location": "", "channel": "", "probability": "", "picker": "", "uncertainty_s": None,
                "snr_db": None}
#: Fields that are times (ISO 8601, UTC), sent to the millisecond.
TIME_FIELDS = ("time", "emitted_at")
PROBABILITY_DIGITS = 4


class MalformedPick(ValueError):
    """A message that is not one of :func:`pick_message`."""


def software_name() -> str:
    from xiaonet import __version__

    return f"xiaonet {__version__}"


def new_run_id() -> str:
    """A publisher run's id: a new one each time a publisher starts, so its ``seq`` from 0 again
    is a new sequence to a subscriber that still remembers the last run's."""
    return secrets.token_urlsafe(RUN_ID_BYTES)


def millisecond_time(value: str) -> str:
    """An ISO time to the millisecond.

    >>> millisecond_time("2024-02-03T05:19:51.654999Z")
    '2024-02-03T05:19:51.655Z'
    """
    t = obspy.UTCDateTime(value)
    t = obspy.UTCDateTime(ns=int(round(t.ns, -6)))
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def wire_pick(row: dict, seq: int) -> dict:
    """One pick as it travels: the row with ``seq``, meaningless digits and empty fields left out."""
    out = {}
    for key, value in row.items():
        if value is None or value == "":
            continue
        if key in TIME_FIELDS:
            value = millisecond_time(value)
        elif key == "probability":
            value = round(float(value), PROBABILITY_DIGITS)
        out[key] = value
    out["seq"] = int(seq)
    return out


def pick_message(picks: list[dict], publisher: str, run: str, software: str | None = None) -> bytes:
    """One message of ``picks`` (from :func:`wire_pick`, at least one) of ``publisher``'s ``run``:
    a single pick as it is, several with their shared fields said once."""
    envelope = {"publisher": publisher, "run": run, "software": software or software_name()}
    if len(picks) == 1:
        return json.dumps({**picks[0], **envelope}, separators=(",", ":")).encode()
    first, rest = picks[0], picks[1:]
    shared = {k: v for k, v in first.items() if k != "seq" and all(k in p and p[k] == v for p in rest)}
    items = [{k: v for k, v in p.items() if k not in shared} for p in picks]
    return json.dumps({**shared, **envelope, "picks": items}, separators=(",", ":")).encode()


def decode_picks(payload: bytes) -> list[dict]:
    """The picks of a message (a single pick or several) as rows, each with ``_t`` its time in
    epoch seconds; a message with any pick not readable raises :class:`MalformedPick` (it is
    skipped whole)."""
    try:
        message = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedPick(f"not JSON ({error})") from None
    if not isinstance(message, dict):
        raise MalformedPick("not a JSON object")
    if "picks" not in message:
        return [_pick_row(message)]
    items = message.pop("picks")
    if not isinstance(items, list) or not items or not all(isinstance(p, dict) for p in items):
        raise MalformedPick("'picks' must be a non-empty list of JSON objects")
    rows = []
    for i, item in enumerate(items):
        try:
            rows.append(_pick_row({**message, **item}))
        except MalformedPick as error:
            raise MalformedPick(f"pick {i} of {len(items)}: {error}") from None
    return rows


def _pick_row(row: dict) -> dict:
    if "publisher" in row and "run" not in row:
        raise MalformedPick("no 'run' id: a publisher older than run ids (its seqs would be taken for "
                            "an earlier run's after a restart); update xiaonet on it")
    missing = [k for k in REQUIRED_FIELDS if k not in row]
    if missing:
        raise MalformedPick(f"missing {missing}")
    if str(row["phase"]).upper() not in ("P", "S"):
        raise MalformedPick(f"phase must be P or S, got {row['phase']!r}")
    try:
        row["_t"] = obspy.UTCDateTime(str(row["time"])).timestamp
        row["seq"] = int(row["seq"])
    except (ValueError, TypeError) as error:
        raise MalformedPick(f"bad time or seq ({error})") from None
    row["phase"] = str(row["phase"]).upper()
    for key, empty in EMPTY_FIELDS.items():
        row.setdefault(key, empty)
    return row
