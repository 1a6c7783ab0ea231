"""``xiaonet pick``: P and S picks from waveform files into a CSV / QuakeML pick table."""

from __future__ import annotations

import argparse
import sys

from xiaonet.cli.options import add_data_selection_options, add_picker_options, picker_from_args


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
    parser.add_argument("--out", default=None, metavar="CSV", help="CSV pick table (default: print to stdout)")
    parser.add_argument("--quakeml", default=None, help="also write picks as QuakeML")
    parser.add_argument("--plot", default=None, metavar="DIR", help="one figure per station into DIR (records "
                        "over 5 min: an overview and the strongest events, each scaled to its own window)")
    parser.add_argument("--plot-window", default=None, metavar="START/END", help="--plot: draw only this part "
                        "of each record (seconds after its start, or UTC times)")
    parser.add_argument("--threads", type=int, default=1, help="threads of the model runtime (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_archive_options(parser)
    return parser


def add_archive_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "archives", "pick an SDS tree or folders of files in station x time chunks on Dask, resumable "
        "(any of these options but --chunk / --block / --margin makes an archive run; docs/archive.md)")
    add_data_selection_options(group, "pick")
    group.add_argument("--run-dir", default=None, metavar="DIR",
                       help="per-chunk Parquet + manifest; rerun the same command to resume (default: OUT.run)")
    group.add_argument("--chunk", default="1d", help="chunk length per station (default 1d; e.g. 6h)")
    group.add_argument("--block", default="1h", help="data picked at a time inside a chunk (default 1h)")
    group.add_argument("--margin", type=float, default=None, metavar="SECONDS",
                       help="data read on each side of a block (default: from the picker's window)")
    group.add_argument("--workers", type=int, default=None,
                       help="LocalCluster worker processes (default: one per core; 0: no Dask, this process)")
    group.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT", help="an existing Dask cluster")


def run(args: argparse.Namespace) -> int:
    import obspy

    from xiaonet.archive.command import pick_files
    from xiaonet.data.waveforms import expand_inputs, group_by_station
    from xiaonet.data.picktable import pick_rows, write_csv, write_quakeml

    archive_options = (args.sds, args.run_dir, args.select, args.start, args.end, args.scheduler)
    if any(archive_options) or args.workers is not None:
        from xiaonet.archive.command import ArchiveRun, run_archive

        return run_archive(ArchiveRun(
            picker=args.picker, chunk=args.chunk, block=args.block, weights=args.weights, threshold=args.threshold,
            stalta=args.stalta, runtime=args.runtime, threads=args.threads, sds=args.sds, inputs=args.inputs,
            select=args.select, start=args.start, end=args.end, margin=args.margin, run_dir=args.run_dir,
            out=args.out, quakeml=args.quakeml, workers=args.workers, scheduler=args.scheduler,
            progress=not args.no_progress))
    if not args.inputs and not args.example:
        print("xiaonet pick: give waveform files, folders or globs, or --example", file=sys.stderr)
        return 2
    from pathlib import Path

    from xiaonet.data.outputs import output_path_problem, report_failures

    window = None
    if args.plot_window:
        from xiaonet.picking.station_figures import PlotWindowError, parse_plot_window

        try:
            window = parse_plot_window(args.plot_window)
        except PlotWindowError as error:
            print(f"xiaonet pick: {error}", file=sys.stderr)
            return 2
    if args.plot:  # --plot DIR is created (figures are written there), so --out may go into it
        Path(args.plot).mkdir(parents=True, exist_ok=True)
    for path, option in ((args.out, "--out"), (args.quakeml, "--quakeml")):
        problem = output_path_problem(path, option)
        if problem:
            print(f"xiaonet pick: {problem}", file=sys.stderr)
            return 2
    try:
        picker = picker_from_args(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"xiaonet pick: {error}", file=sys.stderr)
        return 2

    failures: list[str] = []
    notes: list[str] = []
    files = expand_inputs(args.inputs, unmatched=failures.append)
    all_picks = []
    stations = group_by_station(obspy.read()) if args.example else {}
    for key, station_stream in stations.items():  # --example: one minute, in memory
        all_picks.extend(picker.pick(station_stream, note=notes.append))
        if args.plot:
            _plot(picker, station_stream, all_picks, key, args.plot, notes, window)

    def plot_chunk(chunk, picks) -> None:  # the figure needs the whole record: read it again
        from xiaonet.data.archive_sources import read_span

        stream = read_span(chunk.files, chunk.key, chunk.data[0], chunk.data[1], chunk.owned, notes.append)
        _plot(picker, stream, picks, chunk.key, args.plot, notes, window)

    picks, n_files_stations = pick_files(picker, files, failures, notes, not args.no_progress,
                                         on_station=plot_chunk if args.plot else None)
    all_picks.extend(picks)
    n_stations = len(stations) + n_files_stations

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
        f"{picker.name}: {len(rows)} picks ({n_p} P, {n_s} S) on {n_stations} station(s) "
        f"from {len(files) + bool(args.example)} input(s)"
    )
    if args.out:
        summary += f"; table written to {args.out}"
    print(summary, file=sys.stderr)
    return report_failures("xiaonet pick", failures)


def _plot(picker, station_stream, picks, key, folder, notes, window=None) -> None:
    from pathlib import Path

    from xiaonet.picking.station_figures import plot_station
    from xiaonet.data.waveforms import prepare_station

    try:
        prepared = prepare_station(station_stream)
        annotations = picker.annotate(prepared.copy())
        plot_station(prepared, annotations, picks, Path(folder) / f"{key}.png", title=f"{key} - {picker.name}",
                     window=window)
    except Exception as error:
        notes.append(f"{key}: plot failed: {type(error).__name__}: {error}")
