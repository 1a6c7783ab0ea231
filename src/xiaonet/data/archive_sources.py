"""Where an archive's waveforms are: the files of every instrument and the time each covers.

Two kinds of archive give the same answer, ``{instrument key: [FileSpan, ...]}`` (the key is
``NET.STA.LOC.CH``, band + instrument code, as :func:`xiaonet.data.waveforms.station_key`):

* an SDS tree (SeisComP Data Structure, ObsPy's ``obspy.clients.filesystem.sds``):
  ``ROOT/YEAR/NET/STA/CHA.D/NET.STA.LOC.CHA.D.YEAR.DOY``, found from the file names alone,
  with a time range and ``NET.STA.LOC.CHA`` selections (``*`` / ``?`` wildcards);
* plain files in folders, globs or lists (anything ObsPy reads), whose spans come from a
  header-only read.

:func:`read_span` reads one instrument's data in a time span from its files, only the part
asked for (miniSEED: only those records), so a chunk of a long file costs the chunk's memory.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import obspy

from xiaonet.data.waveforms import WaveformInputError, read_waveform_file, station_key

DAY = 86400.0
#: Seconds of data an SDS day file may hold from the neighbouring days (records that straddle
#: midnight; ObsPy's SDS client assumes 30 s).
SDS_FILE_BORDER = 300.0
SDS_NAME = re.compile(
    r"^(?P<net>[^.]*)\.(?P<sta>[^.]*)\.(?P<loc>[^.]*)\.(?P<cha>[^.]*)\.(?P<type>[^.]*)"
    r"\.(?P<year>\d{4})\.(?P<doy>\d{3})$"
)


class ChunkReadError(RuntimeError):
    """A file holding data of the span a chunk owns cannot be read; the message names it."""


@dataclass(frozen=True)
class FileSpan:
    """A file, the channels of one instrument in it, and the time (POSIX seconds) it may cover."""

    path: str
    start: float
    end: float
    channels: tuple[str, ...] = ()  # SEED channel codes to keep (empty: every channel of the instrument)
    #: The span whose data are this file's own (an SDS file: its day, not the minutes around it);
    #: None: ``(start, end)``. A chunk owning part of it fails when the file cannot be read.
    core: tuple[float, float] | None = None
    format: str | None = None  # ObsPy format name; None: detect


def _selected(seed_id: str, patterns: Iterable[str]) -> bool:
    patterns = list(patterns)
    return not patterns or any(fnmatch.fnmatchcase(seed_id, p) for p in patterns)


def check_selection(patterns: Iterable[str]) -> list[str]:
    """``NET.STA.LOC.CHA`` patterns (``*`` / ``?``), each with four dot-separated parts."""
    patterns = list(patterns)
    for pattern in patterns:
        if pattern.count(".") != 3:
            raise ValueError(f"--select '{pattern}' is not NET.STA.LOC.CHA (wildcards * and ? allowed, "
                             "e.g. 'CX.PB*.*.HH?')")
    return patterns


def sds_files(root: str | Path, select: Iterable[str] = (), start: obspy.UTCDateTime | None = None,
              end: obspy.UTCDateTime | None = None, sds_type: str = "D") -> dict[str, list[FileSpan]]:
    """Every day file of an SDS tree under ``root`` in ``[start, end)``, by instrument.

    Only file names are read (no waveform is opened): a year of a network is planned in the
    time it takes to list its folders. Raises :class:`WaveformInputError` when ``root`` is not
    a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise WaveformInputError(f"{root}: no such SDS folder (expected ROOT/YEAR/NET/STA/CHA.D/...)")
    select = check_selection(select)
    years = sorted(int(p.name) for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d{4}", p.name))
    if start is not None:
        years = [y for y in years if y >= start.year]
    if end is not None:
        years = [y for y in years if y <= end.year]
    t0 = float(start.timestamp) if start is not None else float("-inf")
    t1 = float(end.timestamp) if end is not None else float("inf")
    files: dict[str, dict[str, FileSpan]] = {}
    for year in years:
        for dirpath, _, names in os.walk(root / str(year)):
            if not dirpath.endswith(f".{sds_type}"):
                continue
            for name in names:
                match = SDS_NAME.match(name)
                if not match or match["type"] != sds_type:
                    continue
                seed_id = ".".join(match[k] for k in ("net", "sta", "loc", "cha"))
                if not _selected(seed_id, select):
                    continue
                day = float(obspy.UTCDateTime(year=int(match["year"]), julday=int(match["doy"])).timestamp)
                if day + DAY <= t0 or day >= t1:
                    continue
                key = f"{match['net']}.{match['sta']}.{match['loc']}.{match['cha'][:-1]}"
                path = os.path.join(dirpath, name)
                files.setdefault(key, {})[path] = FileSpan(
                    path, day - SDS_FILE_BORDER, day + DAY + SDS_FILE_BORDER, (match["cha"],), (day, day + DAY),
                    "MSEED")
    return {key: sorted(spans.values(), key=lambda f: (f.start, f.path)) for key, spans in sorted(files.items())}


def folder_files(paths: Iterable[str | Path], select: Iterable[str] = (), note: Callable[[str], None] | None = None,
                 unreadable: Callable[[str], None] | None = None) -> dict[str, list[FileSpan]]:
    """Waveform files by instrument, with the span their headers say each covers (``paths``:
    files, e.g. :func:`xiaonet.data.waveforms.waveform_files` of folders and globs). A file
    ObsPy cannot read is passed to ``unreadable`` (default: raised as
    :class:`WaveformInputError`) and the scan goes on."""
    select = check_selection(select)
    files: dict[str, list[FileSpan]] = {}
    for path in paths:
        try:
            headers = read_waveform_file(path, note, headonly=True)
        except WaveformInputError as error:
            if unreadable is None:
                raise
            unreadable(str(error))
            continue
        spans: dict[str, list] = {}
        for trace in headers:
            if not _selected(trace.id, select):
                continue
            span = spans.setdefault(station_key(trace),
                                    [float("inf"), float("-inf"), set(), trace.stats.get("_format")])
            span[0] = min(span[0], float(trace.stats.starttime.timestamp))
            span[1] = max(span[1], float(trace.stats.endtime.timestamp) + trace.stats.delta)
            span[2].add(trace.stats.channel)
        for key, (start, end, channels, format) in spans.items():
            files.setdefault(key, []).append(FileSpan(str(path), start, end, tuple(sorted(channels)), None, format))
    return {key: sorted(spans, key=lambda f: (f.start, f.path)) for key, spans in sorted(files.items())}


def read_span(files: Iterable[FileSpan], key: str, start: float, end: float, owned: tuple[float, float],
              note: Callable[[str], None]) -> obspy.Stream:
    """Instrument ``key``'s data in ``[start, end]`` from ``files`` (only the part in the span).

    A file that cannot be read raises :class:`ChunkReadError` when it may hold data of the
    ``owned`` span (its picks would be lost); one that only reaches into the margins around it
    is passed to ``note`` and left out (picks within a margin of the owned edge may then differ
    from whole-trace picks, as they would at a gap).
    """
    stream = obspy.Stream()
    t0, t1 = obspy.UTCDateTime(start), obspy.UTCDateTime(end)
    for span in files:
        if span.end < start or span.start > end:
            continue
        try:
            part = read_waveform_file(span.path, note, starttime=t0, endtime=t1, format=span.format)
        except WaveformInputError as error:
            core = span.core or (span.start, span.end)
            if core[1] > owned[0] and core[0] < owned[1]:
                raise ChunkReadError(str(error)) from None
            note(f"{error} (only the margin next to the chunk needed it; left out)")
            continue
        stream += obspy.Stream([tr for tr in part if station_key(tr) == key
                                and (not span.channels or tr.stats.channel in span.channels)])
    return stream
