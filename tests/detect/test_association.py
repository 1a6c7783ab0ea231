"""`xiaonet detect`: velocity models, stations, association and location with PyOcto on
synthetic pick tables made from known events, the catalog outputs, and (with ../shared)
the LASSO M2.5 from a subset of the nodes picked by the default student."""

from __future__ import annotations

import csv
import json

import numpy as np
import obspy
import pytest

pytest.importorskip("pyocto", reason="xiaonet detect needs pyocto (pip install 'xiaonet[detect]')")

from obspy.geodetics import gps2dist_azimuth  # noqa: E402

from xiaonet.cli import main  # noqa: E402
from xiaonet.detect.association import AssociationConfig, associate  # noqa: E402
from xiaonet.detect.calibration import ellipse_coverage, epicentre_offset_km, inside_ellipse  # noqa: E402
from xiaonet.detect.stations import StationError, read_stations  # noqa: E402
from xiaonet.detect.synthetic import (START, random_events, random_times, synthetic_network,  # noqa: E402
                                     synthetic_picks)
from xiaonet.detect.velocity import (HomogeneousModel, LayeredModel, VelocityModelError,  # noqa: E402
                                     read_velocity_model, travel_time_table)
from xiaonet.data.picktable import PICK_COLUMNS, write_csv  # noqa: E402

MODEL = HomogeneousModel(6.0, 3.5)
TVEL = """test - P
test - S
  0.0  4.0  2.3  2.5
  2.0  4.0  2.3  2.5
  2.0  6.0  3.5  2.7
 30.0  6.5  3.7  2.8
 30.0  8.0  4.5  3.3
200.0  8.1  4.6  3.3
"""


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_stations_csv(stations, path):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "latitude", "longitude", "elevation"])
        for row in zip(stations.ids, stations.latitude, stations.longitude, stations.elevation):
            writer.writerow(row)


@pytest.fixture(scope="module")
def scene():
    """Two events 40 s apart on 15 stations, 0.05 s pick jitter, 5 % missed picks, 10 false picks."""
    stations = synthetic_network(15, extent_km=40.0, seed=3)
    events = random_events(2, duration_s=80.0, extent_km=40.0, seed=3)
    rows = synthetic_picks(stations, events, MODEL, seed=3, miss=0.05, false_picks=10, duration_s=120.0)
    return stations, events, rows


def test_layered_table_matches_a_half_space_and_reads_tvel(tmp_path):
    half_space = LayeredModel(np.array([0.0]), np.array([5.0]), np.array([3.0]))
    table = travel_time_table(half_space, delta=0.5, xdist=30.0, zdist=10.0)
    x, z = np.meshgrid(np.arange(0, 30.5, 0.5), np.arange(0, 10.5, 0.5), indexing="ij")
    assert np.allclose(table.p_times, np.hypot(x, z) / 5.0, atol=1e-3)
    assert np.allclose(table.s_times, np.hypot(x, z) / 3.0, atol=1e-3)
    path = tmp_path / "m.tvel"
    path.write_text(TVEL)
    model = read_velocity_model(path)
    assert model.depth[:3].tolist() == [0.0, 2.0, 2.5] and model.vp[0] == 4.0
    layered = travel_time_table(model, delta=0.5, xdist=60.0, zdist=20.0)
    assert np.all(np.diff(layered.p_times, axis=0) > 0) and np.all(layered.s_times > layered.p_times - 1e-9)
    bad = tmp_path / "bad.csv"
    bad.write_text("depth,vp\n0,5\n")
    with pytest.raises(VelocityModelError, match="bad.csv: expected"):
        read_velocity_model(bad)


def test_stations_from_csv_and_stationxml(tmp_path):
    from obspy.core.inventory import Inventory, Network, Station

    inventory = Inventory(networks=[Network("XX", stations=[
        Station("A", 36.6, -97.7, 320.0), Station("B", 36.7, -97.6, 310.0)])], source="test")
    inventory.write(str(tmp_path / "s.xml"), format="STATIONXML")
    table = read_stations(tmp_path / "s.xml")
    assert table.ids == ["XX.A", "XX.B"] and table.elevation.tolist() == [320.0, 310.0]
    (tmp_path / "s.csv").write_text("id,latitude,longitude,elevation\nXX.A.00,36.6,-97.7,320\n")
    assert read_stations(tmp_path / "s.csv").ids == ["XX.A"]
    (tmp_path / "bad.csv").write_text("name,lat\nA,1\n")
    with pytest.raises(StationError, match="bad.csv: expected a station CSV with columns"):
        read_stations(tmp_path / "bad.csv")


