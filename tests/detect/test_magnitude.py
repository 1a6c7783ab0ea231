"""Local magnitudes (`xiaonet.detect.magnitude`) and the reference-catalog comparison
(`xiaonet.detect.reference`): synthetic records of known ground motion through known
responses give the ML the definition predicts, whatever the sensor's units and gain (the
test a unit mistake fails), channels without a usable response give no magnitude, the
command writes it into QuakeML and the events CSV, catalogs (QuakeML, CSV) are matched, and
(with ../shared) the LASSO M2.5 from 30 nodes."""

from __future__ import annotations

import csv
import json

import numpy as np
import obspy
import pytest
from obspy.core.inventory import Channel, Inventory, Network, Station
from obspy.core.inventory.response import Response
from obspy.geodetics import gps2dist_azimuth

from xiaonet.detect.magnitude import (DISTANCE_CORRECTIONS, MagnitudeError, Record, distance_correction,
                                      event_magnitude, station_magnitudes)
from xiaonet.detect.wood_anderson import ChannelResponses
from xiaonet.detect.reference import ReferenceEvent, ReferenceEventError, match_catalog, parse_reference

RATE = 100.0
FREQUENCY_HZ = 5.0
ORIGIN = obspy.UTCDateTime("2020-01-01T00:00:10")


def wood_anderson_gain(frequency_hz: float) -> float:
    """|displacement -> Wood-Anderson trace| (m/m) from its definition: T0 0.8 s, damping 0.8, 2080."""
    s = 2j * np.pi * frequency_hz
    w0, h = 2 * np.pi / 0.8, 0.8
    return float(2080 * abs(s ** 2 / (s ** 2 + 2 * h * w0 * s + w0 ** 2)))


SENSORS = {  # input units, zeros, poles, gain (counts per input unit at 5 Hz, roughly)
    "geophone": ("M/S", [0j, 0j], [-19.8 + 20.2j, -19.8 - 20.2j], 1.0e9),
    "quiet geophone": ("M/S", [0j, 0j], [-19.8 + 20.2j, -19.8 - 20.2j], 3.0e6),
    "accelerometer": ("M/S**2", [], [-444.3 + 444.3j, -444.3 - 444.3j], 4.0e5),
    "displacement": ("M", [0j, 0j, 0j], [-19.8 + 20.2j, -19.8 - 20.2j], 3.0e10),
}


def response(sensor: str) -> Response:
    units, zeros, poles, gain = SENSORS[sensor]
    result = Response.from_paz(zeros, poles, gain, stage_gain_frequency=FREQUENCY_HZ, input_units=units,
                               output_units="COUNTS", normalization_frequency=FREQUENCY_HZ)
    result.recalculate_overall_sensitivity(FREQUENCY_HZ)
    return result


def inventory_for(stations: dict[str, tuple], sensor: str | None, network: str = "XX") -> Inventory:
    """Channels HHE/HHN/HHZ at each station (lat, lon[, elevation m]), with ``sensor``'s response (None: none)."""
    built = []
    for code, (lat, lon, *elevation) in stations.items():
        height = elevation[0] if elevation else 0.0
        channels = [Channel(f"HH{c}", "", lat, lon, height, 0.0, sample_rate=RATE,
                            response=response(sensor) if sensor else None) for c in "ENZ"]
        built.append(Station(code, lat, lon, height, channels=channels))
    return Inventory(networks=[Network(network, stations=built)], source="test")


def record(inventory: Inventory, seed_id: str, displacement_m: np.ndarray, start=ORIGIN - 10.0) -> obspy.Trace:
    """Counts a channel writes for ground displacement ``displacement_m`` sampled at RATE."""
    n = len(displacement_m)
    nfft = 2 * n
    frequencies = np.fft.rfftfreq(nfft, 1 / RATE)
    gain = inventory.get_response(seed_id, ORIGIN).get_evalresp_response_for_frequencies(frequencies, output="DISP")
    counts = np.fft.irfft(np.fft.rfft(displacement_m, nfft) * gain, nfft)[:n]
    network, station, location, channel = seed_id.split(".")
    return obspy.Trace(counts.astype(np.float64), header={
        "network": network, "station": station, "location": location, "channel": channel,
        "sampling_rate": RATE, "starttime": start})


