"""Hermetic test set-up: caches in temp folders, ../shared only where present.

SeisBench reads SEISBENCH_CACHE_ROOT when it is first imported, so it is set here, at
collection time, to a temp copy of ../shared/seisbench-cache (the shared copy is read-only
and SeisBench writes config.json into its cache root).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("XIAONET_SHARED", REPO_ROOT.parent / "shared"))

_TMP = Path(tempfile.mkdtemp(prefix="xiaonet-tests-"))
_CACHE = _TMP / "seisbench-cache"
if (SHARED / "seisbench-cache").is_dir():
    shutil.copytree(SHARED / "seisbench-cache", _CACHE)
    for path in [_CACHE, *_CACHE.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
else:
    _CACHE.mkdir(parents=True)
os.environ["SEISBENCH_CACHE_ROOT"] = str(_CACHE)
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("XDG_CACHE_HOME", str(_TMP / "xdg-cache"))


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED} (set XIAONET_SHARED); real data unavailable")
    return SHARED


@pytest.fixture(scope="session")
def teacher_cache() -> Path:
    if not (SHARED / "seisbench-cache" / "models").is_dir():
        pytest.skip(
            f"no SeisBench teacher weights at {SHARED / 'seisbench-cache'}; "
            "teacher tests need ../shared/seisbench-cache"
        )
    return _CACHE


@pytest.fixture
def example_stream():
    import obspy

    return obspy.read()


@pytest.fixture(scope="session")
def torch_threads():
    import torch

    torch.set_num_threads(1)
