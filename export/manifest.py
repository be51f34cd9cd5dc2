"""Manifest fields every exporter fills the same way: package versions, creation time, opset."""
from __future__ import annotations

from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import onnx

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
    """Now, as the manifest's `created` field writes it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def model_opset(path: str | Path) -> int:
    """The default-domain opset an ONNX file imports."""
    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
