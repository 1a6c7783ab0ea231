"""``xiaonet pick``: P and S picks from waveform files into a CSV / QuakeML pick table."""

from __future__ import annotations

import argparse
import sys

from xiaonet.cli.options import add_picker_options, picker_from_args


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
    add_picker_options(parser)
    parser.add_argument("--out", default=None, help="CSV pick table (default: print to stdout)")
    parser.add_argument("--quakeml", default=None, help="also write picks as QuakeML")
    parser.add_argument("--plot", default=None, metavar="DIR", help="one figure per station into DIR")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for model pickers (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def run(args: argparse.Namespace) -> int:
    import obspy
    from tqdm import tqdm

    from xiaonet.picking.picktable import pick_rows, write_csv, write_quakeml
    from xiaonet.cli.options import output_path_problem, report_failures
    from xiaonet.data.waveforms import (
        WaveformInputError,
        expand_inputs,
        group_by_station,
        read_waveform_file,
    )

    if not args.inputs and not args.example:
        print("xiaonet pick: give waveform files, folders or globs, or --example", file=sys.stderr)
        return 2
    for path, option in ((args.out, "--out"), (args.quakeml, "--quakeml")):
        problem = output_path_problem(path, option)
        if problem:
            print(f"xiaonet pick: {problem}", file=sys.stderr)
            return 2
    import torch

    torch.set_num_threads(max(1, args.threads))
    try:
        picker = picker_from_args(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"xiaonet pick: {error}", file=sys.stderr)
        return 2

    failures: list[str] = []
    notes: list[str] = []
    stream = obspy.Stream()
    if args.example:
        stream += obspy.read()
    files = expand_inputs(args.inputs, unmatched=failures.append)
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
        write_quakeml(all_picks, picker.name, args.quakeml)

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
    return report_failures("xiaonet pick", failures)


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
