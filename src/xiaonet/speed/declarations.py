"""What an early-warning user judges, measured (``xiaonet benchmark stream --event-replay`` and
``--false-alerts``): the time from an event's origin to its first declaration and how far
the first and last versions are from the catalog, on a replay of a recorded event; and how
many events are declared on records where no event can be coherent across stations.

The replay is the ``xiaonet stream --replay ... --detect`` session itself
(:func:`xiaonet.realtime.session.run_session`): all stations' packets in data-time order, the
online associator's clock the newest sample, ``latency_s`` of simulated transmission counted.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import obspy


@dataclass
class EventFolder:
    """A recorded event to replay: waveform files, station file, velocity model, catalog origin."""

    files: list[str]
    stations: str
    velocity: str
    origin: obspy.UTCDateTime
    latitude: float
    longitude: float
    depth_km: float


def read_event_folder(folder: str | Path) -> EventFolder:
    """A folder like ``okla_YW_lasso_seisscan``: ``*.mseed``, one ``*.xml`` station file, one
    ``*.tvel`` model and ``event.json`` (``evt0``, ``evla``, ``evlo``, ``evdp``)."""
    folder = Path(folder)
    need = {"event.json": sorted(folder.glob("event.json")), "*.xml": sorted(folder.glob("*.xml")),
            "*.tvel": sorted(folder.glob("*.tvel")), "*.mseed": sorted(folder.glob("*.mseed"))}
    for what, found in need.items():
        if not found:
            raise FileNotFoundError(f"{folder}: no {what} (an event folder holds *.mseed, a StationXML file, "
                                    "a .tvel model and event.json)")
    event = json.loads(need["event.json"][0].read_text())
    try:
        return EventFolder([str(p) for p in need["*.mseed"]], str(need["*.xml"][0]), str(need["*.tvel"][0]),
                           obspy.UTCDateTime(event["evt0"]), float(event["evla"]), float(event["evlo"]),
                           float(event["evdp"]))
    except KeyError as missing:
        raise ValueError(f"{need['event.json'][0]}: no {missing} (expected evt0, evla, evlo, evdp)") from None


class _Collect:
    """A session sink that keeps the event lines and the picks' emission delays."""

    def __init__(self):
        self.events: list[dict] = []
        self.picks: list[dict] = []

    def pick(self, row, table_row=None):
        self.picks.append(row)

    def event(self, line):
        self.events.append(line)

    def flush(self, data_time=None):
        pass

    close = flush


class _ClockedEngine:
    """The engine, noting for each pick the data time of the batch that brought it out (the
    newest packet's end: when the pick really left, resampling context included)."""

    def __init__(self, engine):
        self.engine = engine
        self.emitted_at: dict[tuple, float] = {}

    def _note(self, picks, clock):
        for e in picks:
            key = (e.pick.trace_id.rsplit(".", 1)[0], e.pick.phase, round(float(e.pick.peak_time.timestamp), 3))
            self.emitted_at[key] = clock if clock is not None else float(e.data_time.timestamp)
        return picks

    def feed_many(self, batch):
        clock = max(float(p.stats.endtime.timestamp) for p in batch) if batch else None
        return self._note(self.engine.feed_many(batch), clock)

    def flush(self, *args):
        return self._note(self.engine.flush(*args), None)

    def flush_idle(self, *args):
        return self._note(self.engine.flush_idle(*args), None)


def catalog_event(versions: list[dict], origin, within_s: float = 5.0) -> int | None:
    """The id of the declared event whose first version's origin is nearest the catalog
    ``origin`` (within ``within_s``); the others are false declarations.

    >>> versions = [{"event": 0, "time": "2020-01-01T00:00:02"}, {"event": 1, "time": "2020-01-01T00:00:31"}]
    >>> [catalog_event(versions, obspy.UTCDateTime(t)) for t in ("2020-01-01T00:00:30", "2020-01-01T01:00")]
    [1, None]
    """
    first = {}
    for v in versions:
        first.setdefault(v["event"], abs(obspy.UTCDateTime(v["time"]) - origin))
    near = [(gap, number) for number, gap in first.items() if gap <= within_s]
    return min(near)[1] if near else None


