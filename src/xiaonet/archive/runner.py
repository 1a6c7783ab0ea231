"""Picking chunks on Dask distributed (or in this process), one picker per worker.

Tasks carry a :class:`PickerRequest` (the picker's command-line spec, a few strings), not the
picker: each worker process builds it the first time it meets the request and keeps it
(:func:`worker_picker`), so a teacher's weights are loaded once per worker, not per chunk.
The driver keeps a bounded number of chunks in flight and hands every result to a callback
as it arrives (the run folder writes it), so neither the driver nor the scheduler ever holds
the whole archive's plan as tasks.
"""

from __future__ import annotations

import functools
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Iterable

from xiaonet.archive.chunks import Chunk, pick_chunk, with_files


@dataclass(frozen=True)
class PickerRequest:
    """A picker as the command line names it: what :func:`xiaonet.picking.loading.load_picker`
    builds it from, in a few strings a task can carry."""

    picker: str | None = None
    weights: str = "original"
    threshold: tuple[str, ...] = ()
    stalta: tuple[str, ...] = ()
    threads: int = 1
    runtime: str | None = None

    def load(self):
        """Build the picker (raises ValueError / FileNotFoundError / RuntimeError)."""
        from xiaonet.picking.specs import picker_from_options

        return picker_from_options(self.picker, self.weights, self.threshold, self.stalta, self.runtime,
                                   self.threads)


@functools.lru_cache(maxsize=2)
def worker_picker(request: PickerRequest):
    """The picker of ``request``, built once per process (a Dask worker keeps it between chunks)."""
    return request.load()


def load_on_worker(request: PickerRequest) -> str:
    """Load the picker into this worker's cache ahead of its first chunk (``client.run``)."""
    return worker_picker(request).name


@dataclass
class ChunkResult:
    """What a worker sends back for one chunk: its picks as columns, or why it failed."""

    chunk_id: str
    station_days: float
    owned: tuple[float, float] = (0.0, 0.0)  # the span the chunk owned (a resume checks it)
    picks: dict = field(default_factory=dict)  # columns of xiaonet.archive.manifest.PICK_SCHEMA
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of the worker process on this chunk (picker loading included)
    peak_rss_mb: float = 0.0  # the worker process's peak memory so far (this chunk and those before)
    worker: str = ""

    @property
    def n_picks(self) -> int:
        return len(self.picks.get("time", []))


def run_chunk(request: PickerRequest, chunk: Chunk, margin: float, block: float) -> ChunkResult:
    """Pick one chunk; any failure (an unreadable file, a picker error) becomes the result's
    ``error``, one line naming the file or the exception, so the run goes on."""
    from xiaonet.archive.manifest import pick_columns

    from xiaonet.speed.memory_probe import peak_rss_mb

    started, cpu_started = time.perf_counter(), time.process_time()
    notes: list[str] = []
    result = ChunkResult(chunk.id, chunk.station_days, chunk.owned, worker=f"pid {os.getpid()}")
    try:
        picker = worker_picker(request)
        picks = pick_chunk(picker, chunk, margin, block, note=notes.append)
        result.picks = pick_columns(picks, picker.name)
    except Exception as error:  # one bad chunk never takes the run down
        where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
        result.error = f"{type(error).__name__}: {error}" + (
            f" (at {os.path.basename(where.filename)}:{where.lineno})" if where and
            type(error).__name__ != "ChunkReadError" else "")
    result.notes = list(dict.fromkeys(notes))
    result.seconds = time.perf_counter() - started
    result.cpu_seconds = time.process_time() - cpu_started
    result.peak_rss_mb = peak_rss_mb()
    return result


def start_client(workers: int | None = None, scheduler: str | None = None, memory_limit: str = "auto"):
    """A Dask client: on the cluster at ``scheduler`` (``tcp://HOST:PORT``), or on a new
    ``LocalCluster`` of ``workers`` single-threaded worker processes (default: one per core)."""
    import logging

    from distributed import Client, LocalCluster

    for name in ("distributed", "bokeh", "tornado"):  # their INFO lines would bury the progress bar
        logging.getLogger(name).setLevel(logging.WARNING)
    if scheduler:
        return Client(scheduler, timeout="30s")
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                           memory_limit=memory_limit, silence_logs=40)
    return Client(cluster)


def run_chunks(request: PickerRequest, chunks: Iterable[Chunk], margin: float, block: float,
               on_result: Callable[[ChunkResult], None], client=None, in_flight: int | None = None) -> None:
    """Pick ``chunks``, calling ``on_result`` for each as it finishes (in completion order).

    ``client``: a ``distributed.Client`` (chunks run on its workers, at most ``in_flight`` at a
    time: default four per worker thread), or None to run them here, one after the other.
    """
    chunks = iter(chunks)
    if client is None:
        for chunk in chunks:
            on_result(run_chunk(request, with_files(chunk, margin), margin, block))
        return
    from distributed import as_completed

    if in_flight is None:
        in_flight = 4 * max(1, sum(client.nthreads().values()))
    futures = as_completed()
    pending = {}

    def submit(count: int) -> None:
        for chunk in chunks:
            future = client.submit(run_chunk, request, with_files(chunk, margin), margin, block, pure=False)
            pending[future.key] = chunk
            futures.add(future)
            count -= 1
            if count <= 0:
                return

    submit(in_flight)
    for future in futures:
        chunk = pending.pop(future.key)
        try:
            result = future.result()
        except Exception as error:  # a worker lost, for instance: the chunk is retried next run
            result = ChunkResult(chunk.id, chunk.station_days, chunk.owned,
                                 error=f"task failed: {type(error).__name__}: {error}")
        future.release()
        on_result(result)
        submit(1)
