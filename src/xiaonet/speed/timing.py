"""Timing helpers: latency percentiles at batch 1 and CPU / wall time over repeats."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

# --- timing helpers ---------------------------------------------------------------------------


def latency_percentiles(call: Callable[[], object], calls: int, warmup: int = 3) -> tuple[float, float]:
    """(p50, p99) wall time of ``call`` in milliseconds."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(max(1, calls)):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    times_ms = np.array(times) * 1e3
    return float(np.percentile(times_ms, 50)), float(np.percentile(times_ms, 99))


def time_repeats(call: Callable[[], object], repeats: int) -> tuple[list[float], list[float], object]:
    """Wall and process-CPU seconds of each of ``repeats`` calls (after one untimed warm-up),
    and the last result."""
    result = call()
    wall, cpu = [], []
    for _ in range(max(1, repeats)):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = call()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu, result
