"""``xiaonet pick`` over an archive (``--sds ROOT`` or ``--run-dir``), and plain ``xiaonet pick``
of files in blocks: the orchestration behind the command line. What a run is asked for is an
:class:`ArchiveRun` (argparse lives in :mod:`xiaonet.cli.pick`, which fills one in)."""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from xiaonet.archive.chunks import DEFAULT_BLOCK, default_margin, pick_chunk, plan_chunks
from xiaonet.data.archive_sources import folder_files

#: Failed chunks listed one per line in the summary (all of them are in the manifest).
LISTED_FAILURES = 20


@dataclass
class ArchiveRun:
    """An archive run: the picker (a spec for :func:`xiaonet.picking.loading.load_picker`),
    the data (an SDS root, or waveform files / folders), the span and channels, the chunking,
    where the run folder and the tables go, and the Dask cluster. ``chunk`` and ``block`` are
    durations (``1d``, ``6h``); ``margin`` None is the picker's own (from its window);
    ``workers`` None is one per core, 0 no Dask."""

    picker: str | None
    weights: str
    chunk: str
    block: str
    threshold: list[str] = field(default_factory=list)
    stalta: list[str] = field(default_factory=list)
    runtime: str | None = None
    threads: int = 1
    sds: str | None = None
    inputs: list[str] = field(default_factory=list)
    select: list[str] = field(default_factory=list)
    start: str | None = None
    end: str | None = None
    margin: float | None = None
    run_dir: str | None = None
    out: str | None = None
    quakeml: str | None = None
    workers: int | None = None
    scheduler: str | None = None
    progress: bool = True


def pick_files(picker, files: list[Path], failures: list[str], notes: list[str], progress: bool = True,
               block: float = DEFAULT_BLOCK, on_station: Callable | None = None) -> tuple[list, int]:
    """Plain ``xiaonet pick``: every instrument of ``files`` picked in blocks of ``block``
    seconds with margins (memory bounded by a block, not by the file), the picks identical to
    whole-trace picking up to the blocks' window placement. Returns ``(picks, n_instruments)``;
    unreadable files and failing instruments go to ``failures``, the rest to ``notes``.
    ``on_station(chunk, picks)`` is called after each instrument (figures)."""
    from tqdm import tqdm

    spans = folder_files(files, note=failures.append, unreadable=failures.append)
    chunks = plan_chunks(spans, None)
    margin = default_margin(picker)
    picks: list = []
    for chunk in tqdm(chunks, desc=f"picking ({picker.name})", unit="station",
                      disable=not progress or len(chunks) < 2):
        try:
            found = pick_chunk(picker, chunk, margin, block, note=notes.append)
        except Exception as error:  # one bad station never takes the batch down
            failures.append(f"{chunk.key}: picking failed: {type(error).__name__}: {error}")
            continue
        picks.extend(found)
        if on_station is not None:
            on_station(chunk, found)
    notes[:] = [m for m in dict.fromkeys(notes) if m not in failures]
    return picks, len(spans)


def _utc(text: str | None, option: str):
    import obspy

    if not text:
        return None
    try:
        return obspy.UTCDateTime(text)
    except Exception:
        raise ValueError(f"{option} '{text}' is not a UTC time (e.g. 2020-01-01 or 2020-01-01T12:00)") from None


def archive_settings(run: ArchiveRun, picker, chunk_seconds: float, block_seconds: float, margin: float) -> dict:
    """What the picks of a run depend on: a run folder refuses to mix other settings in."""
    return {"picker": picker.name, "picker_spec": run.picker, "weights": run.weights,
            "threshold": sorted(run.threshold), "stalta": sorted(run.stalta),
            "runtime": run.runtime or "default",
            "chunk_seconds": chunk_seconds, "block_seconds": block_seconds, "margin_seconds": margin}


