"""``xiaonet detect``: picks (a pick table, or waveform files picked first) to a located event
catalog with PyOcto: QuakeML, an events CSV, a pick -> event assignment CSV, maps."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from xiaonet.cli.options import add_mqtt_options, add_picker_options


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "detect",
        help="associate picks into located events (PyOcto): QuakeML + CSV catalog",
        description=(
            "Associate P and S picks across a network into events and locate them with PyOcto. "
            "Inputs are pick tables (CSV from xiaonet pick / stream) or waveform files, folders or globs, "
            "which are picked first exactly as xiaonet pick does."
        ),
    )
    parser.add_argument("inputs", nargs="*", help="pick tables (.csv) or waveform files, folders or globs")
    parser.add_argument("--stations", help="StationXML (any inventory ObsPy reads) or a CSV with columns "
                        "id (NET.STA), latitude, longitude, elevation (m)")
    parser.add_argument("--velocity", metavar="VP,VS|FILE", default=None,
                        help="velocity model: VP,VS in km/s (0D) or a 1D model file (.tvel, or a CSV with columns "
                        "depth, vp, vs); default 0D 6.0,3.47")
    out = parser.add_argument_group("outputs")
    out.add_argument("--out", metavar="QUAKEML", help="QuakeML catalog (events, origins, arrivals, picks)")
    out.add_argument("--csv", metavar="FILE", help="events CSV (default: printed to stdout)")
    out.add_argument("--assignments", metavar="FILE", help="every pick with its event and residual (CSV)")
    out.add_argument("--picks-out", metavar="FILE", help="waveform inputs: keep the pick table made from them")
    out.add_argument("--plot", metavar="DIR", help="one map per event into DIR (and its station magnitudes "
                     "against distance; the --reference comparison)")
    out.add_argument("--reference", metavar="CATALOG", help="catalog to compare with and draw: "
                     "LAT,LON[,DEPTH_KM[,TIME]], a JSON event, a CSV (time, latitude, longitude[, depth, mag]) "
                     "or a QuakeML file; prints matched / missed / new events and their differences")
    out.add_argument("--match-time", type=float, default=5.0, metavar="S", help="--reference: largest origin-time "
                     "difference of a match (s, default 5)")
    out.add_argument("--match-distance", type=float, default=25.0, metavar="KM", help="--reference: largest epicentral "
                     "distance of a match (km, default 25)")
    out.add_argument("--comparison", metavar="FILE", help="--reference: the comparison table as CSV")
    magnitude = parser.add_argument_group("local magnitude (ML, from the horizontals' Wood-Anderson peaks)")
    magnitude.add_argument("--waveforms", nargs="+", metavar="FILE", help="pick-table inputs: the waveform "
                           "files, folders or globs to measure amplitudes on (waveform inputs are used directly)")
    magnitude.add_argument("--responses", metavar="FILE", help="instrument responses (StationXML, RESP, ...; "
                           "default: --stations when it is not a CSV)")
    magnitude.add_argument("--ml-correction", default="luckett", metavar="NAME|N,K[,C]",
                           help="distance correction: luckett (default: IASPEI / Hutton & Boore 1987 plus Luckett "
                           "et al. 2019's short-distance term, equal to IASPEI beyond ~20 km), iaspei (the plain "
                           "formula, calibrated from 10 km), bakun-joyner, or N,K[,C] "
                           "for -log A0 = N log10(r/100) + K (r-100) + C")
    assoc = parser.add_argument_group("association (PyOcto)")
    assoc.add_argument("--margin", type=float, default=10.0, help="search area beyond the stations (km, default 10)")
    assoc.add_argument("--max-depth", type=float, default=30.0, help="deepest event (km, default 30)")
    assoc.add_argument("--tolerance", type=float, default=0.5, help="travel-time tolerance while associating (s)")
    assoc.add_argument("--pick-tolerance", type=float, default=0.5,
                       help="largest residual of a pick kept with a located event (s, default 0.5)")
    assoc.add_argument("--min-picks", type=int, default=10, help="picks an event needs (default 10)")
    assoc.add_argument("--min-p", type=int, default=4, help="P picks an event needs (default 4)")
    assoc.add_argument("--min-s", type=int, default=2, help="S picks an event needs (default 2)")
    assoc.add_argument("--min-ps", type=int, default=2, help="stations with both P and S an event needs (default 2)")
    assoc.add_argument("--min-station-fraction", type=float, default=0.25,
                       help="an event needs picks at this fraction of the stations with picks within the "
                       "distance of its farthest pick (default 0.25; 0 keeps every PyOcto event)")
    assoc.add_argument("--phases", default="PS", choices=["PS", "P", "S"],
                       help="associate only these phases' picks (default PS; e.g. P for a P-only picker)")
    assoc.add_argument("--locate-phases", default="auto", choices=["auto", "P", "PS"],
                       help="picks that locate each event (all associated picks keep residuals): auto (default) "
                       "takes P alone when 8 or more P picks surround the epicentre (gap <= 180 deg), else P and S")
    assoc.add_argument("--no-relocate", action="store_true",
                       help="keep PyOcto's grid locations (no least-squares refinement)")
    add_picker_options(parser, extra_help=" (waveform inputs only)")
    parser.add_argument("--threads", type=int, default=1, help="threads for picking and association (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    live = parser.add_argument_group("online, from MQTT publishers (xiaonet stream --publish)")
    live.add_argument("--subscribe", metavar="mqtt://HOST:PORT/TOPIC", default=None,
                      help="associate the picks published to this topic by any number of devices, printing "
                      "each event as a JSON line when declared (--out: QuakeML of all picks received, on exit)")
    live.add_argument("--publish-events", action="store_true", help="--subscribe: also publish events to TOPIC/events")
    live.add_argument("--clock", choices=["wall", "picks"], default="wall",
                      help="--subscribe: the associator's clock: wall (live devices) or picks (the newest pick "
                      "time; for replayed data)")
    live.add_argument("--delay", type=float, default=40.0,
                      help="--subscribe: declare an event this many seconds after its last pick (default 40)")
    live.add_argument("--duration", type=float, default=None, help="--subscribe: stop after this many seconds")
    live.add_argument("--idle-exit", type=float, default=None,
                      help="--subscribe: stop when no new pick came for this many seconds (after the first)")
    add_mqtt_options(parser)
    return parser


def _association_config(args):
    """The association options as one config, for pick tables and --subscribe alike."""
    from xiaonet.detect.association import AssociationConfig

    return AssociationConfig(margin_km=args.margin, max_depth_km=args.max_depth, tolerance=args.tolerance,
                             pick_match_tolerance=args.pick_tolerance, n_picks=args.min_picks,
                             n_p_picks=args.min_p, n_s_picks=args.min_s, n_p_and_s_picks=args.min_ps,
                             n_threads=max(1, args.threads), relocate=not args.no_relocate,
                             min_station_fraction=args.min_station_fraction, locate_phases=args.locate_phases)


def _pick_files(args, destination: Path) -> int:
    """Pick the waveform inputs as ``xiaonet pick`` does (the same reading, cleaning, blocks and
    picker factory) into the pick table ``destination``."""
    from xiaonet.archive.command import pick_files
    from xiaonet.cli.options import picker_from_args
    from xiaonet.data.outputs import output_path_problem, report_failures
    from xiaonet.data.picktable import pick_rows, write_csv
    from xiaonet.data.waveforms import expand_inputs

    problem = output_path_problem(str(destination), "--picks-out")
    if problem:
        print(f"xiaonet detect: {problem}", file=sys.stderr)
        return 2
    try:
        picker = picker_from_args(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"xiaonet detect: {error}", file=sys.stderr)
        return 2
    failures: list[str] = []
    notes: list[str] = []
    files = expand_inputs(args.inputs, unmatched=failures.append)
    picks, n_stations = pick_files(picker, files, failures, notes, not args.no_progress)
    rows = pick_rows(picks, picker.name)
    write_csv(rows, destination)
    for message in notes:
        print(f"note: {message}", file=sys.stderr)
    print(f"{picker.name}: {len(rows)} picks on {n_stations} station(s) from {len(files)} input(s); "
          f"table written to {destination}", file=sys.stderr)
    return report_failures("xiaonet detect", failures)


def run(args: argparse.Namespace) -> int:
    from xiaonet.detect.association import PickTableError, associate
    from xiaonet.detect.magnitude import MagnitudeError, distance_correction
    from xiaonet.detect.reference import ReferenceEventError, parse_reference
    from xiaonet.detect.stations import StationError, read_stations
    from xiaonet.detect.velocity import DEFAULT_VELOCITY, VelocityModelError, velocity_model
    from xiaonet.data.picktable import read_csv

    try:
        model = velocity_model(args.velocity or DEFAULT_VELOCITY)
    except VelocityModelError as error:
        print(f"xiaonet detect: {error}", file=sys.stderr)
        return 2
    if args.subscribe:
        from xiaonet.cli.options import mqtt_options_from_args
        from xiaonet.realtime.subscription_command import run_subscription_command

        if not args.stations or args.inputs:
            print("xiaonet detect: --subscribe needs --stations FILE and no input files", file=sys.stderr)
            return 2
        return run_subscription_command(args.subscribe, mqtt_options_from_args(args), args.stations, model,
                                        _association_config(args), delay_s=args.delay, clock=args.clock,
                                        publish_events=args.publish_events, duration_s=args.duration,
                                        idle_exit_s=args.idle_exit, quakeml=args.out, picks_csv=args.picks_out)
    if not args.inputs or not args.stations:
        print("xiaonet detect: give pick tables or waveform files, and --stations FILE", file=sys.stderr)
        return 2
    try:
        stations = read_stations(args.stations)
        references = parse_reference(args.reference) if args.reference else []
        distance_correction(args.ml_correction)
    except (StationError, ReferenceEventError, MagnitudeError) as error:
        print(f"xiaonet detect: {error}", file=sys.stderr)
        return 2

    status = 0
    rows: list[dict] = []
    tables = [p for p in args.inputs if p.lower().endswith(".csv")]
    waveforms = args.waveforms or ([] if tables else args.inputs)
    with tempfile.TemporaryDirectory(prefix="xiaonet-detect-") as folder:
        if tables and len(tables) != len(args.inputs):
            print("xiaonet detect: give either pick tables (.csv) or waveform files, not both", file=sys.stderr)
            return 2
        if not tables:  # waveform inputs: pick first
            tables = [args.picks_out or str(Path(folder) / "picks.csv")]
            status = _pick_files(args, Path(tables[0]))
            if status == 2 or not Path(tables[0]).is_file():
                return 2
        for table in tables:
            try:
                rows += read_csv(table)
            except (OSError, ValueError) as error:
                print(f"xiaonet detect: {table}: {getattr(error, 'strerror', None) or error}", file=sys.stderr)
                return 2

    kept = [r for r in rows if str(r.get("phase", "")).upper() in args.phases]
    if len(kept) < len(rows):
        print(f"note: --phases {args.phases}: {len(rows) - len(kept)} other pick(s) not associated", file=sys.stderr)
    rows = kept
    if args.min_s > 0 and rows and not any(str(r.get("phase", "")).upper() == "S" for r in rows):
        print(f"note: no S picks, and an event needs {args.min_s} (--min-s); for a P-only picker such as "
              "STA/LTA use --phases P --min-s 0 --min-ps 0", file=sys.stderr)
    config = _association_config(args)
    try:
        detection = associate(rows, stations, model, config, source=", ".join(tables))
    except PickTableError as error:
        print(f"xiaonet detect: {error}", file=sys.stderr)
        return 2
    try:
        magnitudes = _magnitudes(args, detection, model, waveforms) if waveforms and detection.events else {}
    except MagnitudeError as error:
        print(f"xiaonet detect: {error}", file=sys.stderr)
        return 2
    return max(status, _write(args, detection, references, magnitudes))


def _magnitudes(args, detection, model, waveforms) -> dict:
    """ML of every event, or {} with a one-line note when there are no responses to measure with."""
    from xiaonet.data.waveforms import expand_inputs
    from xiaonet.detect.magnitude import detection_magnitudes, read_responses

    source = args.responses or (None if args.stations.lower().endswith(".csv") else args.stations)
    if source is None:
        print(f"note: no magnitude: {args.stations} has no instrument responses (give --responses STATIONXML)",
              file=sys.stderr)
        return {}
    notes: list[str] = []
    files = expand_inputs(waveforms, unmatched=notes.append)
    results = detection_magnitudes(detection, files, read_responses(source), model, args.ml_correction,
                                   note=notes.append)
    for message in notes:
        print(f"note: {message}", file=sys.stderr)
    return results


def _write(args, detection, references, magnitudes) -> int:
    from xiaonet.detect.catalog import (ASSIGNMENT_COLUMNS, EVENT_COLUMNS, assignment_rows, event_rows,
                                        write_quakeml, write_rows)
    from xiaonet.detect.calibration import epicentre_offset_km, inside_ellipse
    from xiaonet.detect.magnitude import near_source_note
    from xiaonet.detect.reference import match_catalog
    from xiaonet.detect.uncertainty import CONFIDENCE

    write_rows(event_rows(detection, magnitudes), EVENT_COLUMNS, args.csv or sys.stdout)
    if args.out:
        write_quakeml(detection, args.out, magnitudes)
    if args.assignments:
        write_rows(assignment_rows(detection), ASSIGNMENT_COLUMNS, args.assignments)
    comparison = match_catalog(detection.events, references, {n: m.ml for n, m in magnitudes.items()},
                               args.match_time, args.match_distance)
    n_assigned = int((detection.picks["event"] >= 0).sum())
    print(f"{len(detection.events)} event(s) from {len(detection.picks)} picks ({n_assigned} associated); "
          f"velocity model {detection.model}", file=sys.stderr)
    for event in detection.rejected:
        print(f"  not declared: {event.time} {event.latitude:.4f} {event.longitude:.4f}, {len(event.pick_rows)} picks "
              f"at {event.n_stations} stations = {event.station_fraction:.0%} of the stations with picks within "
              f"{event.max_distance_km:.1f} km (--min-station-fraction {args.min_station_fraction:g})", file=sys.stderr)
    for event in detection.events:
        e = event.errors
        line = (f"  event {event.number}: {event.time} {event.latitude:.4f} {event.longitude:.4f} "
                f"depth {event.depth_km:.2f} km ({CONFIDENCE:.0%}: ±{e.time_interval_s:.3f} s, ±{e.major_km:.2f} km "
                f"horizontal, ±{e.depth_interval_km:.2f} km depth), {event.n_p} P + {event.n_s} S, "
                f"located with {' and '.join(event.located_with)} ({event.location_reason}), RMS {e.rms_s:.3f} s")
        magnitude = magnitudes.get(event.number)
        if magnitude is not None:
            line += f"; {magnitude.summary()}"
        match = comparison.match_of(event) if references else None
        if match:
            line += f"; vs reference: {match.epicentre_km:.3f} km" + (
                f", {match.time_s:+.3f} s" if match.time_s is not None else "") + (
                f", magnitude {match.magnitude:+.2f}" if match.magnitude is not None else "")
            inside = inside_ellipse(e, *epicentre_offset_km(event, match.reference.latitude,
                                                             match.reference.longitude))
            line += f" ({'inside' if inside else 'OUTSIDE'} the {CONFIDENCE:.0%} ellipse)"
        elif references:
            line += f"; no reference within {args.match_time:g} s and {args.match_distance:g} km"
        print(line, file=sys.stderr)
        if magnitude is not None and near_source_note(magnitude):
            print(f"    note: {near_source_note(magnitude)}", file=sys.stderr)
        if event.poorly_constrained:
            print(f"    poorly constrained: azimuthal gap {event.azimuthal_gap:.0f} deg, stations within "
                  f"{event.max_distance_km:.1f} km, {CONFIDENCE:.0%} ellipse {e.major_km:.1f} x {e.minor_km:.1f} km "
                  f"(a linear estimate; the location may lie anywhere along the major axis)", file=sys.stderr)
        if args.plot:
            from xiaonet.detect.event_maps import plot_event

            path = plot_event(detection, event, Path(args.plot) / f"event_{event.number:04d}.png",
                              match.reference if match else None)
            print(f"    map: {path}", file=sys.stderr)
            if magnitude is not None and magnitude.ml is not None:
                from xiaonet.detect.magnitude_plots import plot_station_magnitudes

                path = plot_station_magnitudes(magnitude, Path(args.plot) / f"event_{event.number:04d}_ml.png",
                                               reference_magnitude=match.reference.magnitude if match else None)
                print(f"    station magnitudes: {path}", file=sys.stderr)
    if references:
        _report_comparison(args, comparison, detection)
    if detection.missing:
        listed = ", ".join(f"{sid} ({n})" for sid, n in detection.missing.items())
        print(f"error: {detection.n_missing_picks} pick(s) at {len(detection.missing)} station(s) not in "
              f"{args.stations} were left out (the rest associated): {listed}", file=sys.stderr)
        return 1
    return 0


def _report_comparison(args, comparison, detection) -> None:
    from xiaonet.detect.catalog import write_rows
    from xiaonet.detect.reference import COMPARISON_COLUMNS

    print(f"reference {args.reference}: {comparison.summary()}", file=sys.stderr)
    rows = comparison.rows()
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in COMPARISON_COLUMNS}
    for row in [dict(zip(COMPARISON_COLUMNS, COMPARISON_COLUMNS)), *rows]:
        print("  " + " ".join(str(row.get(c, "")).ljust(widths[c]) for c in COMPARISON_COLUMNS).rstrip(),
              file=sys.stderr)
    if args.comparison:
        write_rows(rows, COMPARISON_COLUMNS, args.comparison)
    if args.plot:
        from xiaonet.detect.magnitude_plots import plot_comparison

        path = plot_comparison(comparison, Path(args.plot) / "reference_comparison.png", detection.stations)
        print(f"  figure: {path}", file=sys.stderr)
