"""``xiaonet pick``: P and S picks from waveform files into a CSV / QuakeML pick table."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "pick",
        help="pick P and S arrivals in waveform files",
        description=(
            "Read waveform files (anything ObsPy reads: miniSEED, SAC, GSE2, ...; globs and "
            "folders), group traces by station, pick, and write a pick table."
        ),
    )
    parser.add_argument("inputs", nargs="*", help="files, folders or globs")
    parser.add_argument(
        "--example",
        action="store_true",
        help="pick ObsPy's bundled example event (BW.RJOB, 2009-08-24) instead of files",
    )
    parser.add_argument(
        "--picker",
        default=None,
        help="student preset or weights path, 'stalta', or a teacher ('phasenet', "
        "'eqtransformer', 'gpd', optionally 'phasenet:WEIGHTS'); default: the shipped "
        "default student, or stalta when no trained student is shipped",
    )
    parser.add_argument("--weights", default="original", help="teacher weights name (default: original)")
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="PHASE=VALUE",
        help="probability threshold per phase, e.g. --threshold P=0.3 --threshold S=0.3",
    )
    parser.add_argument(
        "--stalta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="STA/LTA option (method, sta, lta, trigger_on, trigger_off, freqmin, freqmax)",
    )
    parser.add_argument("--out", default=None, help="CSV pick table (default: print to stdout)")
    parser.add_argument("--quakeml", default=None, help="also write picks as QuakeML")
    parser.add_argument("--plot", default=None, metavar="DIR", help="one figure per station into DIR")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def default_picker_name() -> str:
    from xiaonet.models.presets import DEFAULT_PRESET, shipped_weights

    return DEFAULT_PRESET if shipped_weights(DEFAULT_PRESET) is not None else "stalta"


def _parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"{what} '{pair}' is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _stalta_options(pairs: list[str]) -> dict:
    from dataclasses import fields

    from xiaonet.picking.stalta import StaLtaConfig

    types = {f.name: f.type for f in fields(StaLtaConfig)}
    options = {}
    for key, value in _parse_pairs(pairs, "--stalta").items():
        if key not in types:
            raise ValueError(f"Unknown STA/LTA option '{key}'. Known: {', '.join(types)}.")
        options[key] = value if key == "method" else float(value)
    return options


def run(args: argparse.Namespace) -> int:
    import obspy
    from tqdm import tqdm

    from xiaonet.edge.picks import parse_thresholds
    from xiaonet.picking.loading import load_picker
    from xiaonet.picking.picktable import pick_rows, write_csv, write_quakeml
    from xiaonet.data.waveforms import (
        WaveformInputError,
        expand_inputs,
        group_by_station,
        read_waveform_file,
    )

    if not args.inputs and not args.example:
        print("xiaonet pick: give waveform files, folders or globs, or --example", file=sys.stderr)
        return 2
    try:
        thresholds = parse_thresholds(args.threshold)
        picker_name = args.picker or default_picker_name()
        picker = load_picker(
            picker_name,
            weights=args.weights,
            thresholds=thresholds or None,
            stalta_options=_stalta_options(args.stalta),
        )
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"xiaonet pick: {error}", file=sys.stderr)
        return 2

    failures: list[str] = []
    notes: list[str] = []
    stream = obspy.Stream()
    if args.example:
        stream += obspy.read()
    try:
        files = expand_inputs(args.inputs)
    except WaveformInputError as error:
        failures.append(str(error))
        files = []
    for path in tqdm(files, desc="reading", unit="file", disable=args.no_progress or len(files) < 2):
        try:
            stream += read_waveform_file(path, note=failures.append)
        except WaveformInputError as error:
            failures.append(str(error))

    stations = group_by_station(stream)
    all_picks = []
    for key, station_stream in tqdm(
        stations.items(), desc=f"picking ({picker.name})", unit="station",
        disable=args.no_progress or len(stations) < 2,
    ):
        try:
            picks = picker.pick(station_stream, note=notes.append)
        except Exception as error:  # one bad station never takes the batch down
            failures.append(f"{key}: picking failed: {type(error).__name__}: {error}")
            continue
        all_picks.extend(picks)
        if args.plot:
            _plot(picker, station_stream, picks, key, args.plot, notes)

    rows = pick_rows(all_picks, picker.name)
    if args.out:
        write_csv(rows, args.out)
    else:
        write_csv(rows, sys.stdout)
    if args.quakeml:
        write_quakeml(rows, args.quakeml)

    for message in notes:
        print(f"note: {message}", file=sys.stderr)
    n_p = sum(r["phase"] == "P" for r in rows)
    n_s = sum(r["phase"] == "S" for r in rows)
    summary = (
        f"{picker.name}: {len(rows)} picks ({n_p} P, {n_s} S) on {len(stations)} station(s) "
        f"from {len(files) + bool(args.example)} input(s)"
    )
    if args.out:
        summary += f"; table written to {args.out}"
    print(summary, file=sys.stderr)
    if failures:
        print(f"{len(failures)} problem(s):", file=sys.stderr)
        for message in failures:
            print(f"  {message}", file=sys.stderr)
        return 1
    return 0


def _plot(picker, station_stream, picks, key, folder, notes) -> None:
    from pathlib import Path

    from xiaonet.picking.plotting import plot_station
    from xiaonet.data.waveforms import prepare_station

    try:
        prepared = prepare_station(station_stream)
        annotations = picker.annotate(prepared.copy())
        plot_station(prepared, annotations, picks, Path(folder) / f"{key}.png", title=f"{key} - {picker.name}")
    except Exception as error:
        notes.append(f"{key}: plot failed: {type(error).__name__}: {error}")