def replay_event(event: EventFolder, picker, config, packet_seconds: float = 1.0, latency_s: float = 0.0,
                 delay_s: float = 20.0, rule=None) -> dict:
    """Replay ``event`` through ``picker`` streamed with ``config`` and the online associator.

    Returns the event lines (``versions``), the picks, and for the declared event that is the
    catalog's (:func:`catalog_event`; ``other_events`` counts the rest):
    seconds from the catalog origin to its first version (``first_s``, latency included),
    the epicentre (km) and origin-time (s) errors of its first and last versions (each
    version's magnitude is on its line). ``magnitude_s``: the wall seconds each version's
    magnitude took (``settle_s``: each measurement between
    versions); ``ring_bytes`` / ``ring_stations``: the raw data kept for them.
    """
    from obspy.geodetics import gps2dist_azimuth

    from xiaonet.detect.online import OnlineAssociator
    from xiaonet.detect.velocity import velocity_model
    from xiaonet.picking.loading import make_streaming_picker
    from xiaonet.realtime.session import run_session
    from xiaonet.realtime.waveform_ring import detection_magnitude
    from xiaonet.stream.packet_sources import ReplaySource

    rate = obspy.read(event.files[0], headonly=True)[0].stats.sampling_rate
    source = ReplaySource(event.files, packet_samples=max(1, int(round(packet_seconds * rate))), latency_s=latency_s,
                          note=lambda message: None)
    source.start()
    engine = _ClockedEngine(make_streaming_picker(picker, config, note=lambda message: None))
    model = velocity_model(event.velocity)
    stations, magnitude, ring = detection_magnitude(event.stations, model, delay_s)
    detector = OnlineAssociator(stations, model, delay_s=delay_s, rule=rule, magnitude=magnitude)
    sink = _Collect()
    run_session(source, engine, [sink], detector, waveforms=ring)
    for row in sink.picks:  # data seconds from the onset to the packet that brought the pick out
        key = (f"{row['network']}.{row['station']}", row["phase"],
               round(obspy.UTCDateTime(row["time"]).timestamp, 3))
        row["emitted_after_s"] = round(engine.emitted_at.get(key, float("nan"))
                                       - obspy.UTCDateTime(row["time"]).timestamp, 3)
    result = {"versions": sink.events, "picks": sink.picks, "associations": detector.runs,
              "magnitude_s": list(getattr(magnitude, "seconds", [])),
              "settle_s": list(getattr(magnitude, "settle_seconds", [])),
              "ring_bytes": ring.nbytes if ring is not None else 0, "ring_stations": ring.n_stations if ring is not None else 0}
    match = catalog_event(sink.events, event.origin)
    result["event"] = match
    ours = [v for v in sink.events if v["event"] == match]
    if not ours:
        result["other_events"] = len({v["event"] for v in sink.events})
        return result

    def errors(version) -> tuple[float, float]:
        km = gps2dist_azimuth(version["latitude"], version["longitude"], event.latitude, event.longitude)[0] / 1e3
        return km, obspy.UTCDateTime(version["time"]) - event.origin

    first, last = ours[0], ours[-1]
    result.update(
        first_s=obspy.UTCDateTime(first["declared_at"]) + latency_s - event.origin,
        first_stations=first["n_stations"], first_epicentre_km=errors(first)[0], first_time_s=errors(first)[1],
        last_epicentre_km=errors(last)[0], last_time_s=errors(last)[1], last_status=last["status"],
        n_versions=len(ours), other_events=len({v["event"] for v in sink.events}) - 1,
    )
    return result


