"""Pick quality: the instrument a pick came from (``channel``), ``uncertainty_s`` from the
width of the probability peak, ``snr_db`` in fixed windows around the pick, and how they
reach the pick table, QuakeML, archive chunks and the associator."""

from __future__ import annotations

import math

import numpy as np
import obspy
import pytest

from xiaonet.data.picktable import PICK_COLUMNS, pick_rows, read_csv, write_csv, write_quakeml
from xiaonet.edge.pick_quality import (FWHM_PER_SIGMA, half_maximum_width, snr_components, snr_db,
                                       uncertainty_from_width)
from xiaonet.edge.picks import EdgePick, TriggerState, advance_trigger, picks_from_curve

RATE = 100.0


def gaussian_curve(sigma_s: float, peak_at: int = 1000, n: int = 2000, height: float = 0.9) -> np.ndarray:
    t = (np.arange(n) - peak_at) / RATE
    return (height * np.exp(-0.5 * (t / sigma_s) ** 2)).astype(np.float32)


@pytest.mark.parametrize("sigma_s", [0.05, 0.1, 0.3])
def test_uncertainty_is_the_sigma_of_a_gaussian_probability_peak(sigma_s):
    curve = gaussian_curve(sigma_s)
    (pick,) = picks_from_curve(curve, 0.0, RATE, 0.3, "P", "XX.A.")
    # the width is counted in whole samples: within one sample of the true FWHM
    assert abs(pick.uncertainty_s - sigma_s) <= 1.0 / FWHM_PER_SIGMA / RATE + 1e-9
    assert pick.peak_time == pytest.approx(10.0)


def test_the_trigger_measures_the_same_width_however_the_samples_arrive():
    rng = np.random.default_rng(0)
    curve = np.concatenate([gaussian_curve(0.2, 300, 700), gaussian_curve(0.08, 250, 600, 0.5)])
    whole = [(on, off, peak, width) for on, off, peak, _, width in
             advance_trigger(TriggerState("P", 0.3), np.concatenate([curve, [0.0]]), 0)]
    assert len(whole) == 2
    for _ in range(5):
        trig, found, first = TriggerState("P", 0.3), [], 0
        cuts = np.sort(rng.choice(np.arange(1, curve.size), 12, replace=False))
        for piece in np.split(np.concatenate([curve, [0.0]]), cuts):
            found += [(on, off, peak, width) for on, off, peak, _, width in advance_trigger(trig, piece, first)]
            first += piece.size
        assert found == whole
    # and equal to the width offline picking measures on the whole curve
    offline = picks_from_curve(curve, 0.0, RATE, 0.3, "P", "XX.A.")
    assert [round(p.uncertainty_s, 9) for p in offline] == [
        round(uncertainty_from_width(w, RATE), 9) for *_, w in whole]


def test_confirmed_picks_measure_the_width_up_to_the_confirming_sample():
    """Early-warning emission gives a pick out before its curve falls to half: its width
    runs from the rising half-maximum to the confirming sample, in every split of the data."""
    curve = np.concatenate([gaussian_curve(0.2, 300, 700), [0.0]])
    ((on, off, peak, _, width),) = advance_trigger(TriggerState("P", 0.3), curve, 0, confirm=0.8)
    rising = int(np.flatnonzero(curve >= curve[peak] / 2)[0])
    assert peak == 300 and curve[off] < 0.8 * curve[peak] <= curve[off - 1]
    assert width == off - rising + 1 < half_maximum_width(curve, peak)


def onset(ratio: float, n: int = 1000, at: int = 500, period: int = 10) -> np.ndarray:
    """A wave ``ratio`` times larger from sample ``at`` on, with an offset and a drift."""
    t = np.arange(n)
    wave = np.sin(2 * np.pi * t / period)
    return wave * np.where(t >= at, ratio, 1.0) + 3.0 + 0.002 * t


@pytest.mark.parametrize("ratio", [3.0, 10.0, 100.0])
def test_snr_of_an_onset_of_known_amplitude_ratio(ratio):
    expected = 20 * math.log10(ratio)
    assert snr_db(onset(ratio)[None], 500, RATE) == pytest.approx(expected, abs=0.3)


def test_snr_is_nan_where_its_windows_leave_the_record_or_there_is_no_noise():
    data = onset(10.0)[None]
    assert math.isnan(snr_db(data, 200, RATE))  # 2 s of noise and the sample before are not there
    assert math.isfinite(snr_db(data, 201, RATE))
    assert math.isnan(snr_db(data, 951, RATE)) and math.isfinite(snr_db(data, 950, RATE))
    assert math.isnan(snr_db(np.zeros((1, 1000)), 500, RATE))


