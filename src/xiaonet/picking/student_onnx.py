"""The ONNX file a student's weights run as on the fast path, built once and cached.

A student ships as ``NAME.json`` + ``NAME.pt`` (what training writes). The first pick with it
exports the ONNX graph (torch, once), checks ONNX Runtime against torch as ``xiaonet export``
does, and keeps the file in the user cache, named by the SHA-256 of the weights: new weights
(a retrained or newly shipped student) get a new file, and every later run is numpy + ONNX
Runtime only. ``XIAONET_CACHE`` (default ``$XDG_CACHE_HOME/xiaonet`` or ``~/.cache/xiaonet``)
moves the cache.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: Bumped when the export itself changes (graph, metadata): cached files of older exports are
#: then rebuilt, not reused.
EXPORT_VERSION = "1"
#: Largest |ONNX Runtime - torch| probability accepted, as ``xiaonet export`` accepts.
TOLERANCE = 1e-4


def cache_dir() -> Path:
    if os.environ.get("XIAONET_CACHE"):
        return Path(os.environ["XIAONET_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xiaonet"


def weights_digest(prefix: str | Path) -> str:
    """SHA-256 of the weights (``.json`` and ``.pt``) and of the export version."""
    from xiaonet.models.presets import weights_file

    digest = hashlib.sha256(EXPORT_VERSION.encode())
    for suffix in (".json", ".pt"):
        digest.update(weights_file(prefix, suffix).read_bytes())
    return digest.hexdigest()


def student_onnx(prefix: str | Path, name: str) -> Path:
    """The cached ONNX file of the student weights at ``prefix`` (built on first use).

    Raises :class:`xiaonet.models.presets.WeightsError` for weights that do not load and
    ``RuntimeError`` when the export differs from torch by more than :data:`TOLERANCE`.
    """
    path = cache_dir() / "onnx" / f"{Path(name).name}-{weights_digest(prefix)[:16]}.onnx"
    if not path.is_file():
        export_checked(prefix, name, path)
    return path


def export_checked(prefix: str | Path, name: str, path: Path) -> None:
    """Export with torch, check ONNX Runtime against torch on windows of several lengths
    (``xiaonet export``'s check), and move the file into place only when it passes."""
    import numpy as np

    try:
        import torch
    except ImportError:
        raise RuntimeError(f"{name}: its ONNX file is not built yet ({path}), and building it needs torch "
                           "once: install torch, or pick with an exported file (`xiaonet export` on a machine "
                           "with torch, then --picker FILE.onnx)") from None

    from xiaonet.export.onnx_files import export_onnx, max_abs_difference
    from xiaonet.edge.windowing import synthetic_windows
    from xiaonet.models.presets import load_weights

    torch.set_num_threads(1)
    model = load_weights(prefix)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        export_onnx(model, partial, Path(name).name)
        lengths = [model.in_samples, 1000, 3 * model.in_samples + 17]
        windows = synthetic_windows(lengths, np.random.default_rng(0))
        difference = max(max_abs_difference(model, partial, w) for w in windows)
        if difference > TOLERANCE:
            raise RuntimeError(f"{prefix}: its ONNX export differs from torch by {difference:.2e} "
                               f"(> {TOLERANCE:g}); run it with --runtime torch")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
