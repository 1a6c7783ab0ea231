"""The ONNX file a student's weights run as on the fast path, built once and cached.

A student ships as ``NAME.json`` + ``NAME.pt`` (what training writes). The first pick with it
exports the ONNX graph (torch, once), checks ONNX Runtime against torch as ``xiaonet export``
does, and keeps the file in the user cache, named by the SHA-256 of the weights: new weights
(a retrained or newly shipped student) get a new file, and every later run is numpy + ONNX
Runtime only. ``XIAONET_CACHE`` (default ``$XDG_CACHE_HOME/xiaonet`` or ``~/.cache/xiaonet``)
moves the cache.

The shipped students also ship their ONNX file (``weights/NAME.onnx``, written by
``python -m xiaonet.picking.student_onnx NAME...``), carrying the SHA-256 of the weights it was
exported from (:data:`DIGEST_KEY`): a ``NAME.onnx`` beside the weights whose digest matches is
used as is, so an install without torch picks with the shipped students; a stale one (other
weights) is ignored and the cache path above is taken.
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
#: ONNX metadata key holding :func:`weights_digest` of the weights a file was exported from.
DIGEST_KEY = "xiaonet.weights_sha256"


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
    digest = weights_digest(prefix)
    shipped = shipped_onnx(prefix, digest)
    if shipped is not None:
        return shipped
    path = cache_dir() / "onnx" / f"{Path(name).name}-{digest[:16]}.onnx"
    if not path.is_file():
        export_checked(prefix, name, path)
    return path


def shipped_onnx(prefix: str | Path, digest: str | None = None) -> Path | None:
    """``PREFIX.onnx`` when it was exported from the weights at ``prefix`` (its
    :data:`DIGEST_KEY` equals their :func:`weights_digest`), else None."""
    from xiaonet.models.presets import weights_file

    path = weights_file(prefix, ".onnx")
    if not path.is_file():
        return None
    try:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        stored = session.get_modelmeta().custom_metadata_map.get(DIGEST_KEY)
    except Exception:  # not readable: the cache path builds a good one
        return None
    return path if stored == (digest or weights_digest(prefix)) else None


def write_shipped(name: str) -> Path:
    """Export the shipped student ``name`` to ``weights/NAME.onnx`` beside its weights, checked
    against torch like the cached files (needs torch and onnx)."""
    from xiaonet.models.presets import shipped_weights, weights_file

    prefix = shipped_weights(name)
    if prefix is None:
        raise FileNotFoundError(f"{name}: no shipped weights (NAME.json + NAME.pt in xiaonet/weights)")
    path = weights_file(prefix, ".onnx")
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
                           "once: pip install 'xiaonet[train]' (torch==2.13.0 first, see README), or pick "
                           "with an exported file (--picker FILE.onnx)") from None

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
        _write_digest(partial, weights_digest(prefix))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _write_digest(path: Path, digest: str) -> None:
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != DIGEST_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=DIGEST_KEY, value=digest)
    onnx.save(model, str(path))


def main(argv: list[str] | None = None) -> int:
    """``python -m xiaonet.picking.student_onnx [NAME...]``: write ``weights/NAME.onnx`` of the
    shipped students (all presets with shipped weights when no name is given)."""
    import sys

    from xiaonet.models.presets import PRESETS, shipped_weights

    names = (sys.argv[1:] if argv is None else argv) or [n for n in sorted(PRESETS) if shipped_weights(n)]
    for name in names:
        print(write_shipped(name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
