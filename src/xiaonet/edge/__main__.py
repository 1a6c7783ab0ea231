"""``python -m xiaonet.edge MODEL.onnx FILES...``: pick files without torch (ObsPy reads them).

The same pick table as ``xiaonet pick`` (network, station, location, phase, time,
probability, picker). Unreadable files and failing stations are reported by name at the
end; the rest of the batch is still picked and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xiaonet-edge",
        description="Pick P and S arrivals with an exported ONNX model (numpy + onnxruntime + ObsPy; no torch).",
    )
    parser.add_argument("model", help="ONNX file written by `xiaonet export` (or, with --runtime c, "
                        "a folder written by `xiaonet export --format c`)")
    parser.add_argument("inputs", nargs="+", help="waveform files, folders or globs")
    parser.add_argument("--out", default=None, help="CSV pick table (default: stdout)")
    parser.add_argument("--threshold", action="append", default=[], metavar="PHASE=VALUE",
                        help="trigger threshold, e.g. --threshold P=0.3 (default: the file's)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default 1)")
    parser.add_argument("--runtime", choices=["onnx", "c"], default="onnx",
                        help="onnx: ONNX Runtime (default); c: the generated C library through ctypes "
                        "(numpy only; compiled on first use, needs a C compiler)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import obspy  # noqa: F401 - reading files needs ObsPy
    except ImportError:
        print("xiaonet-edge: reading waveform files needs ObsPy (pip install obspy); "
              "without it use xiaonet.edge.EdgePicker.pick_array on numpy arrays", file=sys.stderr)
        return 2
    from xiaonet.edge import EdgeModelError, EdgePicker
    from xiaonet.edge.picks import parse_thresholds
    from xiaonet.data.picktable import pick_rows, write_csv
    from xiaonet.data.outputs import output_path_problem, report_failures
    from xiaonet.data.waveforms import WaveformInputError, expand_inputs, group_by_station, read_waveform_file

    problem = output_path_problem(args.out)
    if problem:
        print(f"xiaonet-edge: {problem}", file=sys.stderr)
        return 2
    try:
        thresholds = parse_thresholds(args.threshold)
        if args.runtime == "c":
            from xiaonet.edge.c_runtime import CPicker as picker_class
        else:
            picker_class = EdgePicker
        picker = picker_class(args.model, thresholds=thresholds, threads=args.threads)
    except (EdgeModelError, ValueError, ImportError) as error:
        print(f"xiaonet-edge: {error}", file=sys.stderr)
        return 2

    failures: list[str] = []
    notes: list[str] = []
    stream = obspy.Stream()
    files = expand_inputs(args.inputs, unmatched=failures.append)
    for path in files:
        try:
            stream += read_waveform_file(path, note=failures.append)
        except WaveformInputError as error:
            failures.append(str(error))
    picks = []
    for key, station_stream in group_by_station(stream).items():
        try:
            picks += picker.pick(station_stream, note=notes.append)
        except Exception as error:  # one bad station never takes the batch down
            failures.append(f"{key}: picking failed: {type(error).__name__}: {error}")
    rows = pick_rows(picks, picker.name)
    write_csv(rows, args.out or sys.stdout)
    for message in notes:
        print(f"note: {message}", file=sys.stderr)
    print(f"{picker.name}: {len(rows)} picks from {len(files)} file(s)", file=sys.stderr)
    return report_failures("xiaonet-edge", failures)


if __name__ == "__main__":
    sys.exit(main())
