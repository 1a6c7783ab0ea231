"""``xiaonet benchmark stream``'s measurements: pick latency from the arrival of the packet
holding the onset, stations per core, memory per station (the command is
:mod:`xiaonet.cli.stream_benchmark`)."""

from __future__ import annotations
from pathlib import Path


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


#: Streaming modes the benchmark knows: two for any model, one for early-warning students.
BENCHMARK_MODES = ("offline", "low-latency", "early-warning")


def load_early_warning_student(spec: str | None):
    """(picker, label) of an early-warning student: ``spec``, else the shipped xiaonet-ew; None."""
    from xiaonet.models.presets import shipped_weights
    from xiaonet.picking.loading import load_picker

    spec = spec or ("xiaonet-ew" if shipped_weights("xiaonet-ew") is not None else None)
    if spec is None:
        return None
    from xiaonet.stream.settings import early_warning_settings

    picker = load_picker(spec)
    if early_warning_settings(picker) is None:
        raise ValueError(f"--ew-picker {spec}: not an early-warning student (its weights have no lookahead_s)")
    return picker, spec


def protocol_accuracy(config_path: str, runs, config_for, split: str = "test") -> tuple[int, list[dict]]:
    """Every picker and mode scored on the ``split`` networks of a training config with the
    training run's scorer (a streaming mode on the picks it emits): (test records, rows of
    :func:`xiaonet.evaluate.generalisation.summary_row` plus ``mode``)."""
    from xiaonet.evaluate.generalisation import ProtocolScore, load_protocol, score_protocol, summary_row
    from xiaonet.picking.pickers import StreamedPicker
    from xiaonet.stream.settings import StreamingConfig

    _, bundle = load_protocol(config_path)
    rows = []
    for label, picker, picker_modes in runs:
        for mode in picker_modes:
            if label == "phasenet" and mode != "offline":
                continue  # PhaseNet low-latency on every test record takes hours on one core
            scored = picker if mode in ("offline", "early-warning") else StreamedPicker(
                picker, StreamingConfig(**config_for(mode, picker)))
            row = summary_row(ProtocolScore(label, split, score_protocol(scored, bundle, split)))
            rows.append({**row, "mode": mode})
    return len(getattr(bundle, split)), rows


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

    With ``offline`` picks, ``result["agreement"]`` scores all streamed picks against them;
    with a dict of named pick lists, it holds one score per name.
    """
    import math
    import time

    from xiaonet.stream.packet_sources import cut_into_packets
    from xiaonet.stream.settings import StreamingConfig
    from xiaonet.picking.loading import make_streaming_picker

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
        from xiaonet.scoring.matching import ReferencePick, score_picks

        def agreement(picks):
            reference = [ReferencePick(p.trace_id, p.phase, float(p.peak_time)) for p in picks]
            return score_picks([e.pick for e in emitted_all], reference, tolerance=0.5)

        latencies["agreement"] = ({name: agreement(picks) for name, picks in offline.items()}
                                  if isinstance(offline, dict) else agreement(offline))
    return latencies


def measure_throughput(picker, stream, n_stations: int, seconds: float, config: dict) -> dict:
    """CPU time to stream ``seconds`` of data for ``n_stations`` 3-component stations."""
    import time

    import numpy as np
    import obspy

    from xiaonet.stream.settings import StreamingConfig
    from xiaonet.picking.loading import make_streaming_picker

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
    from xiaonet.stream.settings import StreamingConfig
    from xiaonet.picking.loading import make_streaming_picker

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
