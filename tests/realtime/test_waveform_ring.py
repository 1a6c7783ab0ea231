"""The magnitude of each event version of `xiaonet stream --detect` (`xiaonet.realtime.waveform_ring`):
the ring holds the last seconds of each channel exactly; a streamed final version's ML is the
offline ML (`detect.magnitude`) of the same records and picks; a version declared before the S
waves has a smaller ML and says how much data after P it used; without responses, null and why."""

from __future__ import annotations

import json

import numpy as np
import obspy
import pytest

from tests.detect.test_magnitude import _synthetic_survey
from tests.realtime.session_fakes import EventLines, PickTableEngine
from xiaonet.realtime.waveform_ring import WaveformRing


def packets(trace: obspy.Trace, samples: int) -> list[obspy.Trace]:
    from xiaonet.stream.packet_sources import cut_into_packets

    return cut_into_packets(obspy.Stream([trace]), samples)


def test_the_ring_keeps_the_last_seconds_exactly_and_restarts_after_a_gap():
    trace = obspy.Trace(np.arange(1000, dtype=np.int32), header={
        "network": "XX", "station": "A", "channel": "HHE", "sampling_rate": 10.0,
        "starttime": obspy.UTCDateTime(2020, 1, 1)})
    ring = WaveformRing(12.0)
    for packet in packets(trace, 7):  # 7-sample packets wrap the 120-sample ring at odd places
        ring.append([packet])
    held, = ring.records({"XX.A"}, trace.stats.starttime, trace.stats.endtime)
    assert held.data.dtype == np.int32 and list(held.data) == list(range(880, 1000))
    assert held.start == trace.stats.starttime + 88.0 and ring.nbytes == 120 * 4 and held.seed_id == "XX.A..HHE"
    part, = ring.records({"XX.A"}, trace.stats.starttime + 90.0, trace.stats.starttime + 95.0)
    assert list(part.data) == list(range(900, 951))
    assert len(ring.records({"XX.B"}, trace.stats.starttime, trace.stats.endtime)) == 0
    ring.append([packets(trace, 7)[-1]])  # a repeated packet overlaps what is held: dropped
    assert ring.counters["dropped"] == 1
    later = trace.copy()
    later.stats.starttime += 100.0 + 3.0  # 3 s after the record's end: a gap
    ring.append(packets(later, 20)[:2])
    held, = ring.records({"XX.A"}, later.stats.starttime - 50.0, later.stats.endtime)
    assert ring.counters["restarts"] == 1 and held.start == later.stats.starttime
    assert list(held.data) == list(range(40))
    refusing = WaveformRing(5.0, refuse=lambda packet: "without an instrument response")
    refusing.append(packets(trace, 100))
    assert refusing.nbytes == 0 and refusing.refused == {"XX.A..HHE": "without an instrument response"}


def stream_survey(tmp_path, station_file: str, early_stations: int = 30):
    """The synthetic survey (10 geophones, ML 2.0 by iaspei) replayed in 1 s packets with its picks."""
    from xiaonet.data.picktable import read_csv
    from xiaonet.detect.online import OnlineAssociator
    from xiaonet.detect.velocity import HomogeneousModel
    from xiaonet.realtime.session import run_session
    from xiaonet.realtime.waveform_ring import detection_magnitude
    from xiaonet.stream.packet_sources import ReplaySource

    model = HomogeneousModel(6.0, 3.5)
    stations, magnitude, ring = detection_magnitude(tmp_path / station_file, model, 10.0, "iaspei",
                                                    early_stations=early_stations)
    detector = OnlineAssociator(stations, model, delay_s=10.0, magnitude=magnitude)
    source = ReplaySource([str(tmp_path / "waveforms")], packet_samples=100)
    source.start()
    lines = EventLines()
    run_session(source, PickTableEngine(read_csv(tmp_path / "picks.csv")), [lines], detector, waveforms=ring)
    return lines.events, detector, magnitude, ring, model