def burst(amplitude_m: float, start_s: float, n: int = 6000) -> np.ndarray:
    """A 5 Hz displacement of ``amplitude_m`` for 3 s from ``start_s`` after the record's start
    (0.5 s cosine ramps), over 1 % noise of the peak."""
    t = np.arange(n) / RATE
    envelope = np.clip(np.minimum(t - start_s, start_s + 3.0 - t) / 0.5, 0.0, 1.0)
    envelope = 0.5 - 0.5 * np.cos(np.pi * envelope)
    noise = np.random.default_rng(0).normal(0.0, 0.01 * amplitude_m / 3, n)
    return amplitude_m * envelope * np.sin(2 * np.pi * FREQUENCY_HZ * t) + noise


def measure(stream: obspy.Stream, inventory, *args, **kwargs):
    """station_magnitudes of ObsPy traces with an ObsPy inventory."""
    return station_magnitudes([Record.of(t) for t in stream], ChannelResponses(inventory), *args, **kwargs)


class Origin:
    time, latitude, longitude, depth_km = ORIGIN, 36.6, -97.7, 5.0


def expected_ml(amplitude_m: float, latitude: float, longitude: float, correction="iaspei") -> float:
    km = gps2dist_azimuth(Origin.latitude, Origin.longitude, latitude, longitude)[0] / 1000.0
    r = np.hypot(km, Origin.depth_km)
    wood_anderson_mm = amplitude_m * wood_anderson_gain(FREQUENCY_HZ) * 1000.0
    return float(np.log10(wood_anderson_mm) + DISTANCE_CORRECTIONS[correction].minus_log_a0(r))


@pytest.mark.parametrize("sensor", list(SENSORS))
def test_known_ground_motion_gives_the_ml_of_the_definition_whatever_the_sensor(sensor):
    """The unit test: the same 5 Hz ground displacement (1 micrometre, 20 km away) recorded by a
    geophone (m/s), a 300x less sensitive one, an accelerometer (m/s**2) and a displacement
    sensor (m) must give the ML computed by hand. Forgetting to remove the response (counts as
    m/s) is off by log10(gain) >= 5 units; treating the velocity record as displacement (the
    Wood-Anderson applied to the wrong quantity) by log10(2 pi 5 Hz) = 1.5; a velocity sensor's
    record deconvolved as acceleration by as much the other way."""
    lat, lon = 36.6 + 20.0 / 111.195, -97.7
    inventory = inventory_for({"A": (lat, lon)}, sensor)
    displacement = burst(1.0e-6, start_s=16.0)
    stream = obspy.Stream([record(inventory, f"XX.A..HH{c}", displacement) for c in "EN"])
    arrivals = {"XX.A": {"P": ORIGIN + 3.5, "S": ORIGIN + 6.0}}
    result = measure(stream, inventory, Origin, arrivals)
    truth = expected_ml(1.0e-6, lat, lon)
    assert len(result.stations) == 2 and result.skipped == {}
    assert abs(result.ml - truth) < 0.03, (sensor, result.ml, truth)
    # and by hand: a 1 um, 5 Hz displacement is a 2.0 mm Wood-Anderson peak; at r = 20.6 km
    # -log A0 = 1.11 log10(0.206) + 0.00189 (20.6 - 100) + 3 = 2.088, so ML = 2.39
    assert abs(result.ml - 2.39) < 0.03
    assert all(0.0 < (s.peak_time - (ORIGIN + 6.0)) < 3.5 for s in result.stations)


def test_a_response_not_from_ground_motion_gives_no_magnitude():
    inventory = inventory_for({"A": (36.7, -97.7)}, "geophone")
    volts = inventory.copy()
    for channel in volts[0][0]:
        channel.response.instrument_sensitivity.input_units = "V"
    stream = obspy.Stream([record(inventory, f"XX.A..HH{c}", burst(1e-6, 16.0)) for c in "ENZ"])
    result = measure(stream, volts, Origin)
    assert result.ml is None and result.stations == []
    assert result.skipped == {"with a response from V, not ground motion (m, m/s, m/s**2)": ["XX.A..HHE", "XX.A..HHN"]}
    assert "no ML: 2 with a response from V" in result.summary()


