"""The third runtime: the generated C library through ctypes (numpy only, no ONNX Runtime).

``CPicker("xiaonet-s-c/")`` picks with the C files written by ``xiaonet export --format c``
(or with an exported ONNX file, from which the C files are generated on first use; that needs
the ``onnx`` package). The library is compiled on first use with the system's C compiler
(``$CC``, ``cc``, ``gcc`` or ``clang``) into a cache folder (``$XIAONET_CACHE`` or
``~/.cache/xiaonet``), keyed by a hash of the sources, so later processes only load it.

Whole records run through the C streaming front end (push, windows, stacking, trigger,
picks: the same code a microcontroller runs); :meth:`CModel.predict` runs single windows for
``EdgePicker.annotate`` and the streaming engine (``xiaonet stream --runtime c``).
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from xiaonet.edge.onnx_model import EdgeModel, EdgeModelError, EdgeModelMetadata
from xiaonet.edge.pick_quality import snr_components, snr_db
from xiaonet.edge.picker import EdgePicker
from xiaonet.edge.picks import EdgePick
from xiaonet.edge.windowing import absolute_index

#: -march=native: the library is built on the machine that runs it (the cache key includes the CPU);
#: -ffp-contract=off: no fused multiply-adds, so results are the same bits as on a microcontroller.
#: $XIAONET_CFLAGS replaces the optimisation flags.
CFLAGS = tuple(os.environ.get("XIAONET_CFLAGS", "-O3 -march=native").split()) + (
    "-std=c99", "-ffp-contract=off", "-fPIC", "-shared")
SOURCES = ("xiaonet.c", "xiaonet_weights.c")
HEADERS = ("xiaonet.h", "xiaonet_model.h")


class CRuntimeError(EdgeModelError):
    """The C runtime cannot be built or loaded; the message says why and what to do."""


class CompilerMissing(CRuntimeError):
    """No C compiler to build the library with."""


class _Pick(ctypes.Structure):
    _fields_ = [("peak", ctypes.c_int64), ("start", ctypes.c_int64), ("end", ctypes.c_int64),
                ("probability", ctypes.c_float), ("phase", ctypes.c_char)]


_PICK_FN = ctypes.CFUNCTYPE(None, ctypes.POINTER(_Pick), ctypes.c_void_p)


def cache_dir() -> Path:
    root = os.environ.get("XIAONET_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xiaonet"
    return Path(root)


def find_compiler() -> str:
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate.split()[0]):
            return candidate
    raise CompilerMissing(
        "the C runtime needs a C compiler to build its library on first use, and none was found "
        "($CC, cc, gcc, clang). Install one (e.g. apt install gcc) or use the ONNX runtime (--runtime onnx)."
    )


def cpu_fingerprint() -> str:
    """What -march=native depends on: the machine and, on Linux, the CPU's model and flags."""
    import platform

    text = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo") as info:
            text += "".join(line for line in info if line.startswith(("model name", "flags", "Features")))[:4000]
    except OSError:
        pass
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_library(c_dir: str | Path) -> Path:
    """Compile the C files in ``c_dir`` into a shared library (cached); returns its path."""
    c_dir = Path(c_dir)
    missing = [name for name in SOURCES + HEADERS if not (c_dir / name).is_file()]
    if missing:
        raise CRuntimeError(f"{c_dir}: not a folder written by `xiaonet export --format c` "
                            f"({', '.join(missing)} missing)")
    compiler = find_compiler()
    digest = hashlib.sha256(" ".join((compiler,) + CFLAGS + (cpu_fingerprint(),)).encode())
    for name in SOURCES + HEADERS:
        digest.update((c_dir / name).read_bytes())
    target = cache_dir() / "c" / digest.hexdigest()[:16] / "libxiaonet.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        command = compiler.split() + list(CFLAGS) + ["-o", str(built)] + [str(c_dir / s) for s in SOURCES] + ["-lm"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise CRuntimeError(f"{c_dir}: compiling the C runtime failed ({' '.join(command)}):\n"
                                f"{result.stderr.strip()[-2000:]}")
        os.replace(built, target)  # atomic: a concurrent process sees the whole file or none
    return target


