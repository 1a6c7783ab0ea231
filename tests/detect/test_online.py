"""Early-warning declarations (`xiaonet stream --detect`): a first version before all picks
are in, versions with the same id that only grow, a final (or withdrawn) one, never a silent
change; replay in data-time order with a simulated transmission latency; no declaration on
records shifted so that nothing can be coherent across stations."""

from __future__ import annotations

import json

import numpy as np
import obspy
import pytest

pytest.importorskip("pyocto", reason="association needs pyocto (pip install 'xiaonet[detect]')")

from xiaonet.detect.association import associate  # noqa: E402
from xiaonet.detect.false_alerts import cut_segments, measure_false_declarations, replay_picks  # noqa: E402
from xiaonet.detect.online import OnlineAssociator, event_json  # noqa: E402
from xiaonet.detect.synthetic import START, random_events, synthetic_network, synthetic_picks  # noqa: E402
from xiaonet.detect.velocity import HomogeneousModel  # noqa: E402

MODEL = HomogeneousModel(6.0, 3.5)


def timestamps(rows):
    return [obspy.UTCDateTime(r["time"]).timestamp for r in rows]


@pytest.fixture(scope="module")
def scene():
    """Two events 40 s apart on 20 stations in 40 km, 5 % missed picks, 10 false picks."""
    stations = synthetic_network(20, extent_km=40.0, seed=3)
    events = random_events(2, duration_s=80.0, extent_km=40.0, seed=3)
    rows = synthetic_picks(stations, events, MODEL, seed=3, miss=0.05, false_picks=10, duration_s=120.0)
    return stations, events, rows


def stream_lines(stations, rows, **options):
    """The JSON lines of every version, with the clock of each, picks in 0.5 s steps."""
    online = OnlineAssociator(stations, MODEL, interval_s=0.5, **options)
    lines, times, i = [], timestamps(rows), 0
    clock = times[0]
    while clock < times[-1] + 30.0:
        clock += 0.5
        batch = []
        while i < len(rows) and times[i] <= clock:
            batch.append(rows[i])
            i += 1
        online.add(batch)
        lines += [(json.loads(event_json(v)), clock) for v in online.advance(clock)]
    lines += [(json.loads(event_json(v)), clock) for v in online.flush()]
    return lines, online


def test_first_version_before_the_last_pick_then_updates_then_final(scene):
    stations, events, rows = scene
    lines, online = stream_lines(stations, rows, delay_s=10.0)
    by_event = {}
    for line, at in lines:
        by_event.setdefault(line["event"], []).append((line, at))
    assert sorted(by_event) == [0, 1]
    times = timestamps(rows)
    for (number, versions), truth in zip(sorted(by_event.items()), events):
        first, _ = versions[0]
        assert first["version"] == 1 and first["status"] == "new"
        assert first["n_p"] >= 5
        # declared from the first picks: well before the last pick of the event arrived
        last_pick = max(t for t in times if truth.time.timestamp < t < truth.time.timestamp + 20.0)
        assert obspy.UTCDateTime(first["declared_at"]).timestamp < last_pick - 3.0
        assert abs(obspy.UTCDateTime(first["time"]) - truth.time) < 1.0
        assert first["after_origin_s"] == pytest.approx(
            obspy.UTCDateTime(first["declared_at"]) - obspy.UTCDateTime(first["time"]), abs=2e-3)
        assert [v["version"] for v, _ in versions] == list(range(1, len(versions) + 1))
        assert [v["status"] for v, _ in versions[1:-1]] == ["update"] * (len(versions) - 2)
        assert versions[-1][0]["status"] == "final" and len(versions) >= 3
        assert all(v["n_picks"] >= w["n_picks"] - 2 for (w, _), (v, _) in zip(versions, versions[1:]))
        # an update only when something changed; the final version repeats the last update
        for (a, _), (b, _) in zip(versions[:-2], versions[1:-1]):
            assert (a["n_picks"], a["latitude"], a["time"]) != (b["n_picks"], b["latitude"], b["time"])
        final = versions[-1][0]
        assert 10.0 <= final["delay_s"] <= 10.0 + 0.5 + 0.5
    # what was emitted is still what each event's history holds: nothing changed afterwards
    for tracked in online.declared:
        for version in tracked.versions:
            emitted = next(line for line, _ in lines if line["event"] == version.event_id
                           and line["version"] == version.version)
            again = json.loads(event_json(version))
            assert {k: v for k, v in again.items() if k != "emitted_at"} == \
                {k: v for k, v in emitted.items() if k != "emitted_at"}
    # the final versions are the events the offline associator finds with the same settings
    offline = associate(rows, stations, MODEL, online.config)
    finals = [v[-1][0] for _, v in sorted(by_event.items())]
    assert len(offline.events) == 2
    for final, reference in zip(finals, offline.events):
        assert abs(obspy.UTCDateTime(final["time"]) - reference.time) < 0.05
        assert abs(final["n_picks"] - len(reference.pick_rows)) <= 2