def test_final_version_ml_is_the_offline_ml_and_an_earlier_one_a_lower_bound(tmp_path):
    pytest.importorskip("pyocto", reason="association needs pyocto (pip install 'xiaonet[detect]')")
    from xiaonet.detect.magnitude import Record, read_responses, station_magnitudes
    from xiaonet.detect.wood_anderson import ChannelResponses

    event = _synthetic_survey(tmp_path, ml=2.0)
    lines, detector, magnitude, ring, model = stream_survey(tmp_path, "stations.xml")
    assert [line["event"] for line in lines] == [0] * len(lines) and lines[-1]["status"] == "final"
    final = detector.declared[0].versions[-1]
    # the invariant: the same origin and picks measured offline on the files give the same ML
    files = [Record.of(trace) for trace in obspy.read(str(tmp_path / "waveforms" / "*.mseed"))]
    offline = station_magnitudes(files, ChannelResponses(read_responses(tmp_path / "stations.xml")), final.event,
                                 final.arrivals, model, "iaspei")
    assert final.magnitude.ml == offline.ml and final.magnitude.spread == offline.spread
    assert [(s.seed_id, s.amplitude_mm) for s in final.magnitude.stations] == \
        [(s.seed_id, s.amplitude_mm) for s in offline.stations]
    assert abs(offline.ml - 2.0) < 0.05  # and it is the survey's magnitude
    line = lines[-1]
    assert line["magnitude"] == round(offline.ml, 2) and line["magnitude_type"] == "ML"
    assert line["n_magnitude_stations"] == line["magnitude_complete_stations"] == 10
    assert line["magnitude_spread"] == round(offline.spread, 2) and line["magnitude_note"] is None
    for version in lines:  # every version measured from what had arrived when it was declared
        assert version["magnitude"] is not None and version["n_magnitude_stations"] <= version["n_stations"]
        assert version["magnitude_complete_stations"] <= version["n_magnitude_stations"]
        # with the final origin, the data of that moment give at most the final ML (a cut record's
        # filters can lift a channel's peak by up to ~13 %: 0.05 units)
        then = magnitude(final.event, final.arrivals, obspy.UTCDateTime(version["declared_at"]))
        assert then.ml <= offline.ml + 0.05
    assert lines[0]["magnitude_complete_stations"] < 10 and lines[0]["magnitude_after_p_s"] < line["magnitude_after_p_s"]
    # a version declared before the S waves (the survey's only energy) reached half the stations:
    # every window is cut where the data stopped, and the ML is far below the event's
    before = obspy.UTCDateTime(np.median([float(t["S"]) for t in final.arrivals.values()]) - 0.1)
    early = magnitude(final.event, final.arrivals, before)
    assert early.n_complete_stations == 0 and 3 <= early.n_stations < 10 and early.ml < offline.ml - 1.0
    assert all(s.window[1] <= before for s in early.stations)
    p_times = {sid: t["P"] for sid, t in final.arrivals.items()}
    assert early.after_p_s == pytest.approx(np.median([s.window[1] - p_times[s.seed_id.rsplit(".", 2)[0]]
                                                       for s in early.stations]))
    from xiaonet.detect.online import magnitude_fields

    fields = magnitude_fields(early)
    assert fields["magnitude_complete_stations"] == 0 and 0.4 <= fields["magnitude_after_p_s"] < 6.0
    # what it costs: 2 horizontals x 70 s (--detect-delay 10 + 60) x 100 Hz x 4 bytes (float32 records)
    assert ring.n_stations == 10 and ring.nbytes == 10 * 2 * 7000 * 4
    assert event is not None