def c_sources_for(path: str | Path) -> Path:
    """The C folder of ``path``: the folder itself, or C generated from an ONNX file into the cache."""
    path = Path(path)
    if path.is_dir():
        if not (path / "model.json").is_file():
            raise CRuntimeError(f"{path}: not a folder written by `xiaonet export --format c` (no model.json)")
        return path
    if path.suffix != ".onnx" or not path.is_file():
        raise CRuntimeError(f"{path}: give a folder written by `xiaonet export --format c` or an exported .onnx file")
    from xiaonet.edge.c_export import write_c_model

    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    folder = cache_dir() / "c-models" / f"{path.stem}-{digest}"
    if not (folder / "model.json").is_file():
        write_c_model(path, folder)
    return folder


class CModel(EdgeModel):
    """The generated C library as an :class:`EdgeModel` (``metadata``, ``predict``).

    :param path: folder written by ``xiaonet export --format c``, or an exported ONNX file.
    :param threads: accepted for interface compatibility; the C runtime uses one thread.
    """

    def __init__(self, path: str | Path, threads: int = 1):  # noqa: D107 - no ONNX session here
        self.path = Path(path)
        self.c_dir = c_sources_for(self.path)
        try:
            summary = json.loads((self.c_dir / "model.json").read_text())
        except (OSError, ValueError) as error:
            raise CRuntimeError(f"{self.c_dir}: unreadable model.json ({error})") from None
        meta = EdgeModelMetadata.from_props(summary["metadata"], source=str(self.c_dir))
        self.metadata = dataclasses.replace(meta, in_samples=int(summary["window"]))
        self.window = int(summary["window"])
        self.library_path = build_library(self.c_dir)
        lib = ctypes.CDLL(str(self.library_path))
        lib.xn_forward.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p]
        lib.xn_forward.restype = ctypes.c_int
        lib.xn_stream_size.restype = ctypes.c_size_t
        lib.xn_stream_init.argtypes = [ctypes.c_void_p, _PICK_FN, ctypes.c_void_p]
        lib.xn_set_thresholds.argtypes = [ctypes.c_void_p, ctypes.c_double, ctypes.c_double]
        lib.xn_set_first_index.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        lib.xn_push_block.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32]
        lib.xn_push_block.restype = ctypes.c_int32
        lib.xn_finish.argtypes = [ctypes.c_void_p]
        lib.xn_finish.restype = ctypes.c_int64
        self.lib = lib

    def __repr__(self) -> str:
        return f"CModel({self.c_dir.name}, {self.metadata.name}, {self.metadata.precision}, window {self.window})"

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """(batch, components, samples) raw windows -> (batch, labels, samples) probabilities."""
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        if windows.ndim != 3 or windows.shape[1] != len(self.metadata.component_order):
            raise ValueError(f"expected windows shaped (batch, {len(self.metadata.component_order)}, samples), "
                             f"got {windows.shape}")
        n = windows.shape[-1]
        if not 1 <= n <= self.window:
            raise ValueError(f"the C runtime takes windows of 1 .. {self.window} samples, got {n}")
        out = np.empty((windows.shape[0], len(self.metadata.labels), n), dtype=np.float32)
        for x, y in zip(windows, out):
            self.lib.xn_forward(x.ctypes.data, n, y.ctypes.data)
        return out

    def stream_picks(self, data: np.ndarray, thresholds: dict[str, float],
                     first_index: int | None = None) -> list[tuple[str, int, int, int, float]]:
        """Picks of one contiguous (components, samples) record through the C streaming front
        end: (phase, start, end, peak sample, probability). ``first_index``: the absolute
        sample index of the record's first sample (windows on the absolute grid)."""
        data = np.ascontiguousarray(data, dtype=np.float32)
        picks: list[tuple[str, int, int, int, float]] = []

        def collect(pick, _user):
            p = pick.contents
            picks.append((p.phase.decode(), p.start, p.end, p.peak, float(p.probability)))

        callback = _PICK_FN(collect)
        state = ctypes.create_string_buffer(self.lib.xn_stream_size())
        self.lib.xn_stream_init(state, callback, None)
        self.lib.xn_set_thresholds(state, thresholds["P"], thresholds["S"])
        if first_index is not None:
            self.lib.xn_set_first_index(state, int(first_index))
        n = data.shape[-1]
        if self.lib.xn_push_block(state, data.ctypes.data, n, n) != n:
            raise RuntimeError("the C stream did not take the whole record")
        self.lib.xn_finish(state)
        return picks


