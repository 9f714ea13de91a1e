"""A version folder copied into an export base as its next version, atomically: a reader
listing the base (a server polling it, `ue evaluate`) sees nothing or the whole version.

    copy_as_next_version(Path("candidates/17"), Path("serving/"))   # -> serving/<next version>

The copy is written into a hidden staging folder of the base (same file system) and renamed
to its number (`versions.staging_folder`, `versions.publish`, the rule `ue export` follows too).
Files and folders are flushed to disk before the rename, so that after a crash a version is
either absent or whole. No TensorFlow here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from unified_embedding.contract.artifacts import SAVED_MODEL_FILE
from unified_embedding.exported import versions


def copy_file(source: str, target: str) -> str:
    """`shutil.copy2`, then the copy flushed to disk."""
    shutil.copy2(source, target)
    with open(target, "rb") as f:
        os.fsync(f.fileno())
    return target


def _sync_folder(folder: Path) -> None:
    """Flushes a folder's entries (the names of its files, a rename into it)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_as_next_version(source: Path, base: Path) -> Path:
    """Copies the version folder `source` (holding a SavedModel) into `base` (created if
    absent) as its next version, and returns that version's path. A failed copy leaves no
    trace in `base` but the base itself."""
    if not (source / SAVED_MODEL_FILE).is_file():
        raise FileNotFoundError(f"`{source}` holds no {SAVED_MODEL_FILE}: not a version to copy")
    base.mkdir(parents=True, exist_ok=True)
    versions.next_version(base)  # refuse before copying when int64 has no version left
    staging = versions.staging_folder(base, "push")
    try:
        shutil.copytree(source, staging, copy_function=copy_file)
        for folder in [staging, *(p for p in staging.rglob("*") if p.is_dir())]:
            _sync_folder(folder)
        target = versions.publish(staging, base)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _sync_folder(base)  # the rename itself
    return target