def test_missing_responses_give_no_magnitude_and_say_why():
    with_response = inventory_for({"A": (36.7, -97.7)}, "geophone")
    stream = obspy.Stream([record(with_response, f"XX.A..HH{c}", burst(1e-6, 16.0)) for c in "EN"])
    for inventory in (inventory_for({"A": (36.7, -97.7)}, None), inventory_for({"B": (36.7, -97.7)}, "geophone"),
                      None):
        result = measure(stream, inventory, Origin)
        assert result.ml is None and result.spread is None
        assert result.skipped == {"without an instrument response": ["XX.A..HHE", "XX.A..HHN"]}
        assert result.summary() == "no ML: 2 without an instrument response"


def test_window_that_the_record_does_not_cover_is_skipped_and_predicted_arrivals_are_used():
    lat, lon = 36.6 + 20.0 / 111.195, -97.7
    inventory = inventory_for({"A": (lat, lon)}, "geophone")
    stream = obspy.Stream([record(inventory, f"XX.A..HH{c}", burst(1.0e-6, 16.0)) for c in "EN"])
    predicted = measure(stream, inventory, Origin)  # no picks: 0D 6.0 / 3.46 km/s times
    assert abs(predicted.ml - expected_ml(1.0e-6, lat, lon)) < 0.03
    short = stream.copy().trim(ORIGIN - 10.0, ORIGIN + 7.0)
    result = measure(short, inventory, Origin, {"XX.A": {"P": ORIGIN + 3.5, "S": ORIGIN + 6.0}})
    assert result.ml is None and list(result.skipped) == ["whose record does not cover P to S + coda"]


def test_a_record_is_sliced_and_ends_as_obspy_slices_a_trace():
    trace = obspy.Trace(np.arange(500, dtype=np.int32), header={"sampling_rate": 250.0, "channel": "DP1",
                                                                "starttime": ORIGIN + 0.0015})
    piece = Record.of(trace)
    assert piece.end == trace.stats.endtime and piece.seed_id == trace.id
    for start, end in [(0.3, 1.2), (0.3021, 1.2019), (-1.0, 0.5), (1.0, 9.0), (0.5, 0.5), (1.0, 0.99), (3.0, 4.0)]:
        expected = trace.slice(ORIGIN + start, ORIGIN + end) if end >= start else None
        got = piece.slice(ORIGIN + start, ORIGIN + end)
        if expected is None:
            assert len(got.data) == 0
            continue
        assert list(got.data) == list(expected.data), (start, end)
        if len(expected.data):
            assert got.start == expected.stats.starttime and got.end == expected.stats.endtime


def test_distance_corrections_and_event_median():
    iaspei = distance_correction("iaspei")
    assert float(iaspei.minus_log_a0(100.0)) == pytest.approx(3.0)
    # the IASPEI form: log10(A_nm at magnification 1) + 1.11 log10 r + 0.00189 r - 2.09
    r, a_mm = 37.0, 4.2
    a_nm = a_mm / 2080 * 1e6
    assert np.log10(a_mm) + iaspei.minus_log_a0(r) == pytest.approx(
        np.log10(a_nm) + 1.11 * np.log10(r) + 0.00189 * r - 2.09, abs=0.005)
    bakun = distance_correction("bakun-joyner")
    assert float(bakun.minus_log_a0(r)) == pytest.approx(np.log10(r) + 0.00301 * r + 0.7)
    luckett = distance_correction("luckett")
    assert float(luckett.minus_log_a0(5.0) - iaspei.minus_log_a0(5.0)) == pytest.approx(-1.16 * np.exp(-1.0))
    assert distance_correction("1.0,0.002,3.1").minus_log_a0(100.0) == pytest.approx(3.1)
    with pytest.raises(MagnitudeError, match="expected one of iaspei, luckett, bakun-joyner or N,K"):
        distance_correction("richter")

    class Station:
        def __init__(self, ml):
            self.ml = ml

    result = event_magnitude([Station(m) for m in (2.0, 2.1, 2.2, 2.3, 9.0)])
    assert result.ml == pytest.approx(2.2) and result.spread == pytest.approx(1.4826 * 0.1)