class CPicker(EdgePicker):
    """:class:`EdgePicker` on the C library: whole records through the C streaming front end.

    :param model: folder written by ``xiaonet export --format c``, an exported ONNX file, or a :class:`CModel`.
    """

    def __init__(self, model: str | Path | CModel, thresholds: dict[str, float] | None = None,
                 threads: int = 1, batch_size: int = 16):
        model = model if isinstance(model, CModel) else CModel(model)
        super().__init__(model, thresholds=thresholds, threads=threads, batch_size=batch_size)
        self.name = f"{model.metadata.name}-c-{model.metadata.precision}"

    def pick_array(self, data: np.ndarray, start_time: Any = 0.0, trace_id: str = "",
                   filtered: bool = False, channel: str = "") -> list[EdgePick]:
        """Picks as :meth:`EdgePicker.pick_array` gives them, with ``channel`` and ``snr_db``;
        ``uncertainty_s`` stays NaN: the C library's trigger does not measure its peak's width."""
        meta = self.model.metadata
        data = np.asarray(data)
        if data.ndim != 2 or data.shape[0] != len(meta.component_order):
            raise ValueError(f"expected data shaped ({len(meta.component_order)}, samples) in component order "
                             f"{meta.component_order}, got {data.shape}")
        rate = meta.sampling_rate
        first_index = absolute_index(start_time, rate) if meta.window_grid == "absolute" else None
        picks = [
            EdgePick(trace_id=trace_id, start_time=start_time + float(s0) / rate,
                     end_time=start_time + float(s1) / rate, peak_time=start_time + float(peak) / rate,
                     peak_value=value, phase=phase, channel=channel,
                     snr_db=snr_db(data[snr_components(phase, meta.component_order)], peak, rate))
            for phase, s0, s1, peak, value in self.model.stream_picks(data, self.thresholds, first_index)
        ]
        return sorted(picks)


#: Largest |C - ONNX Runtime| probability difference accepted: fp32 as the ONNX export's own
#: check, int8 as the project's int8 tolerance (tests/test_export.py).
TOLERANCE = {"fp32": 1e-4, "int8": 0.1}


def check_c_model(c_dir: str | Path, onnx_path: str | Path, seed: int = 0) -> tuple[str, bool]:
    """Compile the C folder with the host compiler and compare it with ONNX Runtime on synthetic
    windows; returns (message, within tolerance). Without a compiler: a note, and True."""
    from xiaonet.edge.windowing import synthetic_windows

    try:
        c_model = CModel(c_dir)
    except CompilerMissing as error:
        return f"note: C not checked against ONNX Runtime: {error}", True
    except CRuntimeError as error:
        return f"the generated C does not build: {error}", False
    reference = EdgeModel(onnx_path)
    rng = np.random.default_rng(seed)
    lengths = sorted({c_model.window, min(1000, c_model.window), 64})
    diff = max(float(np.abs(c_model.predict(w) - reference.predict(w)).max())
               for w in synthetic_windows(lengths, rng))
    limit = TOLERANCE[c_model.metadata.precision]
    ok = diff <= limit
    return (f"max |C - ONNX Runtime| = {diff:.2e} over windows of {lengths} samples "
            f"({'within' if ok else 'ABOVE'} {limit:g})"), ok
