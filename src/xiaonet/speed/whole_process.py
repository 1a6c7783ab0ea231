"""``xiaonet pick`` as a user runs it: the whole process, start-up included.

The in-process rows of :mod:`xiaonet.speed.benchmarking` time picking inside one warm
interpreter. A user pays more: starting Python, importing the runtime, building the picker,
reading the file, writing the CSV. Each command here is started the way a shell starts it
and measured from outside: wall seconds, CPU seconds (user + sys) and peak resident memory
(``ru_maxrss``) of that process, from ``os.wait4``.

Why a launcher: on Linux a child's ``ru_maxrss`` starts from the high-water mark of the
address space it was forked or vforked from, so a child started straight from this (large,
torch-importing) process would report this process's peak. A minimal ``python -S`` launcher
(about 10 MB) spawns the command and reports its rusage, as ``/usr/bin/time`` does.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from xiaonet.speed.data import BenchmarkData

#: Spawns argv[1:] and prints its wall time, CPU time and peak RSS as JSON (standard library only).
_LAUNCHER = """\
import json, os, sys, time
start = time.perf_counter()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
scale = 1.0 / 1024 / (1024 if sys.platform == "darwin" else 1)
print(json.dumps({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                  "peak_rss_mb": usage.ru_maxrss * scale, "exit": os.waitstatus_to_exitcode(status)}))
"""


@dataclass
class CommandRow:
    """One command a user types, measured ``repeats`` times after one untimed warm-up."""

    label: str  # what the table shows, e.g. "xiaonet pick FILE --picker stalta"
    picker: str  # the picker it runs (the default student's preset name, stalta, phasenet)
    argv: list[str] = field(default_factory=list)
    wall_seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    peak_rss_mb: list[float] = field(default_factory=list)
    n_picks: int | None = None
    #: The untimed first run (it builds the ONNX cache when the weights are new).
    warmup: dict | None = None
    error: str = ""

    def median(self, name: str) -> float | None:
        values = getattr(self, name)
        return float(np.median(values)) if values else None


def xiaonet_command() -> list[str]:
    """The ``xiaonet`` console script of this interpreter's environment (what a user types)."""
    beside = Path(sys.executable).parent / "xiaonet"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("xiaonet")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from xiaonet.cli import main; sys.exit(main())"]


def run_measured(argv: list[str], timeout: float = 900) -> dict:
    """Run ``argv`` through the launcher; wall, cpu, peak_rss_mb, exit and stderr of the command."""
    executable = shutil.which(argv[0]) or argv[0]
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER, executable, *argv[1:]],
                                   stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True)
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the launcher and the command it started
            process.communicate()
            return {"exit": None, "stderr": f"timed out after {timeout:.0f} s"}
        stderr.seek(0)
        messages = stderr.read()
    lines = out.strip().splitlines()
    if process.returncode != 0 or not lines:
        return {"exit": None, "stderr": messages or f"launcher exited {process.returncode}"}
    return {**json.loads(lines[-1]), "stderr": messages}


def count_csv_rows(path: Path) -> int:
    with open(path, newline="") as table:
        return max(0, sum(1 for _ in csv.reader(table)) - 1)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


def measure_command(row: CommandRow, repeats: int, table: Path, timeout: float = 900) -> CommandRow:
    """Fill ``row`` from one untimed warm-up and ``repeats`` timed runs of ``row.argv``; the pick
    count is read from the CSV the command writes (``--out table`` is added here)."""
    argv = [*row.argv, "--out", str(table)]
    for attempt in range(1 + max(1, repeats)):
        table.unlink(missing_ok=True)
        result = run_measured(argv, timeout)
        if result["exit"] != 0:
            row.error = f"exit {result['exit']}: {last_line(result['stderr'])}"
            return row
        if attempt == 0:
            row.warmup = {k: result[k] for k in ("wall", "cpu", "peak_rss_mb")}
            continue
        row.wall_seconds.append(result["wall"])
        row.cpu_seconds.append(result["cpu"])
        row.peak_rss_mb.append(result["peak_rss_mb"])
        row.n_picks = count_csv_rows(table)
    return row


def data_files_for_cli(data: BenchmarkData, workdir: Path) -> list[str]:
    """The files the in-process rows read when they read them whole; otherwise the benchmark
    blocks written as one miniSEED file, so that both sections pick the same samples."""
    if data.whole_files and data.files:
        return list(data.files)
    import obspy

    stream = obspy.Stream()
    for block in data.blocks:
        stream += block.to_stream()
    path = workdir / "cli-data.mseed"
    stream.write(str(path), format="MSEED")
    return [str(path)]


def run_cli_benchmark(data: BenchmarkData, workdir: Path, repeats: int, threads: int, with_phasenet: bool,
                      note: Callable[[str], None] = print) -> dict:
    """Measure the commands of the CLI section on the benchmark data; a JSON-ready dict."""
    from xiaonet.models.presets import DEFAULT_PRESET

    files = data_files_for_cli(data, workdir)
    xiaonet = xiaonet_command()
    shown = "FILE" if len(files) == 1 else "FILES"
    extra = ["--threads", str(threads)] if threads != 1 else []
    rows = [
        CommandRow(f"xiaonet pick {shown}", DEFAULT_PRESET, [*xiaonet, "pick", *files, *extra]),
        CommandRow(f"xiaonet pick {shown} --picker stalta", "stalta", [*xiaonet, "pick", *files, "--picker", "stalta"]),
        CommandRow(f"xiaonet pick {shown} --picker phasenet", "phasenet",
                   [*xiaonet, "pick", *files, "--picker", "phasenet", *extra]),
        CommandRow("xiaonet pick --example", DEFAULT_PRESET, [*xiaonet, "pick", "--example", *extra]),
    ]
    for index, row in enumerate(rows):
        if row.picker == "phasenet" and not with_phasenet:
            row.error = "not run: phasenet is not among the benchmark's --picker models"
            note(f"cli: {row.label}: {row.error}")
            continue
        note(f"cli: measuring `{row.label}` (1 untimed warm-up + {max(1, repeats)} runs)")
        measure_command(row, repeats, workdir / f"cli-{index}-{row.picker}.csv")
        if row.error:
            note(f"cli: {row.label}: {row.error}")
    return {
        "files": files,
        "command": xiaonet,
        "default_preset": DEFAULT_PRESET,
        "repeats": max(1, repeats),
        "rows": [asdict(row) | {"wall_s": row.median("wall_seconds"), "cpu_s": row.median("cpu_seconds"),
                                 "peak_rss_mb_median": row.median("peak_rss_mb")} for row in rows],
    }