def test_p_is_measured_on_the_vertical_and_s_on_both_horizontals():
    assert snr_components("P", "ZNE") == [0] and snr_components("S", "ZNE") == [1, 2]
    data = np.stack([onset(10.0), onset(1.0), onset(1.0)])  # an onset on Z only
    assert snr_db(data[snr_components("P", "ZNE")], 500, RATE) == pytest.approx(20, abs=0.3)
    assert snr_db(data[snr_components("S", "ZNE")], 500, RATE) == pytest.approx(0, abs=0.3)


def test_hh_and_hn_of_one_station_give_two_pick_sets_told_apart(tmp_path):
    from test_streaming import sharp_student, synthetic_stream

    from xiaonet.archive.command import pick_files

    stream = synthetic_stream(200, "TWO", seed=4, events=(40.0, 120.0))
    strong = stream.copy()
    for trace in strong:
        trace.stats.channel = "HN" + trace.stats.channel[-1]
        trace.data = trace.data * 0.5 + 0.1
    path = tmp_path / "XX.TWO.mseed"
    (stream + strong).write(str(path), format="MSEED")
    picks, instruments = pick_files(sharp_student(), [path], [], [], progress=False)
    assert instruments == 2
    channels = {p.channel for p in picks}
    assert channels == {"HH?", "HN?"}
    rows = pick_rows(picks, "sharp")
    assert {(r["station"], r["channel"]) for r in rows} == {("TWO", "HH?"), ("TWO", "HN?")}
    # each instrument gives its own full set: a row per pick, none merged or dropped
    assert sum(r["channel"] == "HH?" for r in rows) >= 2 and sum(r["channel"] == "HN?" for r in rows) >= 2
    out = tmp_path / "picks.csv"
    write_csv(rows, out)
    assert [r["channel"] for r in read_csv(out)] == [r["channel"] for r in rows]


def test_the_associator_uses_one_instrument_per_station():
    from xiaonet.detect.association import associate, picks_frame, preferred_instrument
    from xiaonet.detect.synthetic import random_events, synthetic_network, synthetic_picks
    from xiaonet.detect.velocity import HomogeneousModel

    model = HomogeneousModel(6.0, 3.5)
    stations = synthetic_network(12, extent_km=40.0, seed=5)
    events = random_events(2, duration_s=80.0, extent_km=40.0, seed=5)
    rows = synthetic_picks(stations, events, model, seed=5, duration_s=120.0)
    # the accelerometer's picks 30 ms earlier: PyOcto on its own would take them
    broadband = [{**r, "channel": "HH?"} for r in rows]
    strong = [{**r, "channel": "HN?", "time": (obspy.UTCDateTime(r["time"]) - 0.03).isoformat() + "Z"}
              for r in rows]
    only_strong = {rows[0]["station"]}  # one station has only its accelerometer
    table = [r for r in broadband if r["station"] not in only_strong] + strong
    mask = preferred_instrument(picks_frame(table))
    kept = [r for r, keep in zip(table, mask) if keep]
    assert {r["channel"] for r in kept if r["station"] in only_strong} == {"HN?"}
    assert {r["channel"] for r in kept if r["station"] not in only_strong} == {"HH?"}
    detection = associate(table, stations, model)
    assert len(detection.events) == 2
    assigned = detection.picks[detection.picks["event"] >= 0]
    preferred = np.where(assigned["station"].isin(only_strong), "HN?", "HH?")
    assert (assigned["channel"] == preferred).all() and len(assigned) >= 0.9 * len(rows)
    assert len(detection.picks) == len(table)  # the other instrument's picks stay, unassigned
    # an old table without channels keeps every pick
    assert preferred_instrument(picks_frame([{k: v for k, v in r.items() if k != "channel"} for r in rows])).all()


def test_quakeml_carries_the_uncertainty_as_time_errors(tmp_path):
    picks = [EdgePick("XX.A.00", obspy.UTCDateTime(2024, 1, 1, 0, 0, 1.5), None, obspy.UTCDateTime(2024, 1, 1, 0, 0, 1.5),
                      0.8, "P", "HH?", 0.0421, 17.25),
             EdgePick("XX.A.00", obspy.UTCDateTime(2024, 1, 1, 0, 0, 4), None, obspy.UTCDateTime(2024, 1, 1, 0, 0, 4),
                      0.6, "S", "HN?", float("nan"), float("nan"))]
    path = tmp_path / "picks.xml"
    write_quakeml(picks, "student", path)
    read = sorted(obspy.read_events(str(path))[0].picks, key=lambda p: p.time)
    assert read[0].time_errors.uncertainty == pytest.approx(0.0421)
    assert read[0].waveform_id.channel_code == "HHZ" and read[1].waveform_id.channel_code == "HNN"
    assert "snr_db=17.25" in [c.text for c in read[0].comments]
    assert read[1].time_errors.uncertainty is None  # not measured: left out, not invented