@pytest.mark.parametrize("relocate", [True, False])
def test_synthetic_events_are_found_and_located(scene, relocate):
    stations, events, rows = scene
    detection = associate(rows, stations, MODEL, AssociationConfig(relocate=relocate))
    assert len(detection.events) == 2
    for found, truth in zip(detection.events, events):
        km = gps2dist_azimuth(found.latitude, found.longitude, truth.latitude, truth.longitude)[0] / 1000
        assert km < (0.5 if relocate else 2.0) and abs(found.time - truth.time) < (0.1 if relocate else 0.5)
        assert abs(found.depth_km - truth.depth_km) < (1.5 if relocate else 4.0)
        assert found.n_p >= 12 and found.n_s >= 12 and 0 < found.errors.major_km < 3.0
        if relocate:  # the stated 90 % ellipse holds the truth (0.05 s pick jitter, a perfect model)
            assert inside_ellipse(found.errors, *epicentre_offset_km(found, truth.latitude, truth.longitude))
    assigned = detection.picks[detection.picks["event"] >= 0]
    assert len(assigned) >= 0.95 * (len(rows) - 10)
    assert assigned["residual"].abs().max() <= 0.5 + 1e-6


def test_random_times_at_the_same_stations_give_no_event(scene):
    stations, _, rows = scene
    shuffled = random_times(rows, START, START + 120.0, seed=0)
    assert [r["station"] for r in shuffled] == [r["station"] for r in rows]
    assert associate(shuffled, stations, MODEL).events == []


def test_cli_writes_quakeml_events_and_assignments(scene, tmp_path, capsys):
    stations, events, rows = scene
    write_csv(rows, tmp_path / "picks.csv")
    write_stations_csv(stations, tmp_path / "stations.csv")
    (tmp_path / "m.tvel").write_text(TVEL)
    truth = events[0]
    (tmp_path / "ref.json").write_text(json.dumps({"evla": truth.latitude, "evlo": truth.longitude,
                                                   "evdp": truth.depth_km, "evt0": str(truth.time)}))
    code = main(["detect", str(tmp_path / "picks.csv"), "--stations", str(tmp_path / "stations.csv"),
                 "--velocity", "6.0,3.5", "--out", str(tmp_path / "cat.xml"), "--csv", str(tmp_path / "ev.csv"),
                 "--assignments", str(tmp_path / "as.csv"), "--plot", str(tmp_path / "maps"),
                 "--reference", str(tmp_path / "ref.json")])
    assert code == 0
    err = capsys.readouterr().err
    assert "2 event(s) from" in err and "vs reference:" in err
    assert "located with P (" in err and "(inside the 90% ellipse)" in err
    from obspy.io.quakeml.core import _validate

    assert _validate(str(tmp_path / "cat.xml"))  # against the QuakeML 1.2 schema
    catalog = obspy.read_events(str(tmp_path / "cat.xml"))
    assert len(catalog) == 2
    for event in catalog:
        origin = event.preferred_origin()
        assert origin.time_errors.uncertainty > 0 and origin.latitude_errors.uncertainty > 0
        assert origin.depth_errors.uncertainty > 0 and origin.origin_uncertainty.max_horizontal_uncertainty > 0
        assert origin.origin_uncertainty.confidence_level == 90.0
        assert {a.phase: a.time_weight for a in origin.arrivals} == {"P": 1.0, "S": 0.0}  # located with P
        pick_ids = {str(p.resource_id) for p in event.picks}
        assert len(origin.arrivals) == len(event.picks) >= 24
        assert all(str(a.pick_id) in pick_ids for a in origin.arrivals)
        assert {p.phase_hint for p in event.picks} == {"P", "S"}
        assert {str(p.method_id) for p in event.picks} == {"smi:xiaonet/picker/synthetic"}
    events_csv = read_rows(tmp_path / "ev.csv")
    assert [int(r["event"]) for r in events_csv] == [0, 1]
    assignments = read_rows(tmp_path / "as.csv")
    assert len(assignments) == len(rows) and set(PICK_COLUMNS) <= set(assignments[0])
    per_event = {e: sum(r["event"] == str(e) for r in assignments) for e in (0, 1)}
    assert per_event == {int(r["event"]): int(r["n_picks"]) for r in events_csv}
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["event_0000.png", "event_0001.png",
                                                                "reference_comparison.png"]
    # the same from a 1D model file
    assert main(["detect", str(tmp_path / "picks.csv"), "--stations", str(tmp_path / "stations.csv"),
                 "--velocity", str(tmp_path / "m.tvel"), "--csv", str(tmp_path / "ev1d.csv")]) == 0
    assert len(read_rows(tmp_path / "ev1d.csv")) >= 1


