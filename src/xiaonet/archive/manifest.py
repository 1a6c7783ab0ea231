"""The run folder of an archive run: per-chunk Parquet, a manifest of finished chunks, resume.

::

    RUN_DIR/run.json          the settings the picks depend on (picker, chunking, margins)
    RUN_DIR/manifest.jsonl    one line per finished chunk: ok (with its pick count) or failed (why)
    RUN_DIR/chunks/ID.parquet the picks a chunk owns (columns of PICK_SCHEMA)

A chunk's Parquet file is written to a temporary name and renamed into place (atomic), and
only then is its manifest line appended and flushed: a run killed at any moment leaves either
a finished chunk (file and line) or one that the next run picks again and replaces. The
merged table reads the files of the finished chunks of the current plan only, so a resumed
run has no duplicate. A run folder refuses settings other than its own (picks of two pickers
or two chunkings never mix).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator

import obspy

from xiaonet.archive.chunks import pick_time

PICK_FIELDS = ("network", "station", "location", "channel", "phase", "time", "probability", "uncertainty_s",
               "snr_db", "picker")


def _schema():
    import pyarrow as pa

    return pa.schema([("network", pa.string()), ("station", pa.string()), ("location", pa.string()),
                      ("channel", pa.string()), ("phase", pa.string()), ("time", pa.timestamp("ns", tz="UTC")),
                      ("probability", pa.float64()), ("uncertainty_s", pa.float64()), ("snr_db", pa.float64()),
                      ("picker", pa.string())])


def pick_columns(picks: Iterable, picker: str) -> dict[str, list]:
    """Picks (SeisBench ``Pick`` or ``EdgePick``) as the columns of a chunk's Parquet file."""
    columns: dict[str, list] = {name: [] for name in PICK_FIELDS}
    for pick in picks:
        network, station, location = (pick.trace_id.split(".") + ["", "", ""])[:3]
        columns["network"].append(network)
        columns["station"].append(station)
        columns["location"].append(location)
        columns["channel"].append(getattr(pick, "channel", ""))
        columns["phase"].append(pick.phase)
        columns["time"].append(obspy.UTCDateTime(pick_time(pick)).ns)
        columns["probability"].append(None if pick.peak_value is None else float(pick.peak_value))
        columns["uncertainty_s"].append(float(getattr(pick, "uncertainty_s", float("nan"))))
        columns["snr_db"].append(float(getattr(pick, "snr_db", float("nan"))))
        columns["picker"].append(picker)
    return columns


def picks_from_table(table) -> list:
    """A chunk's Parquet table back as pick objects (``EdgePick``) for the pick-table writers
    (a chunk written before the channel and quality columns gives them empty)."""
    import pyarrow as pa

    from xiaonet.edge.picks import EdgePick

    nan = float("nan")
    times = table.column("time").cast(pa.int64()).to_pylist()
    picks = []
    for row, ns in zip(table.drop_columns(["time"]).to_pylist(), times):
        time = obspy.UTCDateTime(ns=ns)
        trace_id = f"{row['network']}.{row['station']}.{row['location']}"
        quality = [nan if row.get(name) is None else row[name] for name in ("uncertainty_s", "snr_db")]
        picks.append(EdgePick(trace_id, time, time, time, row["probability"], row["phase"], row.get("channel") or "",
                              *quality))
    return picks


class RunSettingsError(ValueError):
    """The run folder was made by a run with other settings."""


class RunFolder:
    """Per-chunk results of one archive run (see the module docstring)."""

    def __init__(self, path: str | Path, settings: dict):
        self.path = Path(path)
        self.chunks_dir = self.path / "chunks"
        self.manifest = self.path / "manifest.jsonl"
        settings_file = self.path / "run.json"
        if settings_file.exists():
            saved = json.loads(settings_file.read_text())
            changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
            if changed:
                detail = ", ".join(f"{k}: {saved.get(k)!r} there, {settings.get(k)!r} now" for k in changed)
                raise RunSettingsError(
                    f"{self.path}: run folder of a run with other settings ({detail}); resume with the "
                    "same options, or give another --run-dir")
        else:
            self.chunks_dir.mkdir(parents=True, exist_ok=True)
            _write_atomic(settings_file, (json.dumps(settings, indent=1, sort_keys=True) + "\n").encode())
        self.chunks_dir.mkdir(parents=True, exist_ok=True)

    def entries(self) -> dict[str, dict]:
        """The latest manifest line of every chunk (a half-written last line is ignored)."""
        latest: dict[str, dict] = {}
        if not self.manifest.exists():
            return latest
        with open(self.manifest) as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                    latest[entry["chunk"]] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut by a kill: that chunk is simply picked again
        return latest

    def finished(self, chunks: Iterable | None = None) -> set[str]:
        """Chunks done and on disk (of ``chunks``, planned :class:`xiaonet.archive.chunks.Chunk`
        objects, only those that owned the same span then): a resumed run skips these."""
        owned = None if chunks is None else {chunk.id: list(chunk.owned) for chunk in chunks}
        return {cid for cid, entry in self.entries().items()
                if entry.get("status") == "ok" and (owned is None or owned.get(cid) == entry.get("owned"))
                and self.parquet(cid).exists()}

    def parquet(self, chunk_id: str) -> Path:
        return self.chunks_dir / f"{chunk_id}.parquet"

    def record(self, result) -> None:
        """Store a :class:`xiaonet.archive.runner.ChunkResult`: Parquet first, then its line."""
        entry = {"chunk": result.chunk_id, "status": "failed" if result.error else "ok",
                 "owned": list(result.owned), "station_days": round(result.station_days, 6),
                 "seconds": round(result.seconds, 3), "cpu_seconds": round(result.cpu_seconds, 3),
                 "peak_rss_mb": round(result.peak_rss_mb, 1),
                 "worker": result.worker}
        if result.error:
            entry["reason"] = result.error
        else:
            import io

            import pyarrow as pa
            import pyarrow.parquet as pq

            buffer = io.BytesIO()
            columns = {name: result.picks.get(name, []) for name in PICK_FIELDS}
            pq.write_table(pa.table(columns, schema=_schema()), buffer)
            _write_atomic(self.parquet(result.chunk_id), buffer.getvalue())
            entry["picks"] = result.n_picks
        if result.notes:
            entry["notes"] = result.notes
        with open(self.manifest, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def picks(self, chunks: list) -> Iterator[list]:
        """The picks of each finished chunk of ``chunks`` (the plan), one list per chunk, in order."""
        import pyarrow.parquet as pq

        done = self.finished(chunks)
        for chunk in chunks:
            if chunk.id in done:
                yield picks_from_table(pq.read_table(self.parquet(chunk.id)))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
