"""Writing an artifact directory all at once: check the output early, build beside it, rename into place."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from onnxpress.errors import UserError
from onnxpress.runtime.artifact import MANIFEST_NAME
from onnxpress.runtime.durable import fsync_dir


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuse early (before minutes of work) an output that cannot or should not be written."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"output directory {out} is not empty (pass --overwrite to replace it)")
        if not (out / MANIFEST_NAME).is_file():
            raise UserError(f"refusing to replace {out}: it is not an onnxpress artifact (no {MANIFEST_NAME})")
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=f".{out.name}.probe-", dir=parent)
        os.rmdir(probe)
    except OSError as exc:
        raise UserError(f"cannot write to {parent}: {exc.strerror or exc}") from None


@contextmanager
def staged_directory(out: Path) -> Iterator[Path]:
    """A partial folder beside `out` that replaces `out` only if the block finishes.

    On any error the partial folder is removed, so no half-written artifact is left looking valid.
    """
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.chmod(staging, 0o755)
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
        os.rmdir(old)
        os.rename(out, old)
    os.rename(staging, out)
    fsync_dir(parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
