"""What a fresh benchmark process runs to measure peak memory: torch-free, so that the ONNX rows
show the footprint of numpy + ONNX Runtime alone. Importing this module imports nothing but
the standard library; :func:`edge_child` imports numpy and :mod:`xiaonet.edge`.
"""

from __future__ import annotations

import json
import sys


def peak_rss_mb() -> float:
    """Peak resident set size of this process (VmHWM on Linux, ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)


def edge_child(spec: dict) -> None:
    """Body of the fresh process of an ONNX row: load the model with :mod:`xiaonet.edge`, pick
    the saved data (npz) once, print peak RSS, pick count and any heavy module it loaded."""
    import numpy as np

    if "c" in spec:  # the generated C library through ctypes: numpy only, no onnxruntime
        from xiaonet.edge.c_runtime import CPicker

        picker = CPicker(spec["c"])
    else:
        from xiaonet.edge import EdgePicker

        picker = EdgePicker(spec["onnx"], threads=int(spec["threads"]))
    order = ["ZNE".index(c) for c in picker.model.metadata.component_order]
    n_picks = 0
    with np.load(spec["data"]) as saved:
        for i, block in enumerate(json.loads(str(saved["meta"]))):
            data = saved[f"data_{i}"]
            if order != [0, 1, 2]:
                data = data[order]
            n_picks += len(picker.pick_array(data, block["start"], block["trace_id"]))
            del data
    heavy = {"torch", "seisbench", "obspy"} | ({"onnxruntime"} if "c" in spec else set())
    loaded = sorted({m.split(".")[0] for m in sys.modules} & heavy)
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "n_picks": n_picks, "loaded": loaded}))