def _catalog_events():
    class Event:
        def __init__(self, number, time, lat, lon, depth):
            self.number, self.time, self.latitude, self.longitude, self.depth_km = number, time, lat, lon, depth

    t = obspy.UTCDateTime("2020-01-01T00:00:00")
    return [Event(0, t + 10.2, 36.60, -97.70, 5.5), Event(1, t + 100.0, 36.80, -97.50, 3.0),
            Event(2, t + 300.0, 36.0, -98.0, 8.0)]


def test_reference_catalogs_from_csv_and_quakeml_are_matched(tmp_path):
    from obspy.core.event import Catalog, Event, Magnitude, Origin as QuakeMLOrigin

    t = obspy.UTCDateTime("2020-01-01T00:00:00")
    (tmp_path / "ref.csv").write_text(  # ComCat's CSV columns
        "time,latitude,longitude,depth,mag,magType\n"
        f"{t + 10.0},36.601,-97.702,5.0,2.4,ml\n"
        f"{t + 101.0},36.79,-97.51,,3.1,mb_lg\n"
        f"{t + 200.0},35.0,-99.0,10.0,,\n")
    catalog = Catalog()
    for seconds, lat, lon, depth, mag in [(10.0, 36.601, -97.702, 5.0, 2.4), (101.0, 36.79, -97.51, None, 3.1),
                                          (200.0, 35.0, -99.0, 10.0, None)]:
        event = Event(origins=[QuakeMLOrigin(time=t + seconds, latitude=lat, longitude=lon,
                                             depth=None if depth is None else depth * 1000.0)])
        if mag is not None:
            event.magnitudes.append(Magnitude(mag=mag, magnitude_type="ML" if mag < 3 else "mb_Lg"))
        catalog.append(event)
    catalog.write(str(tmp_path / "ref.xml"), format="QUAKEML")
    for name in ("ref.csv", "ref.xml"):
        references = parse_reference(str(tmp_path / name))
        assert [r.magnitude for r in references] == [2.4, 3.1, None]
        comparison = match_catalog(_catalog_events(), references, {0: 2.6, 1: None, 2: 1.0})
        assert [m.event.number for m in comparison.matches] == [0, 1]
        first, second = comparison.matches
        assert first.time_s == pytest.approx(0.2) and first.epicentre_km < 0.3
        assert first.depth_km == pytest.approx(0.5) and first.magnitude == pytest.approx(0.2)
        assert second.time_s == pytest.approx(-1.0) and second.depth_km is None and second.magnitude is None
        assert [r.latitude for r in comparison.missed] == [35.0]
        assert [(e.number, ml) for e, ml in comparison.new] == [(2, 1.0)]
        assert [row["status"] for row in comparison.rows()] == ["matched", "matched", "missed", "new"]
        assert comparison.summary().startswith("2 matched, 1 missed, 1 new")
    narrow = match_catalog(_catalog_events(), parse_reference(str(tmp_path / "ref.csv")), max_time_s=0.5)
    assert len(narrow.matches) == 1 and len(narrow.missed) == 2
    (tmp_path / "bad.csv").write_text("when,lat\n1,2\n")
    with pytest.raises(ReferenceEventError, match="bad.csv: expected a CSV catalog .* no column for time, longitude"):
        parse_reference(str(tmp_path / "bad.csv"))


def test_single_event_reference_forms_still_work(tmp_path):
    assert parse_reference("36.6,-97.7") == [ReferenceEvent(36.6, -97.7)]
    (tmp_path / "e.json").write_text(json.dumps({"evt0": "2020-01-01T00:00:10", "evla": 36.6, "evlo": -97.7,
                                                 "evdp": 5.0, "mag": 2.5}))
    event, = parse_reference(str(tmp_path / "e.json"))
    assert event.magnitude == 2.5 and event.depth_km == 5.0
    untimed = match_catalog(_catalog_events(), parse_reference("36.6,-97.7"))
    assert [m.event.number for m in untimed.matches] == [0] and untimed.matches[0].time_s is None


