"""``xiaonet export``: a student or teacher as ONNX (fp32, optionally int8) for the edge runtime."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


from xiaonet.distill.config import default_shared_dir


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX (fp32 / int8) for the torch-free runtime",
        description=(
            "Export a student (preset name or weights path) or a teacher (phasenet, "
            "eqtransformer) to ONNX with the metadata xiaonet.edge needs, check ONNX Runtime "
            "against torch, and optionally quantise to int8 (static, calibrated on real windows)."
        ),
    )
    parser.add_argument("model", nargs="?", default=None,
                        help="student preset or weights path, or 'phasenet' / 'eqtransformer' "
                        "(or give it as --picker)")
    parser.add_argument("--picker", default=None, metavar="NAME",
                        help="the same as the positional MODEL, in the flag every command uses")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--format", default="onnx", choices=["onnx", "c"],
                        help="onnx (default), or c: a folder with the C99 runtime (header, source, weights, "
                        "README) generated from the exported ONNX file (with --int8: from the int8 one)")
    parser.add_argument("--out", required=True, metavar="ONNX_FILE|C_DIR", help="output file (fp32 ONNX; int8 goes to OUT with .int8.onnx); "
                        "with --format c an output folder")
    parser.add_argument("--window", type=int, default=None,
                        help="--format c: samples per window of the C runtime (default: the model's, 6001 for "
                        "xiaonet-s; 3001 = 30 s halves its RAM)")
    parser.add_argument("--int8", action="store_true", help="also write a static int8 model")
    parser.add_argument("--per-channel", action="store_true", help="int8 weights with one scale per output channel")
    parser.add_argument(
        "--calibration", nargs="+", default=None, metavar="PATH",
        help="waveform files/folders/globs to cut calibration windows from "
        "(default: $XIAONET_SHARED/data/continuous)",
    )
    parser.add_argument("--calibration-windows", type=int, default=256, help="number of calibration windows")
    parser.add_argument("--seed", type=int, default=0, help="seed of the window sampling")
    parser.add_argument("--compare-dataset", default=None, metavar="PATH",
                        help="SeisBench dataset folder: score fp32 and int8 picks against its analyst picks")
    parser.add_argument("--max-traces", type=int, default=None, help="use at most this many dataset traces")
    parser.add_argument("--weights", default="original", help="teacher weights name (default: original)")
    parser.add_argument("--allow-untrained", action="store_true",
                        help="export an untrained preset (for speed measurements only)")
    parser.add_argument("--threshold", action="append", default=[], metavar="PHASE=VALUE",
                        help="trigger threshold stored in the file, e.g. --threshold P=0.3")
    return parser


def int8_path_for(out: Path) -> Path:
    name = out.name[: -len(".onnx")] if out.name.endswith(".onnx") else out.name
    return out.with_name(name + ".int8.onnx")


def load_export_model(spec: str, weights: str, allow_untrained: bool):
    """(model, name) for a student preset / weights path or a teacher name."""
    from xiaonet.picking.loading import TEACHER_NAMES
    from xiaonet.models.presets import PRESETS, load_student

    if spec.lower() in TEACHER_NAMES:
        from xiaonet.models.teachers import load_teacher

        return load_teacher(spec.lower(), weights), spec.lower()
    model = load_student(spec, allow_untrained=allow_untrained)
    return model, spec if spec in PRESETS else Path(spec).with_suffix("").name


def run(args: argparse.Namespace) -> int:
    if (args.model is None) == (args.picker is None):
        print("xiaonet export: give the model to export once, as MODEL or as --picker MODEL",
              file=sys.stderr)
        return 2
    args.model = args.model or args.picker
    args.picker = None
    if args.format == "c":
        return run_c(args)
    import numpy as np
    from xiaonet.models.model import set_torch_threads

    from xiaonet.export.onnx_files import (
        ExportError,
        calibration_windows,
        export_onnx,
        max_abs_difference,
        quantize_int8,
    )
    from xiaonet.edge.windowing import synthetic_windows
    from xiaonet.evaluate.exported_models import compare_picks_on_dataset

    set_torch_threads(args.threads)
    out = Path(args.out)
    try:
        from xiaonet.edge.picks import parse_thresholds

        thresholds = parse_thresholds(args.threshold)
        model, name = load_export_model(args.model, args.weights, args.allow_untrained)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"xiaonet export: {error}", file=sys.stderr)
        return 2
    if args.allow_untrained and getattr(model, "fully_convolutional", False):
        from xiaonet.models.presets import shipped_weights

        if args.model in ("xiaonet-xs", "xiaonet-s", "xiaonet-m") and shipped_weights(args.model) is None:
            print(f"note: {args.model} has no trained weights; exporting an untrained model", file=sys.stderr)

    rng = np.random.default_rng(args.seed)
    try:
        export_onnx(model, out, name, thresholds=thresholds or None)
        lengths = [model.in_samples, model.in_samples]
        if getattr(model, "fully_convolutional", False):
            lengths += [1000, 3 * model.in_samples + 17]
        diff = max(max_abs_difference(model, out, w) for w in synthetic_windows(lengths, rng))
        print(f"fp32: {out} ({out.stat().st_size} B); max |ONNX Runtime - torch| = {diff:.2e} "
              f"over windows of {sorted(set(lengths))} samples")
        if diff > 1e-4:
            print(f"xiaonet export: ONNX Runtime differs from torch by {diff:.2e} (> 1e-4)", file=sys.stderr)
            return 1
        if not args.int8:
            return 0
        sources = args.calibration or [str(default_shared_dir() / "data" / "continuous")]
        windows = calibration_windows(
            sources, args.calibration_windows, model.in_samples, model.component_order,
            model.sampling_rate, rng,
        )
        int8 = quantize_int8(out, int8_path_for(out), windows, per_channel=args.per_channel)
        print(f"int8: {int8} ({int8.stat().st_size} B), calibrated on {len(windows)} windows "
              f"from {', '.join(sources)} (seed {args.seed})")
        from xiaonet.edge import EdgeModel

        held_out = synthetic_windows([model.in_samples] * 4, rng)
        int8_diff = max(
            float(np.abs(EdgeModel(int8).predict(w) - EdgeModel(out).predict(w)).max()) for w in held_out
        )
        print(f"int8 vs fp32: max |probability difference| = {int8_diff:.3f} on 4 synthetic windows")
        if args.compare_dataset:
            scores = compare_picks_on_dataset({"fp32": out, "int8": int8}, args.compare_dataset,
                                              max_traces=args.max_traces)
            print(f"\nPicks on {args.compare_dataset} ({scores['n_traces']} traces, whole trace, "
                  "hit within 0.5 s, scored by xiaonet evaluate's code):")
            print("| model | P precision | P recall | P F1 | S precision | S recall | S F1 |")
            print("|---|---|---|---|---|---|---|")
            for label in ("fp32", "int8"):
                p, s = scores[label]["P"], scores[label]["S"]
                print(f"| {label} | {p['precision']:.3f} | {p['recall']:.3f} | {p['f1']:.3f} | "
                      f"{s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} |")
            print(f"int8 - fp32: P F1 {scores['int8']['P']['f1'] - scores['fp32']['P']['f1']:+.3f}, "
                  f"S F1 {scores['int8']['S']['f1'] - scores['fp32']['S']['f1']:+.3f}")
    except (ExportError, ValueError, FileNotFoundError) as error:
        print(f"xiaonet export: {error}", file=sys.stderr)
        return 1
    return 0


def run_c(args: argparse.Namespace) -> int:
    """ONNX export into the folder, then C generated from it and checked against ONNX Runtime."""
    from xiaonet.edge.c_export import CExportError, write_c_model
    from xiaonet.edge.c_runtime import check_c_model

    folder = Path(args.out)
    if folder.exists() and not folder.is_dir():
        print(f"xiaonet export: --format c writes a folder; {folder} is a file", file=sys.stderr)
        return 2
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / "model.onnx"
    code = run(argparse.Namespace(**{**vars(args), "format": "onnx", "out": str(onnx_path)}))
    if code:
        return code
    source = int8_path_for(onnx_path) if args.int8 else onnx_path
    try:
        summary = write_c_model(source, folder, window=args.window)
        print(f"c: {folder}/ (xiaonet.h, xiaonet.c, xiaonet_model.h, xiaonet_weights.c, README.md) from {source.name}, "
              f"{summary['parameters']} weights, window {summary['window']}")
        message, ok = check_c_model(folder, source)
        print(message)
    except (CExportError, ImportError) as error:
        print(f"xiaonet export: {error}", file=sys.stderr)
        return 1
    return 0 if ok else 1
