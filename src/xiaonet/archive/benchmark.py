"""``xiaonet benchmark archive``: throughput, parallel efficiency and memory of archive
picking, and the cost of re-picking 10 years x 1,000 stations, measured (docs/archive.md).

An SDS archive of 24 h, 200 Hz, 3-component station-days is built in a temp folder from real
data (12 h of CX.PB01 / CX.PB02 in ../shared, interpolated to 200 Hz, twice per day), then
picked through the same code as ``xiaonet pick --sds`` on a ``LocalCluster`` of 1 and 2 worker
processes. Each worker loads its picker before the clock starts (a long run loads it once);
every figure is the median of ``--repeats`` runs. Plain ``xiaonet pick`` of one such day file
is run in a fresh process for its peak memory, with this code and, given ``--before
SRC``, with another checkout's (whole-file reading).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = ("data", "continuous", "chile_CX_deepphasepick")
STATION_DAYS_10Y_1000 = 10 * 365.25 * 1000


def build_archive(root: Path, shared: Path, stations: int, days: int, rate: float) -> Path:
    """``stations`` x ``days`` SDS day files (``CX.B001`` ...), each a real 12 h twice, at ``rate``."""
    import obspy

    sources = sorted((shared / Path(*SOURCE)).glob("CX.PB0?..HH_.20140430T235959.mseed"))
    if not sources:
        raise SystemExit(f"no 12 h CX files in {shared / Path(*SOURCE)}")
    day0 = obspy.UTCDateTime("2021-01-01")
    for s in range(stations):
        half = obspy.read(str(sources[s % len(sources)]))
        half.merge(method=1, fill_value=0)
        if rate != half[0].stats.sampling_rate:
            half.interpolate(rate)
        for trace in half:
            trace.data = trace.data.round().astype("int32")
        for d in range(days):
            for trace in half:
                day = obspy.Stream()
                for k in range(2):
                    piece = trace.copy()
                    piece.stats.station = f"B{s + 1:03d}"
                    piece.stats.starttime = day0 + d * 86400 + k * 43200
                    day += piece
                day.merge(method=1)
                day.trim(day0 + d * 86400, day0 + (d + 1) * 86400 - day[0].stats.delta)
                code = day[0].stats.channel
                folder = root / str(day0.year) / "CX" / f"B{s + 1:03d}" / f"{code}.D"
                folder.mkdir(parents=True, exist_ok=True)
                start = day0 + d * 86400
                day.write(str(folder / f"CX.B{s + 1:03d}..{code}.D.{start.year}.{start.julday:03d}"),
                          format="MSEED", encoding="STEIM2", reclen=4096)
    return root


def measure(spec: str, root: Path, workers: int, repeats: int, block: float) -> dict:
    """Timed runs of the whole archive on ``workers`` worker processes (pickers loaded first)."""
    from xiaonet.archive.chunks import default_margin, plan_chunks
    from xiaonet.archive.runner import PickerRequest, load_on_worker, run_chunks, start_client, worker_picker
    from xiaonet.data.archive_sources import sds_files

    request = PickerRequest(spec)
    margin = default_margin(worker_picker(request))
    chunks = plan_chunks(sds_files(root))
    client = start_client(workers)
    try:
        client.run(load_on_worker, request)  # every worker loads the picker once, before the clock
        walls, cpu, rss, picks = [], [], {}, []
        for _ in range(repeats):
            results = []
            started = time.perf_counter()
            run_chunks(request, chunks, margin, block, results.append, client)
            walls.append(time.perf_counter() - started)
            failed = [r.error for r in results if r.error]
            if failed:
                raise SystemExit(f"{spec}: {len(failed)} chunk(s) failed: {failed[0]}")
            cpu.append(sum(r.cpu_seconds for r in results))
            picks.append(sum(r.n_picks for r in results))
            for r in results:
                rss[r.worker] = max(rss.get(r.worker, 0.0), r.peak_rss_mb)
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    station_days = sum(c.station_days for c in chunks)
    wall, cpu_s = statistics.median(walls), statistics.median(cpu)
    return {"picker": spec, "workers": workers, "station_days": station_days, "wall_s": wall,
            "station_days_per_min": 60 * station_days / wall, "cpu_s": cpu_s,
            "station_days_per_cpu_s": station_days / cpu_s, "peak_rss_mb": max(rss.values()),
            "picks": picks[0], "walls": walls}


def plain_pick_rss(spec: str, path: Path, src: str) -> dict:
    """Peak RSS and wall time of ``xiaonet pick FILE --picker SPEC`` in a fresh process (code in ``src``)."""
    code = ("import json, sys, time; t = time.perf_counter(); from xiaonet.cli import main; "
            "rc = main(sys.argv[1:]); from xiaonet.speed.memory_probe import peak_rss_mb; "
            "print(json.dumps({'rc': rc, 'peak_rss_mb': peak_rss_mb(), 'wall_s': time.perf_counter() - t}))")
    env = dict(os.environ, PYTHONPATH=src, OMP_NUM_THREADS="1")
    with tempfile.NamedTemporaryFile(suffix=".csv") as out:
        result = subprocess.run([sys.executable, "-c", code, "pick", str(path), "--picker", spec, "--out",
                                 out.name, "--no-progress"], capture_output=True, text=True, env=env)
        rows = len(Path(out.name).read_text().splitlines()) - 1 if result.returncode == 0 else -1
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["?"])[-1]}
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "picks": rows}


def run_archive_benchmark(shared: Path, picker: str = "xiaonet-s,ONNX,phasenet,stalta", workers: str = "1,2",
                          stations: int = 2, days: int = 2, rate: float = 200.0, repeats: int = 3,
                          block: float = 3600.0, before: str | None = None, json_path: str | None = None,
                          archive: str | None = None) -> int:
    """Build (or reuse) an SDS archive of ``stations`` x ``days`` from ``shared``'s records, pick
    it on Dask with each number of ``workers`` for each picker (comma-separated; ``ONNX`` =
    xiaonet-s exported here), and a plain ``xiaonet pick`` of one day file in a fresh process;
    print the tables (``xiaonet benchmark archive``)."""
    with tempfile.TemporaryDirectory(prefix="xiaonet-archive-bench-") as tmp:
        tmp = Path(tmp)
        root = Path(archive) if archive else tmp / "sds"
        if not root.exists():
            build_archive(root, Path(shared), stations, days, rate)
        pickers = []
        for name in picker.split(","):
            if name == "ONNX":
                from xiaonet.export.onnx_files import export_onnx
                from xiaonet.models.presets import load_student

                name = str(export_onnx(load_student("xiaonet-s"), tmp / "xiaonet-s.onnx", "xiaonet-s"))
            pickers.append(name)
        rows = []
        for picker in pickers:
            for workers in workers.split(","):
                rows.append(measure(picker, root, int(workers), repeats, block))
                print(json.dumps({k: v for k, v in rows[-1].items()}), flush=True)
        day_file = sorted(root.rglob("*.D.*"))[0].parent.parent  # one station's folder: 3 components
        one_day = tmp / "day.mseed"
        import obspy

        stream = obspy.Stream()
        for channel in sorted(day_file.iterdir()):
            stream += obspy.read(str(sorted(channel.iterdir())[0]))
        stream.write(str(one_day), format="MSEED", encoding="STEIM2", reclen=4096)
        del stream
        here = str(Path(__file__).resolve().parents[2])
        plain = [{"picker": p, "code": "this", **plain_pick_rss(p, one_day, here)} for p in pickers]
        if before:
            plain += [{"picker": p, "code": "before", **plain_pick_rss(p, one_day, before)}
                      for p in pickers if not p.endswith(".onnx")]

    print(f"\n{stations} stations x {days} days, {rate:g} Hz, 3 components; medians of "
          f"{repeats} runs; {os.cpu_count()} cores\n")
    print("| picker | workers | station-days/min | station-days per CPU-s | parallel efficiency | "
          "peak RSS per worker | core-hours for 10 y x 1,000 stations |")
    print("|---|---|---|---|---|---|---|")
    single = {r["picker"]: r for r in rows if r["workers"] == 1}
    for r in rows:
        base = single.get(r["picker"])
        eff = (f"{r['station_days_per_min'] / (r['workers'] * base['station_days_per_min']):.0%}"
               if base and r["workers"] > 1 else "-")
        print(f"| {Path(r['picker']).name} | {r['workers']} | {r['station_days_per_min']:.2f} | "
              f"{r['station_days_per_cpu_s']:.4f} | {eff} | {r['peak_rss_mb']:.0f} MB | "
              f"{STATION_DAYS_10Y_1000 / r['station_days_per_cpu_s'] / 3600:,.0f} |")
    print("\nplain `xiaonet pick` of one 24 h, 200 Hz, 3-component file (fresh process):\n")
    print("| picker | code | peak RSS | wall | picks |")
    print("|---|---|---|---|---|")
    for r in plain:
        if "error" in r:
            print(f"| {Path(r['picker']).name} | {r['code']} | failed: {r['error']} | | |")
        else:
            print(f"| {Path(r['picker']).name} | {r['code']} | {r['peak_rss_mb']:.0f} MB | {r['wall_s']:.1f} s "
                  f"| {r['picks']} |")
    if json_path:
        Path(json_path).write_text(json.dumps({"rows": rows, "plain": plain}, indent=1))
    return 0

