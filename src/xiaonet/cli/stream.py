"""``xiaonet stream``: real-time picking from file replay, a SeedLink server or a Raspberry Shake's
UDP data-cast; picks optionally published to an MQTT broker (``--publish``).

Picks are printed to stdout as JSON lines (one per pick, flushed as it is emitted) and
optionally appended to a CSV pick table (the ``xiaonet pick`` columns plus ``emitted_at``).
Ctrl-C stops cleanly: the records still open are ended (their last picks emitted) and a
summary goes to stderr.
"""

from __future__ import annotations

import argparse
import sys

from xiaonet.cli.options import add_mqtt_options, add_picker_options


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "stream",
        help="pick in real time from replayed files or a SeedLink server",
        description=(
            "Feed packets to the streaming engine and print each pick as a JSON line as soon "
            "as it is final. Sources: --replay FILES (as packets, at --speed x real time) or "
            "--seedlink HOST:PORT with one or more --select NET.STA.LOC.CHA."
        ),
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--replay", nargs="+", metavar="FILE", help="waveform files, folders or globs to replay")
    source.add_argument("--seedlink", metavar="HOST:PORT", help="SeedLink server")
    source.add_argument("--udp", type=int, metavar="PORT",
                        help="a Raspberry Shake's UDP data-cast on this port (the feed rsudp reads)")
    parser.add_argument("--udp-station", default="AM.SHAKE", metavar="NET.STA[.LOC]",
                        help="--udp: the station the packets come from (they do not say; default AM.SHAKE.00)")
    parser.add_argument("--udp-rate", type=float, default=100.0, help="--udp: samples per second (default 100)")
    parser.add_argument("--select", action="append", default=[], metavar="NET.STA.LOC.CHA",
                        help="SeedLink stream selection, wildcards ? and * in LOC.CHA (repeatable)")
    parser.add_argument("--speed", type=float, default=None,
                        help="replay speed, x real time (default: as fast as possible)")
    parser.add_argument("--packet-samples", type=int, default=512,
                        help="samples per replayed packet (default 512)")
    parser.add_argument("--latency", type=float, default=0.0, metavar="S",
                        help="replay: simulated transmission delay, each packet reaches the engine S s after "
                        "its last sample (counted in each event's after_origin_s; default 0)")
    add_picker_options(parser)
    parser.add_argument("--threads", type=int, default=1, help="threads of the model runtime (default 1)")
    parser.add_argument("--mode", choices=["offline", "low-latency", "early-warning"], default=None,
                        help="offline: picks identical to xiaonet pick (latency up to one window); "
                        "low-latency: a window every --hop s, picks final --lookahead s after arrival; "
                        "early-warning: an early-warning student (xiaonet-ew) with the hop and lookahead "
                        "it was trained for, each pick out as soon as it is final. Default: "
                        "early-warning for an early-warning student, else offline")
    parser.add_argument("--hop", type=float, default=0.5, help="low-latency: seconds between windows")
    parser.add_argument("--lookahead", type=float, default=1.0,
                        help="low-latency: seconds of data after a sample before it is final")
    parser.add_argument("--confirm", type=float, default=None, metavar="F",
                        help="low-latency: emit a pick as soon as its probability falls below F x its peak "
                        "(early-warning emission, e.g. 0.5; default: when the trigger closes)")
    parser.add_argument("--window", type=float, default=None,
                        help="low-latency with the student: window length in seconds (default: 30 s)")
    parser.add_argument("--gap-policy", choices=["reset", "zero-fill"], default="reset",
                        help="reset: a gap ends the record (as offline); zero-fill: short gaps become zeros")
    parser.add_argument("--max-fill", type=float, default=5.0, help="zero-fill: longest gap filled (s)")
    parser.add_argument("--channel-timeout", type=float, default=30.0,
                        help="a channel this far behind the others is treated as stopped (s)")
    parser.add_argument("--reorder-window", type=float, default=30.0,
                        help="wait for a packet overtaken by later ones until its channel has sent this "
                        "many seconds of newer data (s; costs latency only while a hole is open)")
    parser.add_argument("--idle-flush", type=float, default=60.0,
                        help="end the record of a station silent this long (wall-clock s)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="SeedLink: reconnect when no data arrived for this long (s)")
    parser.add_argument("--backoff-max", type=float, default=60.0,
                        help="SeedLink: longest wait between reconnect attempts (s)")
    parser.add_argument("--connect-timeout", type=float, default=60.0,
                        help="SeedLink: give up (exit status 1) when no connection was made in this long (s)")
    parser.add_argument("--out", default=None, metavar="CSV",
                        help="append picks to this CSV pick table (the columns of xiaonet pick --out, plus "
                        "emitted_at)")
    parser.add_argument("--detect", metavar="STATIONS", default=None,
                        help="also associate the picks into events (xiaonet detect; StationXML or station "
                        "CSV) and print each event version as a JSON line with \"type\": \"event\": declared "
                        "as soon as --detect-min-stations P picks fit, updated as picks arrive, then final")
    parser.add_argument("--velocity", metavar="VP,VS|FILE", default=None,
                        help="--detect: velocity model, VP,VS in km/s (0D) or a 1D model file (.tvel, or a CSV "
                        "with columns depth, vp, vs); default 0D 6.0,3.47")
    parser.add_argument("--detect-delay", type=float, default=40.0,
                        help="--detect: the final version of an event this many data seconds after its last "
                        "pick (default 40)")
    parser.add_argument("--detect-min-stations", type=int, default=5,
                        help="--detect: P picks at this many stations declare an event (default 5)")
    parser.add_argument("--detect-max-rms", type=float, default=0.3,
                        help="--detect: largest RMS pick residual (s) of a first declaration (default 0.3)")
    parser.add_argument("--detect-max-gap", type=float, default=180.0,
                        help="--detect: largest azimuthal gap (degrees) of a first declaration (default 180: "
                        "the epicentre inside the stations that picked it)")
    parser.add_argument("--detect-min-fraction", type=float, default=0.5,
                        help="--detect: share of the stations within reach that must have picked for a first "
                        "declaration (default 0.5)")
    parser.add_argument("--detect-interval", type=float, default=1.0,
                        help="--detect: associate at most every this many data seconds (default 1)")
    parser.add_argument("--ml-correction", default=None, metavar="NAME|N,K[,C]",
                        help="--detect: distance correction of each event version's local magnitude, as "
                        "xiaonet detect --ml-correction (default: detect's, luckett)")
    parser.add_argument("--ml-stations", type=int, default=None, metavar="K",
                        help="--detect: a new or updated version's magnitude is measured at K of the stations with "
                        "picks, spread over their distances to its epicentre (n_magnitude_stations says how many), "
                        "the final version's at all (default 30; 0: all, each version costs more)")
    parser.add_argument("--detect-buffer", type=float, default=None, metavar="S",
                        help="--detect: seconds of raw data kept per horizontal channel with a response, for "
                        "the magnitudes (default: --detect-delay + 60)")
    parser.add_argument("--publish", metavar="mqtt://HOST:PORT/TOPIC", default=None,
                        help="also publish each pick to this MQTT broker topic (QoS 1; mqtts:// for TLS); "
                        "picks wait in a buffer while the broker is away")
    parser.add_argument("--publisher-id", default=None,
                        help="--publish: this device's name in the messages (default HOST-PID)")
    parser.add_argument("--publish-buffer", type=int, default=100_000,
                        help="--publish: picks kept while the broker is away; beyond, the oldest are dropped "
                        "and counted (default 100000)")
    parser.add_argument("--publish-drain", type=float, default=30.0,
                        help="--publish: at the end, wait this long for the broker to acknowledge the last picks "
                        "and a subscriber to confirm them (s, default 30; those still unacknowledged or "
                        "unconfirmed are counted, exit status 1)")
    parser.add_argument("--publish-batch-s", type=float, default=0.0, metavar="S",
                        help="--publish: hold picks up to S seconds (data or wall clock, whichever passes first) "
                        "and send them in one message: fewer bytes, S s more latency (default 0: the picks of "
                        "one engine step go out together at once)")
    add_mqtt_options(parser)
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many wall-clock seconds (default: until Ctrl-C / end of replay)")
    return parser


def run(args: argparse.Namespace) -> int:
    from xiaonet.cli.options import picker_from_args
    from xiaonet.data.outputs import output_path_problem, report_failures
    from xiaonet.picking.loading import default_picker_name
    from xiaonet.stream.packet_sources import ReplaySource, SeedLinkSource
    from xiaonet.picking.loading import make_streaming_picker
    from xiaonet.stream.settings import streaming_config_for
    from xiaonet.realtime.session import CsvPickSink, JsonLinesSink, run_session

    def note(message: str) -> None:
        print(f"note: {message}", file=sys.stderr, flush=True)

    if not args.replay and not args.seedlink and args.udp is None:
        print("xiaonet stream: give --replay FILES, --seedlink HOST:PORT --select ... or --udp PORT",
              file=sys.stderr)
        return 2
    problem = output_path_problem(args.out)
    if problem:
        print(f"xiaonet stream: {problem}", file=sys.stderr)
        return 2
    publisher = None
    try:
        spec = args.picker or default_picker_name()
        picker = picker_from_args(args)
        config = streaming_config_for(picker, spec, args.mode, hop=args.hop, lookahead=args.lookahead,
                                      window=args.window, confirm=args.confirm, gap_policy=args.gap_policy,
                                      max_fill=args.max_fill,
                                      channel_timeout=args.channel_timeout, reorder_window=args.reorder_window)
        engine = make_streaming_picker(picker, config, note=note)
        detector = None
        waveforms = None
        if args.detect:
            from xiaonet.detect.magnitude import DEFAULT_CORRECTION
            from xiaonet.detect.online import DeclarationRule, OnlineAssociator
            from xiaonet.detect.velocity import DEFAULT_VELOCITY, velocity_model
            from xiaonet.realtime.waveform_ring import EARLY_STATIONS, detection_magnitude

            rule = DeclarationRule(min_p_stations=args.detect_min_stations, max_rms_s=args.detect_max_rms,
                                   max_gap_deg=args.detect_max_gap, min_station_fraction=args.detect_min_fraction)
            model = velocity_model(args.velocity or DEFAULT_VELOCITY)
            stations, magnitude, waveforms = detection_magnitude(
                args.detect, model, args.detect_delay, args.ml_correction or DEFAULT_CORRECTION, args.detect_buffer,
                EARLY_STATIONS if args.ml_stations is None else args.ml_stations)
            detector = OnlineAssociator(stations, model, delay_s=args.detect_delay, interval_s=args.detect_interval,
                                        rule=rule, magnitude=magnitude)
        if args.udp is not None:
            from xiaonet.stream.shake_udp import ShakeUdpSource

            source = ShakeUdpSource(args.udp, args.udp_station, args.udp_rate, note=note)
        elif args.replay:
            source = ReplaySource(args.replay, speed=args.speed, packet_samples=args.packet_samples,
                                  latency_s=args.latency, note=note)
        else:
            source = SeedLinkSource(args.seedlink, args.select, timeout=args.timeout,
                                    backoff_max=args.backoff_max, note=note,
                                    connect_timeout=args.connect_timeout)
        if args.publish:
            from xiaonet.cli.options import mqtt_options_from_args
            from xiaonet.realtime.mqtt import parse_broker_url
            from xiaonet.realtime.publisher import MqttPickSink

            if args.publish_batch_s < 0:
                raise ValueError(f"--publish-batch-s must be 0 or more, got {args.publish_batch_s}")
            publisher = MqttPickSink(parse_broker_url(args.publish), mqtt_options_from_args(args),
                                     publisher=args.publisher_id, max_buffer=args.publish_buffer,
                                     drain_s=args.publish_drain, batch_s=args.publish_batch_s, note=note)
        source.start()
    except (ValueError, FileNotFoundError, RuntimeError, TypeError) as error:
        print(f"xiaonet stream: {error}", file=sys.stderr)
        if publisher is not None:
            publisher.close()
        return 2

    sinks = [JsonLinesSink()] + ([CsvPickSink(args.out)] if args.out else []) + ([publisher] if publisher else [])
    summary = run_session(source, engine, sinks, detector, duration_s=args.duration,
                          idle_flush_s=args.idle_flush if (args.seedlink or args.udp is not None) else None,
                          waveforms=waveforms)
    n_picks = summary.picks
    counters = {k: v for k, v in engine.counters.items() if v}
    how = "interrupted" if summary.interrupted else "finished"
    line = (f"xiaonet stream {how} after {summary.elapsed_s:.1f} s: {sum(n_picks.values())} picks "
            f"({n_picks.get('P', 0)} P, {n_picks.get('S', 0)} S) from {engine.picker_name} on "
            f"{len(summary.stations)} station(s)")
    if isinstance(source, SeedLinkSource):
        line += f"; {source.connections} connection(s), {source.reconnects} reconnect(s)"
        if source.dropped_full_queue:
            line += f"; {source.dropped_full_queue} records dropped (engine fell behind)"
    print(line, file=sys.stderr)
    if publisher is not None:
        c = publisher.counters
        print(f"published to {args.publish} as {publisher.publisher}: {c['picks']} picks, {c['acknowledged']} "
              f"acknowledged, {c['undelivered']} undelivered, {c['unconfirmed']} unconfirmed by a subscriber, "
              f"{c['dropped']} dropped (buffer full); "
              f"{c['messages_sent']} messages ({c['resent']} resent), {c['publish_bytes']} bytes of MQTT PUBLISH, "
              f"{c['connections']} connection(s); picks held {c['held_s_total'] / max(1, c['held_picks']):.2f} s "
              f"on average, {c['held_s_max']:.2f} s at most (data clock)", file=sys.stderr)
    if getattr(source, "malformed", 0):
        print(f"{source.malformed} malformed UDP packet(s) skipped", file=sys.stderr)
    if counters:
        print("counters: " + ", ".join(f"{k}={v}" for k, v in counters.items()), file=sys.stderr)
    if detector is not None:
        print(f"{len(detector.declared)} event(s) declared in {summary.event_versions} version(s); picks at stations not in {args.detect}: "
              f"{sum(detector.missing.values())} {sorted(detector.missing) or ''}", file=sys.stderr)
        if waveforms is not None:
            import numpy as np

            timed, settled = detector.magnitude.seconds, detector.magnitude.settle_seconds
            print(f"magnitudes: {waveforms.nbytes / 1e6:.1f} MB of raw data kept ({waveforms.seconds:g} s of "
                  f"{len(waveforms.channels)} channels at {waveforms.n_stations} stations, "
                  f"{waveforms.nbytes / max(1, waveforms.n_stations) / 1e3:.0f} kB per station); "
                  f"{len(timed)} measured, median {np.median(timed) if timed else 0.0:.3f} s each, longest "
                  f"{max(timed, default=0.0):.3f} s; {len(settled)} measurements between versions, longest "
                  f"{max(settled, default=0.0):.3f} s", file=sys.stderr)
    if isinstance(source, SeedLinkSource) and source.connections == 0:
        print(f"xiaonet stream: {source.failure or f'never connected to SeedLink {args.seedlink}'}; "
              "nothing was picked", file=sys.stderr)
        return 1
    if publisher is not None and any(publisher.counters[k] for k in ("undelivered", "unconfirmed", "dropped")):
        return 1
    return report_failures("xiaonet stream", getattr(source, "failures", []))
