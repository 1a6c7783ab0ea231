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
    import io

    import torch

    from xiaonet.models.model import count_macs, count_parameters
    from xiaonet.models.presets import PRESETS, build_student, shipped_weights, weights_file

    rows = []
    for name, preset in PRESETS.items():
        model = build_student(name)
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        shipped = shipped_weights(name)
        rows.append(
            {
                "preset": name,
                "parameters": count_parameters(model),
                "file_bytes": weights_file(shipped, ".pt").stat().st_size if shipped else buffer.tell(),
                "macs_per_30s": count_macs(model, 3001),
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
        print(
            f"| {row['preset']} | {row['parameters']:,} | {row['file_bytes'] / 1024:.1f} KiB | "
            f"{row['macs_per_30s'] / 1e6:.2f} M | {'shipped' if row['trained'] else 'none yet'} | "
            f"{row['description']} |"
        )
    print(f"\nTeachers (SeisBench, from SEISBENCH_CACHE_ROOT): {', '.join(TEACHER_NAMES)}; baseline: stalta")
    return 0
