"""Archive-scale picking (``xiaonet pick --sds`` / ``--run-dir``): chunked picks equal whole-trace
picks across day boundaries, gaps and overlaps; kill and resume; a bad chunk; Dask workers.

The archive is an SDS tree built here from two real hours of each of two Chilean stations
(../shared), shifted to straddle two midnights: 2 stations x 3 days, a 90 s gap, and day files
that overlap their neighbour by 5 s (as SDS files of records crossing midnight do).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import obspy
import pytest

from xiaonet.archive.chunks import DAY, default_margin, pick_chunk, plan_chunks, with_files
from xiaonet.archive.manifest import RunFolder, RunSettingsError
from xiaonet.archive.runner import ChunkResult, PickerRequest, run_chunks, worker_picker
from xiaonet.data.archive_sources import FileSpan, folder_files, sds_files
from xiaonet.cli import main

DAY0 = obspy.UTCDateTime("2020-03-01")
HOURS = ("20140301T015959", "20140401T015959")
ONE_SAMPLE = 0.0101
#: Students place windows on the absolute sample grid (issue 15), so a chunk's windows are the
#: whole trace's: their picks are held to one sample as STA/LTA's.
STUDENT_TOLERANCE = ONE_SAMPLE
#: The teachers keep SeisBench's windows, which start at each block's first sample: their
#: picks move by a few samples between a chunk and the whole trace.
TEACHER_TOLERANCE = 0.1


@pytest.fixture(scope="module")
def archive(shared_dir, tmp_path_factory):
    """``(sds_root, {station: whole stream})``."""
    source = shared_dir / "data" / "continuous" / "chile_CX_deepphasepick"
    if not (source / f"CX.PB01..HH_.{HOURS[0]}.mseed").exists():
        pytest.skip(f"{source}: the Chilean CX hours are not there")
    root = tmp_path_factory.mktemp("sds")
    whole = {}
    for station in ("PB01", "PB02"):
        stream = obspy.Stream()
        for k, hour in enumerate(HOURS):  # 23:30 - 00:30 around the first and second midnight
            part = obspy.read(str(source / f"CX.{station}..HH_.{hour}.mseed"))
            for trace in part:
                trace.stats.starttime = DAY0 + (k + 1) * DAY - 1800
            stream += part
        if station == "PB02":  # a 90 s gap ten minutes after the first midnight
            cut = DAY0 + DAY + 600
            stream = stream.slice(None, cut) + stream.slice(cut + 90, None)
        whole[station] = stream
        for trace in stream:
            for day in range(3):
                start = DAY0 + day * DAY
                piece = trace.slice(start, start + DAY + 5, nearest_sample=False)  # 5 s into the next day
                if piece.stats.npts < 2:
                    continue
                folder = root / str(start.year) / "CX" / station / f"{trace.stats.channel}.D"
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"CX.{station}..{trace.stats.channel}.D.{start.year}.{start.julday:03d}"
                old = obspy.read(str(path)) if path.exists() else obspy.Stream()
                (old + piece).write(str(path), format="MSEED", reclen=512)
    return root, whole


def pick_set(picks):
    return sorted((p.trace_id, p.phase, float(obspy.UTCDateTime(p.peak_time).timestamp), p.peak_value)
                  for p in picks)


def table_set(path):
    with open(path, newline="") as handle:
        return sorted((f"{r['network']}.{r['station']}.{r['location']}", r["phase"],
                       float(obspy.UTCDateTime(r["time"]).timestamp), float(r["probability"]))
                      for r in csv.DictReader(handle))


def unmatched(picks, others, tolerance, min_probability=0.0):
    """Picks of ``picks`` (at least ``min_probability``) with no pick of the same station and
    phase within ``tolerance`` seconds in ``others``."""
    return [p for p in picks if p[3] >= min_probability and not any(
        o[:2] == p[:2] and abs(o[2] - p[2]) <= tolerance for o in others)]


def whole_trace(picker, whole):
    return pick_set(pick for stream in whole.values() for pick in picker.pick(stream.copy()))


def test_sds_plan_is_one_chunk_per_station_day_tiling_time(archive):
    root, _ = archive
    files = sds_files(root)
    assert list(files) == ["CX.PB01..HH", "CX.PB02..HH"]
    chunks = plan_chunks(files)
    assert [c.id for c in chunks[:3]] == [f"CX.PB01..HH_2020-03-0{d}T000000" for d in (1, 2, 3)]
    assert all(abs(c.station_days - 1) < 0.01 for c in chunks)
    for key in files:  # owned spans tile the axis: every time belongs to exactly one chunk
        owned = [c.owned for c in chunks if c.key == key]
        assert owned[0][0] == float("-inf") and owned[-1][1] == float("inf")
        assert all(a[1] == b[0] for a, b in zip(owned, owned[1:]))
        assert owned[1] == (DAY0.timestamp + DAY, DAY0.timestamp + 2 * DAY)
    # a time range and a selection with wildcards
    some = sds_files(root, ["CX.PB0?.*.HHZ"], DAY0 + DAY, DAY0 + 2 * DAY)
    assert [Path(f.path).name for f in some["CX.PB01..HH"]] == ["CX.PB01..HHZ.D.2020.062"]
    ranged = plan_chunks(some, DAY, (DAY0 + DAY).timestamp, (DAY0 + 2 * DAY).timestamp)
    assert [c.owned for c in ranged] == [((DAY0 + DAY).timestamp, (DAY0 + 2 * DAY).timestamp)] * 2
    with pytest.raises(ValueError, match="is not NET.STA.LOC.CHA"):
        sds_files(root, ["CX.PB01"])


def test_plan_splits_gaps_between_files_and_never_makes_slivers():
    files = {"XX.A..HH": [FileSpan("a", 0.0, 3 * 3600.0), FileSpan("b", 10 * 3600.0, 11 * 3600.0)]}
    chunks = plan_chunks(files, 3600.0)
    assert [c.data for c in chunks] == [(0.0, 3600.0), (3600.0, 7200.0), (7200.0, 10800.0), (36000.0, 39600.0)]
    assert chunks[2].owned == (7200.0, 23400.0) and chunks[3].owned == (23400.0, float("inf"))
    sliver = plan_chunks({"XX.A..HH": [FileSpan("a", -300.0, DAY + 300.0)]}, DAY)
    assert len(sliver) == 1 and sliver[0].data == (-300.0, DAY + 300.0)
    assert len(plan_chunks(files, None)) == 2


def test_stalta_chunked_picks_equal_whole_trace_picks_across_midnights_gaps_and_overlaps(archive, tmp_path):
    root, whole = archive
    reference = whole_trace(worker_picker(PickerRequest("stalta")), whole)
    assert len(reference) > 50
    out = tmp_path / "picks.csv"
    assert main(["pick", "--sds", str(root), "--picker", "stalta", "--out", str(out), "--workers", "0",
                 "--no-progress"]) == 0
    chunked = table_set(out)
    assert len(chunked) == len(reference)  # none lost, none twice at midnight
    assert not unmatched(reference, chunked, ONE_SAMPLE) and not unmatched(chunked, reference, ONE_SAMPLE)
    near_midnight = [p for p in reference if min(abs(p[2] - (DAY0 + d * DAY).timestamp) for d in (1, 2)) < 300]
    assert near_midnight, "the test archive must have picks within 5 min of a midnight"


def test_student_chunked_picks_equal_whole_trace_picks_on_dask_workers(archive, tmp_path):
    distributed = pytest.importorskip("distributed")
    from xiaonet.models.presets import shipped_weights

    if shipped_weights("xiaonet-s") is None:
        pytest.skip("no trained xiaonet-s shipped")
    root, whole = archive
    request = PickerRequest("xiaonet-s")
    picker = worker_picker(request)
    reference = whole_trace(picker, whole)
    results = []
    chunks = plan_chunks(sds_files(root))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        worker_picker.cache_clear()
        run_chunks(request, chunks, default_margin(picker), 3600.0, results.append, client)
        cache = worker_picker.cache_info()  # the two worker threads share this process's cache
        assert cache.hits + cache.misses == len(chunks) and cache.misses <= 2  # loaded once, not per chunk
    assert sorted(r.chunk_id for r in results) == sorted(c.id for c in chunks)
    assert not [r.error for r in results if r.error]
    folder = RunFolder(tmp_path / "run", {"picker": "xiaonet-s"})
    for result in results:
        folder.record(result)
    chunked = pick_set(p for picks in folder.picks(chunks) for p in picks)
    assert len(reference) > 10
    assert not unmatched(reference, chunked, STUDENT_TOLERANCE)
    assert not unmatched(chunked, reference, STUDENT_TOLERANCE)
    times = [(p[0], p[1], round(p[2], 2)) for p in chunked]
    assert len(times) == len(set(times)), "a pick owned by two chunks"


def test_plain_pick_of_a_long_file_in_blocks_equals_whole_trace(archive, tmp_path):
    _, whole = archive
    path = tmp_path / "PB02.mseed"
    whole["PB02"].write(str(path), format="MSEED")
    picker = worker_picker(PickerRequest("stalta"))
    files = folder_files([path])
    (chunk,) = plan_chunks(files, None)  # one chunk; 10-minute blocks inside it
    blocked = pick_set(pick_chunk(picker, chunk, default_margin(picker), 600.0))
    reference = whole_trace(picker, {"PB02": obspy.read(str(path))})
    assert len(blocked) == len(reference) > 20
    assert not unmatched(reference, blocked, ONE_SAMPLE) and not unmatched(blocked, reference, ONE_SAMPLE)


def test_killed_run_resumes_to_the_uninterrupted_table(archive, tmp_path, capsys):
    root, _ = archive
    command = ["pick", "--sds", str(root), "--picker", "stalta", "--workers", "0", "--no-progress"]
    assert main(command + ["--out", str(tmp_path / "full.csv")]) == 0

    import xiaonet.archive.manifest as manifest

    record, calls = manifest.RunFolder.record, []

    def killed_after_three(self, result):
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run dies while the fourth chunk is being stored
        calls.append(result.chunk_id)
        record(self, result)

    out = tmp_path / "resumed.csv"
    manifest.RunFolder.record = killed_after_three
    capsys.readouterr()
    try:
        assert main(command + ["--out", str(out)]) == 130  # Ctrl-C: one line, no traceback
    finally:
        manifest.RunFolder.record = record
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("xiaonet pick")]
    assert len(said) == 1 and "3 of 6 chunk(s) are done" in said[0] and "rerun the same command to resume" in said[0]
    run_dir = Path(f"{out}.run")
    lines = (run_dir / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 3
    (run_dir / "manifest.jsonl").write_text("\n".join(lines) + '\n{"chunk": "CX.PB0')  # a line cut mid-write
    (run_dir / "chunks" / f"{calls[0]}.parquet").unlink()  # and a chunk file lost
    capsys.readouterr()
    assert main(command + ["--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "2 already done" in err and "4 to pick" in err
    assert table_set(out) == table_set(tmp_path / "full.csv")
    assert main(command + ["--out", str(out)]) == 0  # again: nothing to pick, the same table
    assert "0 to pick" in capsys.readouterr().err and table_set(out) == table_set(tmp_path / "full.csv")
    assert main(command[:-1] + ["--picker", "xiaonet-s", "--out", str(out)]) == 2  # other settings: refused
    assert "other settings" in capsys.readouterr().err


def test_a_corrupt_day_fails_its_chunk_only(archive, tmp_path, capsys):
    root, _ = archive
    import shutil

    copy = tmp_path / "sds"
    shutil.copytree(root, copy)
    bad = copy / "2020" / "CX" / "PB02" / "HHZ.D" / "CX.PB02..HHZ.D.2020.062"
    bad.write_bytes(b"\x00not miniseed" * 200)
    out = tmp_path / "picks.csv"
    assert main(["pick", "--sds", str(copy), "--picker", "stalta", "--out", str(out), "--workers", "0",
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "1 chunk(s) failed" in err and "5 of 6 chunk(s)" in err
    assert "CX.PB02..HH_2020-03-02T000000: ChunkReadError" in err and "CX.PB02..HHZ.D.2020.062" in err
    entries = RunFolder(f"{out}.run", json.loads(Path(f"{out}.run/run.json").read_text())).entries()
    assert entries["CX.PB02..HH_2020-03-02T000000"]["status"] == "failed"
    neighbour = entries["CX.PB02..HH_2020-03-03T000000"]  # read the bad file for its margin only
    assert neighbour["status"] == "ok" and any("left out" in n for n in neighbour["notes"])
    assert {r[0] for r in table_set(out)} == {"CX.PB01.", "CX.PB02."}


def test_run_folder_refuses_other_settings_and_ignores_a_stale_span(tmp_path):
    folder = RunFolder(tmp_path, {"picker": "stalta", "chunk_seconds": DAY})
    with pytest.raises(RunSettingsError, match="picker: 'stalta' there, 'xiaonet-s' now"):
        RunFolder(tmp_path, {"picker": "xiaonet-s", "chunk_seconds": DAY})
    chunk = plan_chunks({"XX.A..HH": [FileSpan("a", 0.0, DAY)]})[0]
    folder.record(ChunkResult(chunk.id, 1.0, chunk.owned, picks={}))
    assert folder.finished([chunk]) == {chunk.id}
    longer = plan_chunks({"XX.A..HH": [FileSpan("a", 0.0, DAY)]}, DAY, 0.0, DAY / 2)[0]
    assert longer.id == chunk.id and folder.finished([longer]) == set()  # planned otherwise: picked again


def test_workers_get_only_the_files_their_chunk_reads(archive):
    root, _ = archive
    chunk = plan_chunks(sds_files(root))[1]
    names = sorted(Path(f.path).name[-8:] for f in with_files(chunk, 60.0).files)
    assert names == ["2020.061"] * 3 + ["2020.062"] * 3 + ["2020.063"] * 3


@pytest.fixture(scope="module")
def student_onnx_file(tmp_path_factory):
    from xiaonet.export.onnx_files import export_onnx
    from xiaonet.models.presets import load_student, shipped_weights

    if shipped_weights("xiaonet-s") is None:
        pytest.skip("no trained xiaonet-s shipped")
    return str(export_onnx(load_student("xiaonet-s"), tmp_path_factory.mktemp("onnx") / "xiaonet-s.onnx",
                           "xiaonet-s"))


@pytest.mark.parametrize("kind", ["onnx", "teacher"])
def test_onnx_students_and_teachers_pick_chunks(kind, archive, request):
    root, whole = archive
    if kind == "onnx":
        spec = request.getfixturevalue("student_onnx_file")
    else:
        request.getfixturevalue("teacher_cache")
        spec = "phasenet"
    from xiaonet.archive.runner import run_chunk

    chunk = plan_chunks(sds_files(root, ["CX.PB01.*.*"]))[1]  # 23:30 - 00:30 around the first midnight
    picker_request = PickerRequest(spec)
    result = run_chunk(picker_request, with_files(chunk, 200.0), 200.0, 3600.0)
    assert result.error is None and result.n_picks > 0
    picker = worker_picker(picker_request)
    assert set(result.picks["picker"]) == {picker.name}
    first_hour = whole["PB01"].slice(None, DAY0 + DAY + 1800)  # the hour around the first midnight
    reference = [p for p in whole_trace(picker, {"PB01": first_hour}) if chunk.owned[0] <= p[2] < chunk.owned[1]]
    times = [t / 1e9 for t in result.picks["time"]]
    got = sorted(zip(["CX.PB01."] * len(times), result.picks["phase"], times, result.picks["probability"]))
    tolerance = STUDENT_TOLERANCE if kind == "onnx" else TEACHER_TOLERANCE
    assert not unmatched([p for p in reference if p[3] >= 0.5], got, tolerance)


def test_a_real_local_cluster_gives_the_in_process_table(archive, student_onnx_file, tmp_path, capsys):
    pytest.importorskip("distributed")
    root, _ = archive
    command = ["pick", "--sds", str(root), "--picker", student_onnx_file, "--select", "CX.PB01.*.*",
               "--start", "2020-03-02", "--end", "2020-03-03", "--no-progress"]
    assert main(command + ["--workers", "0", "--out", str(tmp_path / "here.csv")]) == 0
    assert main(command + ["--workers", "1", "--out", str(tmp_path / "dask.csv")]) == 0  # a worker process
    assert "Dask dashboard: http" in capsys.readouterr().err
    assert table_set(tmp_path / "dask.csv") == table_set(tmp_path / "here.csv") != []