def test_old_pick_tables_still_read_and_others_fail_clearly(tmp_path):
    old = tmp_path / "old.csv"
    old.write_text("network,station,location,phase,time,probability,picker\n"
                   "XX,A,,P,2024-01-01T00:00:01.000000Z,0.9000,student\n")
    (row,) = read_csv(old)
    assert row["channel"] == row["uncertainty_s"] == row["snr_db"] == "" and row["phase"] == "P"
    bad = tmp_path / "bad.csv"
    bad.write_text("network,station,phase\nXX,A,P\n")
    with pytest.raises(ValueError, match=r"bad.csv: not a XiaoNet pick table, missing columns"):
        read_csv(bad)
    with open(tmp_path / "new.csv", "w", newline="") as handle:
        write_csv(pick_rows([EdgePick("XX.A.", 1.0, 1.0, 1.0, 0.5, "S", "EH?", 0.1, float("nan"))], "x"), handle)
    (new,) = read_csv(tmp_path / "new.csv")
    assert list(new) == list(PICK_COLUMNS)
    assert (new["channel"], new["uncertainty_s"], new["snr_db"]) == ("EH?", "0.1000", "")


def test_archive_chunks_keep_the_quality_columns_and_read_older_ones():
    pa = pytest.importorskip("pyarrow")
    from xiaonet.archive.manifest import _schema, pick_columns, picks_from_table

    pick = EdgePick("XX.A.", obspy.UTCDateTime(2024, 1, 1), None, obspy.UTCDateTime(2024, 1, 1), 0.7, "P",
                    "HN?", 0.05, 12.5)
    (back,) = picks_from_table(pa.table(pick_columns([pick], "x"), schema=_schema()))
    assert (back.channel, back.uncertainty_s, back.snr_db) == ("HN?", 0.05, 12.5)
    old = pa.table({"network": ["XX"], "station": ["A"], "location": [""], "phase": ["P"],
                    "time": pa.array([obspy.UTCDateTime(2024, 1, 1).ns], pa.timestamp("ns", tz="UTC")),
                    "probability": [0.7], "picker": ["x"]})
    (back,) = picks_from_table(old)
    assert back.channel == "" and math.isnan(back.uncertainty_s) and math.isnan(back.snr_db)


def test_stalta_picks_carry_channel_and_rise_time_offline_and_streamed():
    from test_streaming import synthetic_stream

    from xiaonet.picking.stalta import StaLtaPicker
    from xiaonet.stream.streaming_stalta import StreamingStaLta

    stream = synthetic_stream(200, "STA", seed=2, events=(40.0, 120.0))
    picker = StaLtaPicker()
    offline = picker.pick(stream)
    engine = StreamingStaLta(picker)
    streamed = [e.pick for e in engine.feed_many(list(stream)) + engine.flush()]
    assert offline and {p.channel for p in offline} == {"HH?"}
    key = lambda p: (round(float(p.peak_time.timestamp), 2), p.channel, round(p.uncertainty_s, 6))  # noqa: E731
    assert sorted(map(key, streamed)) == sorted(map(key, offline))
    assert all(0 < p.uncertainty_s < 5 for p in offline)


def test_early_warning_picks_carry_the_same_quality_offline_and_streamed_without_waiting(torch_threads):
    """An early-warning student (lookahead 0.2 s) measures its signal window over its
    lookahead, which the engine holds when a pick is final: same values whatever the
    packets, every pick measured."""
    from test_early_warning import early_warning_student
    from test_streaming import synthetic_stream

    from xiaonet.picking.pickers import ModelPicker
    from xiaonet.stream.engine import StreamingPicker
    from xiaonet.stream.settings import early_warning_config

    picker = ModelPicker(early_warning_student(), name="ew", thresholds={"P": 0.3, "S": 0.3})
    stream = synthetic_stream(120.0, events=(40.0, 90.0))
    offline = picker.pick(stream.copy())
    assert offline and all(math.isfinite(p.snr_db) and math.isfinite(p.uncertainty_s) for p in offline)
    engine = StreamingPicker(picker, early_warning_config(picker.model.early_warning))
    assert engine.signal_s == pytest.approx(0.2)
    packets = []  # 0.1 s packets, the channels interleaved
    for trace in stream:
        for i in range(0, trace.stats.npts, 10):
            packet = trace.copy()
            packet.data = trace.data[i:i + 10].copy()
            packet.stats.starttime = trace.stats.starttime + i * trace.stats.delta
            packets.append(packet)
    packets.sort(key=lambda p: p.stats.endtime)
    streamed = [e.pick for packet in packets for e in engine.feed(packet)] + [e.pick for e in engine.flush()]
    quality = lambda p: (p.phase, round(float(p.peak_time.timestamp), 3), p.channel, round(p.uncertainty_s, 9),  # noqa: E731
                         round(p.snr_db, 4))
    assert sorted(map(quality, streamed)) == sorted(map(quality, offline))
