"""Crash-safe file writes for resumable jobs: write a temp file, fsync, rename, fsync the folder.

A part file either exists complete or not at all, even after `kill -9` or a power cut; that is
what lets `score` and `translate --input` resume with every row exactly once.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, BinaryIO, Callable

from onnxpress.errors import UserError


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
    """Create `path` with `write(fh)` so that it appears complete or not at all."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def prepare_work_dir(work: Path, settings: dict[str, Any], out_path: Path, overwrite: bool) -> None:
    """Open the part-file folder of a resumable job writing `out_path`.

    A folder whose recorded settings equal `settings` is resumed (half-written parts dropped);
    one with other settings is an error; otherwise a fresh folder is made and the settings saved.
    """
    meta = work / "settings.json"
    if work.is_dir() and meta.is_file():
        try:
            previous = json.loads(meta.read_text())
        except ValueError:
            previous = None
        if previous != settings:
            raise UserError(
                f"{work} holds an interrupted run with other settings or an input that changed since; "
                f"delete it to start over"
            )
        for stale in work.glob("*.tmp"):
            stale.unlink()  # a part being written when the run was killed
        return
    if out_path.exists() and not overwrite:
        raise UserError(f"{out_path} already exists (delete it or pass --overwrite)")
    if work.exists():
        shutil.rmtree(work)  # a folder without settings: killed before anything was committed
    work.mkdir()
    atomic_write_text(meta, json.dumps(settings, indent=1))