def test_a_complete_window_is_measured_once_and_between_versions(tmp_path, monkeypatch):
    pytest.importorskip("pyocto", reason="association needs pyocto (pip install 'xiaonet[detect]')")
    from xiaonet.detect.wood_anderson import ChannelResponses
    from xiaonet.realtime.waveform_ring import StreamedMagnitude

    filtered, per_version = [], []
    simulate, measure = ChannelResponses.wood_anderson_mm, StreamedMagnitude.__call__
    monkeypatch.setattr(ChannelResponses, "wood_anderson_mm",
                        lambda self, *args: filtered.append(args[0]) or simulate(self, *args))

    def counted(self, *args, **kwargs):
        before = len(filtered)
        result = measure(self, *args, **kwargs)
        per_version.append(len(filtered) - before)
        return result

    monkeypatch.setattr(StreamedMagnitude, "__call__", counted)
    _synthetic_survey(tmp_path, ml=2.0)
    lines, detector, magnitude, ring, model = stream_survey(tmp_path, "stations.xml")
    final = detector.declared[0].versions[-1]
    assert len(magnitude.measured) == 20  # every channel's window reached S + coda + 5 s
    # between the versions the complete windows were measured as they came in (the last S pick
    # + coda + 5 s is before the final version, --detect-delay 10 s after it): the final
    # version filters nothing
    assert per_version[-1] == 0 and len(per_version) == len(lines) and magnitude.settle_seconds
    assert final.magnitude.n_complete_stations == 10
    monkeypatch.setattr(StreamedMagnitude, "__call__", measure)

    def refuse(*args):
        raise AssertionError("a complete window was measured twice")

    magnitude.responses.wood_anderson_mm = refuse
    again = magnitude(final.event, final.arrivals, final.declared_at, final=True)
    assert [(s.seed_id, s.amplitude_mm, s.peak_time, s.ml) for s in again.stations] == \
        [(s.seed_id, s.amplitude_mm, s.peak_time, s.ml) for s in final.magnitude.stations]
    # (a call at a clock before the windows were complete measures what had arrived then: the
    # lower bound of test_final_version_ml_is_the_offline_ml_and_an_earlier_one_a_lower_bound)


def test_early_versions_measure_stations_spread_over_distance_and_the_final_one_all(tmp_path):
    pytest.importorskip("pyocto", reason="association needs pyocto (pip install 'xiaonet[detect]')")
    from obspy.geodetics import locations2degrees

    _synthetic_survey(tmp_path, ml=2.0)
    everywhere, *_ = stream_survey(tmp_path, "stations.xml", early_stations=0)
    lines, detector, magnitude, ring, model = stream_survey(tmp_path, "stations.xml", early_stations=4)
    assert lines[-1]["status"] == "final" and len(lines) >= 2
    for line in lines[:-1]:  # a new or updated version: 4 stations
        assert line["n_magnitude_stations"] == 4 and line["n_stations"] > 4
    # the final version: every station, the ML of every station measured at every version
    assert lines[-1]["n_magnitude_stations"] == 10 and lines[-1]["magnitude"] == everywhere[-1]["magnitude"]
    assert lines[-1]["magnitude_spread"] == everywhere[-1]["magnitude_spread"]
    version = detector.declared[0].versions[0]
    used = {s.seed_id.rsplit(".", 2)[0] for s in version.magnitude.stations}
    table = magnitude.stations
    degrees = {sid: locations2degrees(version.event.latitude, version.event.longitude, la, lo)
               for sid, la, lo in zip(table.ids, table.latitude, table.longitude) if sid in version.arrivals}
    by_distance = sorted(degrees, key=degrees.get)  # the nearest, the farthest and two evenly between
    n = len(by_distance)
    assert used == {by_distance[0], by_distance[round((n - 1) / 3)], by_distance[round(2 * (n - 1) / 3)],
                    by_distance[-1]}
    with pytest.raises(ValueError, match="--ml-stations -1: expected a number of stations"):
        stream_survey(tmp_path, "stations.xml", early_stations=-1)


def test_without_responses_every_version_says_why_and_has_no_magnitude(tmp_path):
    pytest.importorskip("pyocto", reason="association needs pyocto (pip install 'xiaonet[detect]')")
    _synthetic_survey(tmp_path, ml=2.0)
    lines, _, _, ring, _ = stream_survey(tmp_path, "stations.csv")
    assert lines and ring is None
    for line in lines:
        assert line["magnitude"] is None and line["n_magnitude_stations"] == 0
        assert line["magnitude_note"] == f"no ML: {tmp_path / 'stations.csv'} has no instrument responses (give StationXML)"
    lines, _, _, ring, _ = stream_survey(tmp_path, "no_responses.xml")
    assert lines and ring.nbytes == 0
    assert {line["magnitude_note"] for line in lines} == {"no ML: 20 without an instrument response"}
    assert all(json.dumps(line) for line in lines)