def test_a_coincidence_that_falls_apart_is_withdrawn_on_its_own_line():
    """P picks at six stations near a point (every fifth by distance) fit an event; once the
    other stations have picks too (they are live), six of the 26 stations within reach is below
    the station fraction (0.25): the declared event is withdrawn."""
    stations = synthetic_network(40, extent_km=40.0, seed=5)
    event = random_events(1, duration_s=20.0, extent_km=10.0, seed=5)[0]
    rows = [r for r in synthetic_picks(stations, [event], MODEL, seed=5, jitter_s=0.0) if r["phase"] == "P"]
    rows = sorted(rows, key=lambda r: r["time"])[0:26:5]
    rng = np.random.default_rng(0)
    near = {r["station"] for r in rows}
    noise = [dict(rows[0], station=sid.split(".")[1], phase="S",
                  time=(event.time + 30.0 + float(rng.uniform(0, 20.0))).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
             for sid in stations.ids if sid.split(".")[1] not in near]
    lines, _ = stream_lines(stations, sorted(rows + noise, key=lambda r: r["time"]), delay_s=60.0)
    first_event = [line for line, _ in lines if line["event"] == 0]
    statuses = [line["status"] for line in first_event]
    assert statuses[0] == "new" and statuses[-1] == "withdrawn" and "final" not in statuses
    assert [line["version"] for line in first_event] == list(range(1, len(first_event) + 1))
    # the withdrawal names what it takes back: the latest version's origin
    assert first_event[-1]["time"] == first_event[-2]["time"]


def test_shifted_records_declare_nothing_where_the_unshifted_declare_the_events(scene):
    """The scene's picks declare its two events (first test); each station's record shifted by
    its own offset, the same picks declare nothing. (Ten minutes per record: squeezed into three,
    the same picks can make a chance coincidence of five P picks on 20 stations.)"""
    stations, events, rows = scene
    start, end = START.timestamp - 10.0, START.timestamp + 590.0
    records = {sid: ([r for r in rows if f"{r['network']}.{r['station']}" == sid], start, end)
               for sid in stations.ids}
    segments = cut_segments(records, segment_s=600.0)
    assert len(segments) == 20 and sum(len(s.offsets) for s in segments) == len(rows)
    result = measure_false_declarations(segments, stations, MODEL, realisations=1, seed=1, delay_s=10.0)
    assert result.station_hours == pytest.approx(20 * 600 / 3600)
    assert result.picks == len(rows) and result.declared == 0


def two_station_files(tmp_path):
    """Two stations' 3-component records, the second starting 7.3 s later, as files."""
    paths = []
    for i, (name, delay) in enumerate([("AAA", 0.0), ("BBB", 7.3)]):
        stream = obspy.read()  # ObsPy's example: 3 channels, 100 Hz, 30 s
        for trace in stream:
            trace.stats.station = name
            trace.stats.starttime += delay
        paths.append(str(tmp_path / f"{name}.mseed"))
        stream.write(paths[-1], format="MSEED")
    return paths


def test_replay_interleaves_all_stations_in_data_time_order_and_delays_them_by_the_latency(tmp_path,
                                                                                            monkeypatch):
    import xiaonet.stream.packet_sources as sources
    from xiaonet.stream.packet_sources import ReplaySource

    paths = two_station_files(tmp_path)
    source = ReplaySource(paths, packet_samples=100)
    source.start()
    packets = []
    while (batch := source.next_batch()) is not None:
        packets += batch
    ends = [p.stats.endtime for p in packets]
    stations = [p.stats.station for p in packets]
    assert ends == sorted(ends)
    # the two stations alternate through their common 22.7 s (1 s packets), not one after the other
    assert sum(a != b for a, b in zip(stations, stations[1:])) >= 40

    clock = {"now": 1000.0}
    monkeypatch.setattr(sources.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(sources.time, "sleep", lambda seconds: clock.__setitem__("now", clock["now"] + seconds))
    source = ReplaySource(paths, speed=1.0, packet_samples=100, latency_s=2.5)
    source.start()
    first_end = ends[0]
    while (batch := source.next_batch(timeout=0.2)) is not None:
        for packet in batch:  # handed out when recorded + 2.5 s on the replay clock, not before
            due = packet.stats.endtime - first_end + 2.5
            assert due - 1e-6 <= clock["now"] - 1000.0 <= due + 0.2 + 1e-6
    with pytest.raises(ValueError, match="--latency"):
        ReplaySource(paths, latency_s=-1.0).start()


def test_the_session_counts_the_replay_latency_in_after_origin(scene):
    """run_session's event lines: declared_at is the newest data time, after_origin_s adds the latency."""
    from tests.realtime.session_fakes import EventLines, PickTableEngine
    from xiaonet.realtime.session import run_session

    stations, events, rows = scene
    times = timestamps(rows)

    class Packet:  # what the loop reads of a packet: its ids and end time
        def __init__(self, end):
            self.stats = type("Stats", (), {"network": "XX", "station": "S000", "location": "",
                                            "endtime": obspy.UTCDateTime(end)})

    class Source:
        latency_s = 3.0

        def __init__(self):
            self.clock = times[0]

        def next_batch(self, timeout=0.2):
            self.clock += 1.0
            return [Packet(self.clock)] if self.clock < times[-1] + 15.0 else None

        def stop(self):
            pass

    source, sink = Source(), EventLines()
    summary = run_session(source, PickTableEngine(rows, delay_s=0.0), [sink],
                          OnlineAssociator(stations, MODEL, delay_s=10.0))
    assert summary.events == 2 and summary.event_versions == len(sink.events)
    for line in sink.events:
        declared = obspy.UTCDateTime(line["declared_at"])
        assert line["after_origin_s"] == pytest.approx(declared + 3.0 - obspy.UTCDateTime(line["time"]), abs=2e-3)
        assert declared.timestamp <= max(times) + 15.0 and line["magnitude"] is None


def test_records_from_the_index_hold_their_own_picks_and_negative_latency_is_refused(tmp_path, capsys):
    from xiaonet.cli import main
    from xiaonet.data.picktable import write_csv
    from xiaonet.speed.declarations import records_from_index

    index = tmp_path / "index.csv"
    index.write_text("dataset,file,network,station,start,end\n"
                     "a,a/XX.AAA.1.mseed,XX,AAA,2020-01-01T00:00:00Z,2020-01-01T01:00:00Z\n"
                     "a,a/XX.AAA.2.mseed,XX,AAA,2020-02-01T00:00:00Z,2020-02-01T02:00:00Z\n"
                     "b,b/YY.BBB.mseed,YY,BBB,2020-01-01T00:00:00Z,2020-01-01T01:00:00Z\n")
    row = {"network": "XX", "station": "AAA", "location": "", "phase": "P", "probability": "0.9", "picker": "x"}
    write_csv([dict(row, time="2020-01-01T00:10:00.000000Z"), dict(row, time="2020-02-01T01:30:00.000000Z"),
               dict(row, time="2020-02-01T01:40:00.000000Z")], tmp_path / "picks.csv")
    records = records_from_index(index, [str(tmp_path / "picks.csv")])
    assert sorted(records) == ["a/XX.AAA.1.mseed", "a/XX.AAA.2.mseed"]  # BBB has no picks: not in
    assert [len(records[k][0]) for k in sorted(records)] == [1, 2]
    segments = cut_segments(records)
    assert [s.seconds for s in segments] == [3600.0, 3600.0, 3600.0]
    assert [len(s.offsets) for s in segments] == [1, 0, 2]
    assert records_from_index(index, [str(tmp_path / "picks.csv")], datasets={"b"}) == {
        "b/YY.BBB.mseed": ([], obspy.UTCDateTime("2020-01-01").timestamp, obspy.UTCDateTime("2020-01-01T01").timestamp)}

    paths = two_station_files(tmp_path)
    assert main(["stream", "--replay", *paths, "--latency", "-1"]) == 2
    assert "--latency must be zero or positive" in capsys.readouterr().err


def test_alert_timeline_figure_is_written(tmp_path):
    from xiaonet.speed.declarations import EventFolder, plot_alert_timeline

    stations = synthetic_network(6, extent_km=20.0, seed=2)
    path = tmp_path / "stations.csv"
    path.write_text("id,latitude,longitude,elevation\n" + "".join(
        f"{sid},{lat},{lon},{el}\n" for sid, lat, lon, el in
        zip(stations.ids, stations.latitude, stations.longitude, stations.elevation)))
    origin = START + 10.0
    event = EventFolder([], str(path), "6.0,3.5", origin, float(stations.latitude[0]), float(stations.longitude[0]),
                        3.0)
    picks = [{"network": "XX", "station": sid.split(".")[1], "phase": "P", "time": str(origin + 1.0 + i * 0.3),
              "delay_s": 1.2} for i, sid in enumerate(stations.ids)]
    versions = [{"event": 0, "version": 1, "status": "new", "declared_at": str(origin + 2.8), "n_stations": 5},
                {"event": 0, "version": 2, "status": "final", "declared_at": str(origin + 25.0), "n_stations": 6}]
    plot_alert_timeline(event, {"picks": picks, "versions": versions}, tmp_path / "timeline.png", latency_s=0.5)
    assert (tmp_path / "timeline.png").stat().st_size > 10_000


def test_the_travel_time_table_of_a_1d_model_is_built_once_not_every_run(scene, monkeypatch, tmp_path):
    import xiaonet.detect.association as association
    from xiaonet.detect.velocity import read_velocity_model

    (tmp_path / "m.tvel").write_text("m - P\nm - S\n 0.0 5.0 2.9 2.6\n 5.0 6.0 3.5 2.7\n40.0 6.5 3.7 2.8\n"
                                     "40.0 8.0 4.5 3.3\n200.0 8.1 4.6 3.3\n")
    layered = read_velocity_model(str(tmp_path / "m.tvel"))
    stations, events, _ = scene
    rows = synthetic_picks(stations, events, layered, seed=4, miss=0.05)
    built = []
    original = association._pyocto_model
    monkeypatch.setattr(association, "_pyocto_model", lambda *a: built.append(a[2]) or original(*a))
    online = OnlineAssociator(stations, layered, delay_s=10.0)
    versions = replay_picks(rows, online)
    assert sorted({v.event_id for v in versions}) == [0, 1] and online.runs >= 10
    assert len(built) == 1  # sized for the whole network at once


def test_an_event_outside_the_network_is_no_alert_but_is_declared_final_once():
    """Epicentre 16 km east of the centre of a 20 km network: every station picks it, but from one side
    (gap > 180 deg), so no early declaration; once its picks are in, one final line."""
    from xiaonet.detect.synthetic import SyntheticEvent

    stations = synthetic_network(12, extent_km=20.0, seed=6)
    event = SyntheticEvent(START + 5.0, 16.0, 0.0, 8.0)
    rows = synthetic_picks(stations, [event], MODEL, seed=6, jitter_s=0.02)
    lines, _ = stream_lines(stations, rows, delay_s=10.0)
    assert [(line["version"], line["status"]) for line, _ in lines] == [(1, "final")]
    assert lines[0][0]["azimuthal_gap_deg"] > 180.0 and lines[0][0]["n_s"] >= 2


def test_runs_that_cannot_find_an_event_are_left_out_without_changing_any_line(monkeypatch):
    """Two events among chance picks on a sparse 100 km network: the versions streamed
    with the P-pick screen (runs without n_p_picks P picks within the network's P span are
    left out) are the versions of running association on every new pick, and many runs are
    left out."""
    stations = synthetic_network(12, extent_km=100.0, seed=11)
    events = random_events(2, duration_s=100.0, extent_km=100.0, seed=11)
    rows = synthetic_picks(stations, events, MODEL, seed=11, miss=0.05, false_picks=40, duration_s=200.0)

    def strip(lines):
        return [({k: v for k, v in line.items() if k != "emitted_at"}, at) for line, at in lines]

    screened, online = stream_lines(stations, rows, delay_s=10.0)
    assert online.skipped_runs >= 15 and online.runs < 60
    assert 100.0 / 6.0 < online.p_span_s < 1.1 * 100.0 * 2 ** 0.5 / 6.0 + 1.0
    monkeypatch.setattr(OnlineAssociator, "_could_find_event", lambda self: True)
    every, unscreened = stream_lines(stations, rows, delay_s=10.0)
    assert unscreened.skipped_runs == 0
    assert strip(screened) == strip(every)
    assert [line["status"] for line, _ in screened if line["event"] == 0][0] == "new"
