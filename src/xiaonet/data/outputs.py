"""Output files of the batch commands: an output path checked before any work starts, and the
inputs that failed reported, one line each, after the rest was processed. Shared by
``xiaonet`` and the torch-free ``xiaonet-edge``."""

from __future__ import annotations


def report_failures(command: str, failures: list[str], file=None) -> int:
    """The end of every batch command: each failed input on one line (path and reason), then
    how many failed; the exit status, 1 when anything failed (the rest was still processed)."""
    import sys

    file = file or sys.stderr
    if not failures:
        return 0
    for message in failures:
        print(f"  failed: {message}", file=file)
    print(f"{command}: {len(failures)} input(s) failed (named above); the rest was processed; "
          "exit status 1", file=file)
    return 1


def output_path_problem(path: str | None, option: str = "--out") -> str | None:
    """Why ``path`` cannot be written, as one line, or None. Checked before any work starts, so
    a typo in an output path never costs the picking; missing folders are not created (a
    mistyped folder would otherwise silently become a new one)."""
    import os
    from pathlib import Path

    if not path:
        return None
    target = Path(path)
    if target.is_dir():
        return f"{option} {path}: is a folder; give a file name"
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        return f"{option} {path}: folder {folder} does not exist (create it first)"
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        return f"{option} {path}: not writable"
    return None