def _synthetic_survey(tmp_path, ml: float = 2.0):
    """Ten stations with geophones, one M ``ml`` event at 5 km depth: 5 Hz bursts at the S
    arrivals whose Wood-Anderson peaks give exactly ``ml`` (iaspei), the picks, StationXML,
    a stations CSV, miniSEED files and a reference CSV."""
    from xiaonet.data.picktable import write_csv
    from xiaonet.detect.synthetic import START, SyntheticEvent, synthetic_network, synthetic_picks
    from xiaonet.detect.velocity import HomogeneousModel

    stations = synthetic_network(10, extent_km=30.0, seed=2)
    event = SyntheticEvent(START + 20.0, 2.0, -1.0, 5.0)
    write_csv(synthetic_picks(stations, [event], HomogeneousModel(6.0, 3.5), seed=2, jitter_s=0.02),
              tmp_path / "picks.csv")
    places = {sid.split(".")[1]: (la, lo, el) for sid, la, lo, el in
              zip(stations.ids, stations.latitude, stations.longitude, stations.elevation)}
    inventory = inventory_for(places, "geophone")
    inventory.write(str(tmp_path / "stations.xml"), format="STATIONXML")
    inventory_for(places, None).write(str(tmp_path / "no_responses.xml"), format="STATIONXML")
    with open(tmp_path / "stations.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "latitude", "longitude", "elevation"])
        writer.writerows(zip(stations.ids, stations.latitude, stations.longitude, stations.elevation))
    (tmp_path / "waveforms").mkdir()
    for sid, lat, lon, elevation in zip(stations.ids, stations.latitude, stations.longitude, stations.elevation):
        km = gps2dist_azimuth(event.latitude, event.longitude, lat, lon)[0] / 1000.0
        r = float(np.hypot(km, event.depth_km + elevation / 1000.0))
        amplitude_m = 10 ** (ml - DISTANCE_CORRECTIONS["iaspei"].minus_log_a0(r)) / (
            wood_anderson_gain(FREQUENCY_HZ) * 1000.0)
        displacement = burst(amplitude_m, start_s=20.0 + r / 3.5)
        stream = obspy.Stream([record(inventory, f"{sid}..HH{c}", displacement, start=START) for c in "EN"])
        for trace in stream:
            trace.data = trace.data.astype(np.float32)
        stream.write(str(tmp_path / "waveforms" / f"{sid}.mseed"), format="MSEED")
    (tmp_path / "reference.csv").write_text("time,latitude,longitude,depth,mag,magType\n"
                                            f"{event.time},{event.latitude},{event.longitude},5.0,{ml},ml\n")
    return event


def test_detect_writes_ml_into_quakeml_and_csv_and_compares_with_a_catalog(tmp_path, capsys):
    pytest.importorskip("pyocto", reason="xiaonet detect needs pyocto (pip install 'xiaonet[detect]')")
    from obspy.io.quakeml.core import _validate

    from xiaonet.cli import main

    _synthetic_survey(tmp_path, ml=2.0)
    common = [str(tmp_path / "picks.csv"), "--velocity", "6.0,3.5", "--waveforms", str(tmp_path / "waveforms")]
    code = main(["detect", *common, "--stations", str(tmp_path / "stations.xml"), "--out", str(tmp_path / "c.xml"),
                 "--csv", str(tmp_path / "ev.csv"), "--reference", str(tmp_path / "reference.csv"),
                 "--comparison", str(tmp_path / "cmp.csv"), "--plot", str(tmp_path / "plots"),
                 "--ml-correction", "iaspei"])  # the survey's amplitudes were made with iaspei
    err = capsys.readouterr().err
    assert code == 0, err
    row, = list(csv.DictReader(open(tmp_path / "ev.csv")))
    assert abs(float(row["ml"]) - 2.0) < 0.05 and float(row["ml_spread"]) < 0.05 and row["ml_channels"] == "20"
    assert f"ML {row['ml']}" in err and "from 20 channels at 10 stations (iaspei)" in err
    assert _validate(str(tmp_path / "c.xml"))
    event, = obspy.read_events(str(tmp_path / "c.xml"))
    magnitude = event.preferred_magnitude()
    assert magnitude.magnitude_type == "ML" and abs(magnitude.mag - 2.0) < 0.05 and magnitude.station_count == 10
    assert len(event.amplitudes) == len(event.station_magnitudes) == 20
    assert len(magnitude.station_magnitude_contributions) == 20
    assert {a.type for a in event.amplitudes} == {"IAML"} and {a.unit for a in event.amplitudes} == {"m"}
    assert all(str(s.origin_id) == str(event.preferred_origin().resource_id) for s in event.station_magnitudes)
    comparison, = list(csv.DictReader(open(tmp_path / "cmp.csv")))
    assert comparison["status"] == "matched" and abs(float(comparison["dmag"])) < 0.05
    assert "1 matched, 0 missed, 0 new" in err
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "event_0000.png", "event_0000_ml.png", "reference_comparison.png"]