def run_archive(run: ArchiveRun) -> int:
    """``xiaonet pick --sds ROOT`` / ``--run-dir DIR``: plan, pick on Dask, resume, merge."""
    from tqdm import tqdm

    from xiaonet.archive.chunks import parse_duration
    from xiaonet.archive.manifest import RunFolder, RunSettingsError
    from xiaonet.archive.runner import PickerRequest, run_chunks, start_client
    from xiaonet.data.archive_sources import sds_files
    from xiaonet.data.waveforms import WaveformInputError, waveform_files
    from xiaonet.data.picktable import pick_rows, write_csv, write_quakeml

    def refuse(message: str) -> int:
        print(f"xiaonet pick: {message}", file=sys.stderr)
        return 2

    run_dir = run.run_dir or (f"{run.out}.run" if run.out else None)
    if run_dir is None:
        return refuse("an archive run needs --run-dir DIR (or --out FILE: the run folder is FILE.run)")
    if bool(run.sds) == bool(run.inputs):
        return refuse("give either --sds ROOT or waveform files / folders, not both or neither")
    try:
        chunk_seconds = parse_duration(run.chunk)
        block_seconds = parse_duration(run.block)
        start, end = (_utc(run.start, "--start"), _utc(run.end, "--end"))
        request = PickerRequest(run.picker, run.weights, tuple(run.threshold), tuple(run.stalta),
                                max(1, int(run.threads or 1)), run.runtime)
        picker = request.load()  # here first: a bad spec is refused before any worker starts
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as error:
        return refuse(str(error))
    margin = float(run.margin) if run.margin is not None else default_margin(picker)

    failures: list[str] = []
    t0 = float(start.timestamp) if start else float("-inf")
    t1 = float(end.timestamp) if end else float("inf")
    try:
        if run.sds:
            files = sds_files(run.sds, run.select, start, end)
        else:
            files = folder_files(waveform_files(run.inputs), run.select, unreadable=failures.append)
        chunks = plan_chunks(files, chunk_seconds, t0, t1)
        if not chunks:
            print(f"xiaonet pick: nothing to pick: {why_nothing(run, files, start, end)}", file=sys.stderr)
            for message in failures[:LISTED_FAILURES]:
                print(f"  {message}", file=sys.stderr)
            return 1
        folder = RunFolder(run_dir, archive_settings(run, picker, chunk_seconds, block_seconds, margin))
    except (WaveformInputError, RunSettingsError, ValueError) as error:
        return refuse(str(error))
    done = folder.finished(chunks)
    todo = [chunk for chunk in chunks if chunk.id not in done]
    print(f"{len(chunks)} chunk(s) of {len(files)} instrument(s), {sum(c.station_days for c in chunks):.2f} "
          f"station-days; {len(done)} already done in {run_dir}, {len(todo)} to pick "
          f"(margin {margin:g} s, blocks of {block_seconds:g} s)", file=sys.stderr)

    client = None
    if todo and (run.workers != 0 or run.scheduler):
        try:
            client = start_client(run.workers, run.scheduler)
        except Exception as error:
            return refuse(f"no Dask cluster ({type(error).__name__}: {error})")
        if client.dashboard_link:
            print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)
    counts = {"chunks": 0, "station_days": 0.0, "picks": 0, "failed": 0}
    bar = tqdm(total=len(todo), desc=f"picking ({picker.name})", unit="chunk", disable=not run.progress)

    def on_result(result) -> None:
        folder.record(result)
        counts["chunks"] += 1
        if result.error:
            counts["failed"] += 1
        else:
            counts["station_days"] += result.station_days
            counts["picks"] += result.n_picks
        bar.update(1)
        bar.set_postfix(station_days=f"{counts['station_days']:.1f}", picks=counts["picks"],
                        failed=counts["failed"], refresh=False)

    interrupted = False
    try:
        run_chunks(request, todo, margin, block_seconds, on_result, client)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        if client is not None:
            _close_quietly(client, None if run.scheduler else getattr(client, "cluster", None))
    if interrupted:
        n_done = len(folder.finished(chunks))
        print(f"xiaonet pick: interrupted; {n_done} of {len(chunks)} chunk(s) are done and kept in {run_dir}: "
              "rerun the same command to resume", file=sys.stderr)
        return 130

    entries = folder.entries()
    failed = [(c.id, entries.get(c.id, {}).get("reason", "not picked")) for c in chunks
              if c.id not in folder.finished(chunks)]
    if run.quakeml:  # one catalog: the whole table in memory (the CSV is written chunk by chunk)
        write_quakeml(list(itertools.chain.from_iterable(folder.picks(chunks))), picker.name, run.quakeml)
    n = {"P": 0, "S": 0}

    def rows():
        for chunk_picks in folder.picks(chunks):
            for row in pick_rows(chunk_picks, picker.name):
                n[row["phase"]] = n.get(row["phase"], 0) + 1
                yield row

    write_csv(rows(), run.out or sys.stdout)
    print(f"{picker.name}: {sum(n.values())} picks ({n['P']} P, {n['S']} S) from {len(chunks) - len(failed)} of "
          f"{len(chunks)} chunk(s) ({counts['chunks']} picked now, {len(done)} resumed); "
          f"{len(failed)} chunk(s) failed" + (f"; table written to {run.out}" if run.out else ""),
          file=sys.stderr)
    problems = failures + [f"{cid}: {reason}" for cid, reason in failed]
    if problems:
        print(f"{len(problems)} problem(s):", file=sys.stderr)
        for message in problems[:LISTED_FAILURES]:
            print(f"  {message}", file=sys.stderr)
        if len(problems) > LISTED_FAILURES:
            print(f"  ... and {len(problems) - LISTED_FAILURES} more (reasons in {folder.manifest})",
                  file=sys.stderr)
        return 1
    return 0


