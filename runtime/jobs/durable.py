"""Crash-safe file writes: write a temp file, fsync, rename, fsync the folder.

A file written here either exists complete or not at all, even after `kill -9` or a power cut;
that is what lets resumable jobs (`runtime/jobs/resumable.py`) and training checkpoints restart
without a torn file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create `path` with `write(fh)` so that it appears complete or not at all.

    The temp file is `path` + ".tmp"; a failed write removes it (a full disk gets its space back).
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_file(path: Path) -> None:
    """Flush a file written by someone else's writer to disk before it is renamed into place."""
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """`atomic_write` of UTF-8 text."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
