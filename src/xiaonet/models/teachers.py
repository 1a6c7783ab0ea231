"""Pretrained SeisBench teachers (PhaseNet, EQTransformer, GPD), loaded offline from the cache.

SeisBench looks for weights under ``$SEISBENCH_CACHE_ROOT/models/v3/<model>/<weights>.json.v*``
and ``.pt.v*``. We check that they are there before asking SeisBench, so a missing file gives
a message naming the variable and the expected file instead of a network time-out.
"""

from __future__ import annotations

import os
from pathlib import Path

TEACHER_CLASSES = {"phasenet": "PhaseNet", "eqtransformer": "EQTransformer", "gpd": "GPD"}


class TeacherUnavailable(RuntimeError):
    pass


def teacher_cache_dir(name: str) -> Path:
    import seisbench

    return Path(seisbench.cache_root) / "models" / "v3" / name


def load_teacher(name: str, weights: str = "original"):
    """Load a teacher model by name (``phasenet``, ``eqtransformer``, ``gpd``) and weights."""
    import seisbench.models as sbm

    key = name.lower()
    if key not in TEACHER_CLASSES:
        raise ValueError(
            f"Unknown teacher '{name}'. Known teachers: {', '.join(TEACHER_CLASSES)}."
        )
    folder = teacher_cache_dir(key)
    candidates = sorted(folder.glob(f"{weights}.pt.v*")) + sorted(folder.glob(f"{weights}.pt"))
    if not candidates:
        present = sorted({p.name.split(".")[0] for p in folder.glob("*.pt*")}) if folder.is_dir() else []
        raise TeacherUnavailable(
            f"{TEACHER_CLASSES[key]} weights '{weights}' not found: expected "
            f"{folder / (weights + '.pt.v1')} (and .json.v1). SEISBENCH_CACHE_ROOT is "
            f"{os.environ.get('SEISBENCH_CACHE_ROOT', '<unset>')}; point it at a writable copy "
            f"of ../shared/seisbench-cache. Weights present there: {', '.join(present) or 'none'}."
        )
    model_class = getattr(sbm, TEACHER_CLASSES[key])
    model = model_class.from_pretrained(weights)
    return model.eval()