def why_nothing(run: ArchiveRun, files: dict, start, end) -> str:
    """What an archive run looked for and did not find, in one line: no waveform files, no
    channel matching ``--select``, or no data between ``--start`` and ``--end``."""
    from xiaonet.data.archive_sources import sds_files
    from xiaonet.data.waveforms import waveform_files

    selection = f" matching --select {' '.join(run.select)}" if run.select else ""
    span = f" between {start or 'the beginning'} and {end or 'the end'}" if start or end else ""
    if run.sds:
        everything = sds_files(run.sds)
        if not everything:
            return (f"no SDS day files under {run.sds} (expected ROOT/YEAR/NET/STA/CHA.D/NET.STA.LOC.CHA.D.YEAR.DAY; "
                    "is it the archive root?)")
        selected = sds_files(run.sds, run.select) if run.select else everything
    else:
        selected = files
        everything = folder_files(waveform_files(run.inputs), unreadable=lambda m: None) if run.select else files
        if not everything:
            return f"no readable waveform files in {' '.join(map(str, run.inputs))}"
    if not selected:
        channels = sorted({f"{key}?" for key in everything})
        return (f"no channel{selection} in {run.sds or ' '.join(map(str, run.inputs))} (it holds "
                f"{', '.join(channels[:6])}{', ...' if len(channels) > 6 else ''})")
    covered = [f for spans in selected.values() for f in spans]
    first = obspy_time(min(f.start for f in covered))
    last = obspy_time(max(f.end for f in covered))
    return f"no data{selection}{span} (the data run from {first} to {last})"


def obspy_time(seconds: float) -> str:
    import obspy

    return str(obspy.UTCDateTime(seconds))


def _close_quietly(client, cluster) -> None:
    """Close the Dask client (and the cluster this run started) without the tracebacks its
    workers and event loop print when a run is stopped with Ctrl-C."""
    import logging

    for name in ("distributed", "asyncio", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        client.close()
        if cluster is not None:
            cluster.close()
    except (Exception, KeyboardInterrupt):
        pass
