"""What ``xiaonet detect --subscribe`` runs: a subscription, the online associator, the sinks of its
events, and the closing report (stderr) and catalog (QuakeML of every pick received)."""

from __future__ import annotations

import sys

from xiaonet.realtime.mqtt import ConnectionOptions, parse_broker_url


def run_subscription_command(url: str, options: ConnectionOptions, stations_path: str, model, config,
                             delay_s: float = 40.0, clock: str = "wall", publish_events: bool = False,
                             duration_s: float | None = None, idle_exit_s: float | None = None,
                             quakeml: str | None = None, picks_csv: str | None = None) -> int:
    """Returns the exit status: 0, 1 when picks came from stations not in ``stations_path``, messages
    were malformed or picks were lost (a publisher no longer held them), 2 for bad arguments."""
    from xiaonet.data.outputs import output_path_problem
    from xiaonet.detect.association import associate
    from xiaonet.detect.online import OnlineAssociator
    from xiaonet.detect.stations import StationError, read_stations
    from xiaonet.realtime.session import CsvPickSink, JsonLinesSink
    from xiaonet.realtime.subscription import MqttEventSink, PickSubscription, run_subscription

    def note(message: str) -> None:
        print(f"note: {message}", file=sys.stderr, flush=True)

    try:
        address = parse_broker_url(url, "--subscribe")
        stations = read_stations(stations_path)
        for path, option in ((quakeml, "--out"), (picks_csv, "--picks-out")):
            problem = output_path_problem(path, option)
            if problem:
                raise ValueError(problem)
        subscription = PickSubscription(address, options, note=note)
    except (ValueError, StationError, RuntimeError) as error:
        print(f"xiaonet detect: {error}", file=sys.stderr)
        return 2
    detector = OnlineAssociator(stations, model, config, delay_s=delay_s)
    event_sinks = [JsonLinesSink()] + ([MqttEventSink(subscription)] if publish_events else [])
    pick_sinks = [CsvPickSink(picks_csv)] if picks_csv else []
    summary = run_subscription(subscription, detector, pick_sinks, event_sinks, clock=clock, duration_s=duration_s,
                               idle_exit_s=idle_exit_s, keep_rows=bool(quakeml))
    c = subscription.counters
    how = "interrupted" if summary.interrupted else "finished"
    print(f"xiaonet detect --subscribe {how} after {summary.elapsed_s:.1f} s: {c['picks']} picks from "
          f"{len(subscription.picks_per_publisher)} publisher(s) {subscription.picks_per_publisher}; "
          f"{summary.events} event(s) declared", file=sys.stderr)
    print(f"messages {c['messages']}: repeats dropped {c['repeated_seq']} (same publisher and seq), "
          f"{c['same_pick_other_sender']} (same station, phase and time); malformed {c['malformed']}; lost {c['lost']}; "
          f"late {summary.late}; replay requests {c['replay_requests']}; connections {c['connections']}",
          file=sys.stderr)
    missing = {f"{name} run {run}": p.missing for (name, run), p in subscription.publishers.items() if p.missing}
    if missing:
        print(f"error: picks sent but never received, by publisher: {missing}", file=sys.stderr)
    status = 1 if c["malformed"] or c["lost"] or missing else 0
    if detector.missing:
        print(f"error: {sum(detector.missing.values())} pick(s) at station(s) not in {stations_path}: "
              f"{sorted(detector.missing)}", file=sys.stderr)
        status = 1
    if quakeml:
        from xiaonet.detect.catalog import write_quakeml

        if summary.rows:
            detection = associate(summary.rows, stations, model, config, source=str(address))
            write_quakeml(detection, quakeml)
            print(f"{quakeml}: {len(detection.events)} event(s) from the {len(summary.rows)} picks received",
                  file=sys.stderr)
        else:
            print(f"{quakeml}: not written, no picks received", file=sys.stderr)
    return status