def test_picks_at_unknown_stations_are_listed_counted_and_the_rest_associated(scene, tmp_path, capsys):
    stations, _, rows = scene
    known = stations.subset(stations.ids[:-2])  # two stations lost from the station file
    write_csv(rows, tmp_path / "picks.csv")
    write_stations_csv(known, tmp_path / "stations.csv")
    code = main(["detect", str(tmp_path / "picks.csv"), "--stations", str(tmp_path / "stations.csv"),
                 "--csv", str(tmp_path / "ev.csv"), "--velocity", "6.0,3.5"])
    assert code == 1
    err = capsys.readouterr().err
    lost = [r for r in rows if f"{r['network']}.{r['station']}" in stations.ids[-2:]]
    assert f"error: {len(lost)} pick(s) at 2 station(s) not in" in err
    assert all(sid in err for sid in stations.ids[-2:])
    assert len(read_rows(tmp_path / "ev.csv")) == 2


def test_bad_inputs_are_one_line_errors(scene, tmp_path, capsys):
    stations, _, rows = scene
    write_stations_csv(stations, tmp_path / "stations.csv")
    (tmp_path / "picks.csv").write_text("a,b\n1,2\n")
    assert main(["detect", str(tmp_path / "picks.csv"), "--stations", str(tmp_path / "stations.csv")]) == 2
    assert "not a XiaoNet pick table" in capsys.readouterr().err
    write_csv([dict(rows[0], time="yesterday")], tmp_path / "bad_time.csv")
    assert main(["detect", str(tmp_path / "bad_time.csv"), "--stations", str(tmp_path / "stations.csv")]) == 2
    assert "pick 1: time must be ISO 8601" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "picks.csv"), "--stations", str(tmp_path / "none.xml")]) == 2
    assert "none.xml: station file not found" in capsys.readouterr().err


def test_lasso_subset_with_the_student(shared_dir, tmp_path, capsys):
    """24 LASSO nodes picked by xiaonet-s through `detect FILES`: the M2.5, near the catalog."""
    folder = shared_dir / "data" / "continuous" / "okla_YW_lasso_seisscan"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    files = sorted(folder.glob("*.mseed"))[::15]
    reference = json.loads((folder / "event.json").read_text())
    code = main(["detect", *map(str, files), "--picker", "xiaonet-s", "--stations", str(folder / "station-okl.xml"),
                 "--velocity", str(folder / "okl.tvel"), "--csv", str(tmp_path / "ev.csv"),
                 "--picks-out", str(tmp_path / "picks.csv"), "--no-progress"])
    assert code == 0
    events = read_rows(tmp_path / "ev.csv")
    assert len(events) == 1, events
    event = events[0]
    km = gps2dist_azimuth(float(event["latitude"]), float(event["longitude"]), reference["evla"],
                          reference["evlo"])[0] / 1000
    assert km < 2.0 and abs(obspy.UTCDateTime(event["time"]) - obspy.UTCDateTime(reference["evt0"])) < 0.5
    assert int(event["n_stations"]) >= 0.8 * len(files)