def records_from_index(index_csv: str | Path, pick_tables: list[str], datasets: set[str] | None = None) -> dict:
    """One record per row of the continuous-data index (``file``, ``network``, ``station``,
    ``start``, ``end``), with the picks of ``pick_tables`` (CSV pick tables) that fall in it:
    the input of :func:`xiaonet.detect.false_alerts.cut_segments`. ``datasets``: only rows of
    these (all rows whose station has picks in the tables otherwise)."""
    from xiaonet.data.picktable import read_csv

    rows = []
    for table in pick_tables:
        rows += read_csv(table)
    by_station: dict[str, list[tuple[float, dict]]] = {}
    for row in rows:
        by_station.setdefault(f"{row['network']}.{row['station']}", []).append(
            (obspy.UTCDateTime(row["time"]).timestamp, row))
    records = {}
    with open(index_csv, newline="") as handle:
        for entry in csv.DictReader(handle):
            sid = f"{entry['network']}.{entry['station']}"
            if datasets is not None and entry["dataset"] not in datasets:
                continue
            if datasets is None and sid not in by_station:
                continue
            start, end = obspy.UTCDateTime(entry["start"]).timestamp, obspy.UTCDateTime(entry["end"]).timestamp
            mine = [row for t, row in by_station.get(sid, []) if start <= t < end]
            records[entry["file"]] = (mine, start, end)
    return records


def plot_alert_timeline(event: EventFolder, result: dict, path: str | Path, title: str = "",
                        latency_s: float = 0.0) -> None:
    """The alert timeline of one replay: each station's P onset (the pick) and the moment its
    pick was emitted, by epicentral distance, against seconds after the catalog origin, with
    every declared version of the first event as a vertical line."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from obspy.geodetics import gps2dist_azimuth

    from xiaonet.detect.stations import read_stations

    stations = read_stations(event.stations)
    where = stations.index()
    onset, emitted, distance = [], [], []
    for pick in result["picks"]:
        sid = f"{pick['network']}.{pick['station']}"
        if pick["phase"] != "P" or sid not in where:
            continue
        i = where[sid]
        t = obspy.UTCDateTime(pick["time"]) - event.origin
        if not -5.0 < t < 30.0:
            continue
        onset.append(t)
        emitted.append(t + pick.get("emitted_after_s", pick["delay_s"]) + latency_s)
        distance.append(gps2dist_azimuth(stations.latitude[i], stations.longitude[i], event.latitude,
                                         event.longitude)[0] / 1e3)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter(onset, distance, s=6, color="tab:blue", label="P onset (the pick's time)")
    ax.scatter(emitted, distance, s=6, color="tab:orange", label="P pick out (its packet's end + latency)")
    ax.axvline(0.0, color="black", lw=1.2, label="catalog origin")
    first_event = result.get("event", result["versions"][0]["event"] if result["versions"] else None)
    versions = [(obspy.UTCDateTime(v["declared_at"]) + latency_s - event.origin, v)
                for v in result["versions"] if v["event"] == first_event]
    shown = [(at, v) for at, v in versions if at <= 20.0]
    right = max([5.0] + [e + 1.0 for e in emitted if e < 20.0] + [at + 3.0 for at, _ in shown])
    colours = {"new": "tab:red", "update": "tab:purple", "final": "tab:green", "withdrawn": "tab:gray"}
    top = max(distance or [1.0])
    for at, v in shown:
        ax.axvline(at, color=colours.get(v["status"], "tab:red"), lw=1.0, ls="--")
        ax.text(at, top * (0.97 - 0.07 * (v["version"] - 1)),
                f" v{v['version']} {v['status']}: {at:.1f} s, {v['n_stations']} st.", fontsize=7, va="top")
    later = [f"v{v['version']} {v['status']} at {at:.1f} s" for at, v in versions if at > 20.0]
    if later:
        title = f"{title or 'alert timeline'} (then {', '.join(later)})"
    ax.set_xlabel("seconds after the catalog origin")
    ax.set_ylabel("epicentral distance (km)")
    ax.set_xlim(-1.0, right)
    ax.set_title(title or "alert timeline", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
