"""Helpers that fill `runtime.artifact.Manifest` from export results, and write artifacts atomically."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import onnx

from onnxpress.errors import UserError
from onnxpress.runtime.artifact import MANIFEST_NAME

VERSIONED_PACKAGES = ("onnxpress", "onnxruntime-gpu", "onnxruntime", "onnx", "torch", "transformers", "tokenizers")


def versions() -> dict[str, str]:
    """Installed versions of the packages that shaped the artifact."""
    import onnxruntime

    found = {"onnxruntime": onnxruntime.__version__}
    for package in VERSIONED_PACKAGES:
        try:
            found.setdefault(package, metadata.version(package))
        except metadata.PackageNotFoundError:
            pass
    return found


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def model_opset(path: str | Path) -> int:
    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def check_output_dir(out: Path, force: bool) -> None:
    """Refuse early (before minutes of work) an output that cannot or should not be written."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise UserError(f"output directory {out} is not empty (pass --force to replace it)")
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
    """A temp dir beside `out` that replaces `out` only if the block finishes.

    On any error the staging dir is removed, so no half-written artifact is left looking valid.
    """
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
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
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