def test_online_associator_finals_are_the_offline_events_with_bounded_delay(scene):
    from xiaonet.detect.online import OnlineAssociator

    stations, _, rows = scene
    online = OnlineAssociator(stations, MODEL, delay_s=10.0, interval_s=1.0)
    offline = associate(rows, stations, MODEL, online.config)  # the settings it declares with
    declared = []
    times = [obspy.UTCDateTime(r["time"]).timestamp for r in rows]
    clock = times[0]
    i = 0
    while i < len(rows):  # picks arrive in time order, the clock in 0.5 s steps
        clock += 0.5
        batch = []
        while i < len(rows) and times[i] <= clock:
            batch.append(rows[i])
            i += 1
        online.add(batch)
        declared += [(v, clock) for v in online.advance(clock) if v.status == "final"]
    for step in range(60):  # the stream goes on without picks
        at = clock + 0.5 * (step + 1)
        declared += [(v, at) for v in online.advance(at) if v.status == "final"]
    assert online.flush() == []
    assert len(declared) == len(offline.events) == 2
    for (version, at), reference in zip(declared, offline.events):
        event = version.event
        assert abs(event.time - reference.time) < 1e-3 and len(event.pick_rows) == len(reference.pick_rows)
        assert abs(event.latitude - reference.latitude) < 1e-5
        assert 10.0 <= at - version.last_pick <= 10.0 + 1.0 + 0.5


def test_stream_detect_gives_the_events_of_detect_on_the_same_picks(shared_dir, tmp_path, capsys):
    """LASSO nodes replayed (resampled to 100 Hz, as the streaming engine needs) with --detect:
    the event JSON line is the event `xiaonet detect` finds in the stream's own pick table, with its ML."""
    folder = shared_dir / "data" / "continuous" / "okla_YW_lasso_seisscan"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    for path in sorted(folder.glob("*.mseed"))[::30]:
        stream = obspy.read(str(path))
        stream.resample(100.0)
        for trace in stream:
            trace.data = trace.data.astype(np.float32)
        stream.write(str(tmp_path / path.name), format="MSEED", encoding="FLOAT32")
    files = [str(p) for p in sorted(tmp_path.glob("*.mseed"))]
    stations, velocity = str(folder / "station-okl.xml"), str(folder / "okl.tvel")
    code = main(["stream", "--replay", *files, "--picker", "xiaonet-s", "--mode", "low-latency",
                 "--detect", stations, "--velocity", velocity, "--detect-delay", "20",
                 "--out", str(tmp_path / "picks.csv")])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    versions = [line for line in lines if line.get("type") == "event"]
    assert {v["event"] for v in versions} == {0} and versions[0]["status"] == "new"
    events = [v for v in versions if v["status"] == "final"]
    assert len(events) == 1 and events[0] == versions[-1]
    # final 20 s (--detect-delay) after the last pick, or at once when the picks came later
    # than that (the engine's own start-up latency), plus one association interval and one batch
    picks = [line for line in lines if line.get("type") != "event"]
    last_pick = max(obspy.UTCDateTime(p["time"]) for p in picks)
    arrived = max(obspy.UTCDateTime(p["time"]) + p["delay_s"] for p in picks)
    declared = last_pick + events[0]["delay_s"]
    # (times and delays are written rounded to the millisecond: allow one sample, 0.01 s)
    assert max(last_pick + 20.0, arrived) - 0.01 <= declared <= max(last_pick + 20.0, arrived) + 2.0 + 1.0
    assert main(["detect", str(tmp_path / "picks.csv"), "--stations", stations, "--velocity", velocity,
                 "--csv", str(tmp_path / "ev.csv"), "--waveforms", *files]) == 0
    offline = read_rows(tmp_path / "ev.csv")
    assert len(offline) == 1
    assert offline[0]["time"] == events[0]["time"] and int(offline[0]["n_picks"]) == events[0]["n_picks"]
    assert abs(float(offline[0]["latitude"]) - events[0]["latitude"]) < 1e-4
    # and its magnitude, measured on the stream's own records, is detect's on the same files and picks
    assert events[0]["magnitude"] == float(offline[0]["ml"]) and events[0]["magnitude_type"] == "ML"
    assert events[0]["magnitude_spread"] == float(offline[0]["ml_spread"])
    assert events[0]["magnitude_complete_stations"] == events[0]["n_magnitude_stations"] == events[0]["n_stations"]