def test_detect_without_responses_says_so_once_and_writes_no_magnitude(tmp_path, capsys):
    pytest.importorskip("pyocto", reason="xiaonet detect needs pyocto (pip install 'xiaonet[detect]')")
    from xiaonet.cli import main

    _synthetic_survey(tmp_path)
    common = [str(tmp_path / "picks.csv"), "--velocity", "6.0,3.5", "--waveforms", str(tmp_path / "waveforms"),
              "--out", str(tmp_path / "c.xml"), "--csv", str(tmp_path / "ev.csv")]
    assert main(["detect", *common, "--stations", str(tmp_path / "stations.csv")]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "magnitude" in line or "ML" in line]
    assert notes == [f"note: no magnitude: {tmp_path / 'stations.csv'} has no instrument responses "
                     "(give --responses STATIONXML)"]
    assert list(csv.DictReader(open(tmp_path / "ev.csv")))[0]["ml"] == ""
    assert obspy.read_events(str(tmp_path / "c.xml"))[0].magnitudes == []
    # the same stations CSV with the responses given apart
    assert main(["detect", *common, "--stations", str(tmp_path / "stations.csv"),
                 "--responses", str(tmp_path / "stations.xml")]) == 0
    assert "from 20 channels at 10 stations" in capsys.readouterr().err
    assert main(["detect", *common, "--stations", str(tmp_path / "stations.csv"),
                 "--responses", str(tmp_path / "none.xml")]) == 2
    assert "none.xml: response file not found" in capsys.readouterr().err
    (tmp_path / "waveforms" / "broken.mseed").write_text("not miniSEED")
    assert main(["detect", *common, "--stations", str(tmp_path / "stations.xml"), "--waveforms",
                 str(tmp_path / "waveforms"), str(tmp_path / "missing*.mseed")]) == 0
    err = capsys.readouterr().err
    assert "note: " + str(tmp_path / "missing*.mseed") + ": no such file, folder or matching glob" in err
    assert "broken.mseed: not a waveform file ObsPy can read" in err and "from 20 channels at 10 stations" in err
    assert main(["detect", *common, "--stations", str(tmp_path / "no_responses.xml")]) == 0
    err = capsys.readouterr().err
    assert "no ML: 20 without an instrument response" in err
    assert list(csv.DictReader(open(tmp_path / "ev.csv")))[0]["ml"] == ""
    event, = obspy.read_events(str(tmp_path / "c.xml"))
    assert event.magnitudes == [] and event.amplitudes == [] and event.station_magnitudes == []


def test_lasso_ml_from_30_nodes(shared_dir, tmp_path, capsys):
    """30 LASSO nodes through `detect FILES` (picked by the default student): the M2.5's ML with
    the short-distance term (every node is within 10 km), epicentre and origin time."""
    pytest.importorskip("pyocto", reason="xiaonet detect needs pyocto (pip install 'xiaonet[detect]')")
    from obspy.io.quakeml.core import _validate

    from xiaonet.cli import main

    folder = shared_dir / "data" / "continuous" / "okla_YW_lasso_seisscan"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    files = sorted(folder.glob("*.mseed"))[::12]
    code = main(["detect", *map(str, files), "--stations", str(folder / "station-okl.xml"),
                 "--velocity", str(folder / "okl.tvel"), "--ml-correction", "luckett", "--no-progress",
                 "--reference", str(folder / "event.json"), "--comparison", str(tmp_path / "cmp.csv"),
                 "--out", str(tmp_path / "c.xml"), "--csv", str(tmp_path / "ev.csv")])
    assert code == 0, capsys.readouterr().err
    row, = list(csv.DictReader(open(tmp_path / "cmp.csv")))
    assert row["status"] == "matched" and abs(float(row["dmag"])) <= 0.3
    assert float(row["epicentre_km"]) < 1.0 and abs(float(row["dt_s"])) < 0.3
    event, = list(csv.DictReader(open(tmp_path / "ev.csv")))
    assert int(event["ml_channels"]) >= 50
    assert _validate(str(tmp_path / "c.xml"))
