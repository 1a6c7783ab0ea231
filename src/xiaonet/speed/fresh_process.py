"""Peak memory of a runtime measured in a fresh interpreter that loads it and picks the
benchmark data once (:mod:`xiaonet.speed.memory_probe` is what the ONNX rows run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


from xiaonet.speed.data import BenchmarkData, BenchmarkError
from xiaonet.speed.memory_probe import peak_rss_mb

def rss_child(spec: dict) -> None:
    """Body of the fresh process of a torch / SeisBench / ObsPy row: load the picker, pick
    the saved data once, print peak RSS. (ONNX rows run :func:`xiaonet.speed.memory_probe.edge_child` instead.)

    ``spec``: model, runtime, data (npz path), threads, teacher weights, untrained.
    """
    threads = int(spec["threads"])
    data = BenchmarkData.load(spec["data"])
    if spec["runtime"] != "obspy":
        import torch

        torch.set_num_threads(threads)
    from xiaonet.picking.pickers import ModelPicker
    from xiaonet.picking.loading import load_picker
    from xiaonet.models.presets import build_student

    if spec.get("untrained"):
        picker = ModelPicker(build_student(spec["model"]), name=spec["model"])
    else:
        picker = load_picker(spec["model"], weights=spec.get("weights", "original"),
                             runtime="torch" if spec["runtime"] == "torch" else None)
    n_picks = sum(len(picker.pick(block.to_stream(), note=lambda message: None)) for block in data.blocks)
    loaded = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "seisbench", "obspy"})
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "n_picks": n_picks, "loaded": loaded}))


def measure_fresh_process(spec: dict, timeout: float = 900) -> dict:
    """Run :func:`rss_child` in a new interpreter; returns its JSON report."""
    if spec["runtime"].startswith(("onnx", "c-")):  # numpy + xiaonet.edge only, not even this module
        code = "import json, sys; from xiaonet.speed.memory_probe import edge_child; edge_child(json.loads(sys.argv[1]))"
    else:
        code = "import json, sys; from xiaonet.speed.fresh_process import rss_child; rss_child(json.loads(sys.argv[1]))"
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[variable] = str(spec["threads"])
    result = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True,
                            text=True, timeout=timeout, env=env)
    if result.returncode != 0:
        raise BenchmarkError(f"fresh process for {spec['model']}:{spec['runtime']} failed: "
                             f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def baseline_rss_mb() -> float:
    """Peak RSS of a fresh interpreter that imports numpy only (the floor of every row)."""
    code = "import numpy, json; from xiaonet.speed.memory_probe import peak_rss_mb; print(peak_rss_mb())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return float(result.stdout.strip().splitlines()[-1])
