"""``xiaonet models``: the student presets with their size and cost, and the teachers."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "models",
        help="list student presets (parameters, file size, MACs per 30 s) and teachers",
        description="List the XiaoNet presets with parameters, weights file size, "
        "multiply-accumulates per 30 s window at 100 Hz, and whether trained weights ship.",
    )
    return parser


def describe_presets() -> list[dict]:
    """One row per preset, from the shipped weights' own arguments where they ship (their
    ``.json``), counted without torch (:func:`xiaonet.models.cost.student_cost`)."""
    import json

    from xiaonet.models.cost import student_cost
    from xiaonet.models.presets import PRESETS, shipped_weights, weights_file

    rows = []
    for name, preset in PRESETS.items():
        shipped = shipped_weights(name)
        model_args = preset.model_args
        if shipped is not None:
            model_args = json.loads(weights_file(shipped, ".json").read_text()).get("model_args", model_args)
        if model_args.get("hop_s"):  # an early-warning student: one window every hop_s
            parameters, per_window = student_cost(model_args, int(model_args["window_len"]))
            macs = per_window * round(30.0 / model_args["hop_s"])
        else:
            parameters, macs = student_cost(model_args, 3001)
        rows.append(
            {
                "preset": name,
                "parameters": parameters,
                "file_bytes": weights_file(shipped, ".pt").stat().st_size if shipped else None,
                "macs_per_30s": macs,
                "trained": shipped is not None,
                "description": preset.description,
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    from xiaonet.picking.loading import TEACHER_NAMES

    print("| preset | parameters | weights file | MACs per 30 s window | trained weights | |")
    print("|---|---:|---:|---:|---|---|")
    for row in describe_presets():
        size = f"{row['file_bytes'] / 1024:.1f} KiB" if row["file_bytes"] else "-"
        print(
            f"| {row['preset']} | {row['parameters']:,} | "
            f"{size} | "
            f"{row['macs_per_30s'] / 1e6:.2f} M | {'shipped' if row['trained'] else 'none yet'} | "
            f"{row['description']} |"
        )
    print(f"\nTeachers (SeisBench, from SEISBENCH_CACHE_ROOT): {', '.join(TEACHER_NAMES)}; baseline: stalta")
    return 0
