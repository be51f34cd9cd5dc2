"""The artifact contract: a directory with ONNX file(s), tokenizer(s) and `manifest.json`.

Export writes it (`Manifest.save`), the runtime reads it (`Artifact.open`). Nothing else
passes between them. Every file is listed with its sha256 and size so that a tampered or
truncated file is refused before ONNX Runtime sees it.

manifest.json (format_version 1)::

    {
      "format": "onnxpress-artifact", "format_version": 1,
      "task": "text-classification" | "translation",
      "created": "2026-11-21T12:00:00Z",
      "versions": {"onnxpress": "...", "onnxruntime": "...", "torch": "...", ...},
      "labels": ["World", ...],                       # classification only
      "max_length": 128,                              # tokens the model accepts
      "tokenizers": {"text": "tokenizer.json"},       # translation: {"source": ..., "target": ...}
      "inputs":  [{"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]}, ...],
      "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 4]}],
      "files": {"tokenizer.json": {"sha256": "...", "size": 123}, "model.int8.onnx": {...}},
      "variants": {
        "int8": {"files": {"model": "model.int8.onnx"}, "precision": "int8",
                 "devices": ["cpu"], "opset": 17, "servable": true,
                 "method": {...}, "parity": {...}, "metrics": {...}}
      },
      "extra": {...}                                  # task specifics (e.g. special token ids)
    }
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from onnxpress.errors import UserError
from onnxpress.runtime.manifest_schema import FORMAT, FORMAT_VERSION, REEXPORT, TASKS, check_manifest

MANIFEST_NAME = "manifest.json"
__all__ = ["Artifact", "FORMAT", "FORMAT_VERSION", "MANIFEST_NAME", "Manifest", "TASKS", "TensorSpec", "Variant",
           "sha256_file"]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class TensorSpec:
    name: str
    dtype: str
    shape: list[int | str]


@dataclass
class Variant:
    """One servable (or rejected) build of the model, e.g. fp32, int8, fp16."""

    files: dict[str, str]  # role -> file name, e.g. {"model": "model.int8.onnx"}
    precision: str  # fp32 | int8 | fp16
    devices: list[str]  # where it is meant to run: "cpu", "cuda", "tensorrt"
    opset: int
    servable: bool = True  # False when the accuracy gate rejected it
    method: dict[str, Any] = field(default_factory=dict)  # how it was built, exactly
    parity: dict[str, Any] = field(default_factory=dict)  # vs. the PyTorch reference
    metrics: dict[str, Any] = field(default_factory=dict)  # accuracy / BLEU on real data
    reason: str | None = None  # why it is not servable


@dataclass
class Manifest:
    task: str
    max_length: int
    tokenizers: dict[str, str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    variants: dict[str, Variant]
    labels: list[str] | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    # -- writing (export side) -------------------------------------------------
    def record_files(self, directory: str | os.PathLike) -> None:
        """Hash every file in `directory` (except the manifest) into `files`."""
        directory = Path(directory)
        self.files = {
            p.name: {"sha256": sha256_file(p), "size": p.stat().st_size}
            for p in sorted(directory.iterdir())
            if p.is_file() and p.name != MANIFEST_NAME
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, directory: str | os.PathLike) -> Path:
        """Record file hashes and write `manifest.json` into `directory`."""
        self.record_files(directory)
        path = Path(directory) / MANIFEST_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path

    # -- reading (runtime side) ------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = MANIFEST_NAME) -> "Manifest":
        """A manifest from parsed JSON; any problem is a `UserError` naming `source` and the fix."""
        fields = check_manifest(data, source)
        fields["inputs"] = [TensorSpec(**t) for t in fields["inputs"]]
        fields["outputs"] = [TensorSpec(**t) for t in fields["outputs"]]
        fields["variants"] = {k: Variant(**v) for k, v in fields["variants"].items()}
        return cls(**fields)


class Artifact:
    """An artifact directory opened for serving: manifest plus checked file access."""

    def __init__(self, root: Path, manifest: Manifest):
        self.root = root
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Artifact":
        root = Path(path)
        manifest_path = root / MANIFEST_NAME
        if not root.is_dir():
            raise UserError(f"artifact directory not found: {root}")
        if not manifest_path.is_file():
            raise UserError(f"{root} is not an onnxpress artifact (no {MANIFEST_NAME})")
        try:
            data = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise UserError(f"cannot read {manifest_path}: {str(exc)[:200]}; {REEXPORT}") from None
        return cls(root, Manifest.from_dict(data, str(manifest_path)))

    @property
    def task(self) -> str:
        return self.manifest.task

    def servable_variants(self) -> list[str]:
        return [name for name, v in self.manifest.variants.items() if v.servable]

    def variant(self, name: str) -> Variant:
        variants = self.manifest.variants
        if name not in variants:
            raise UserError(
                f"artifact {self.root} has no variant {name!r} (it has: {', '.join(variants) or 'none'})"
            )
        variant = variants[name]
        if not variant.servable:
            raise UserError(f"variant {name!r} was rejected at export and is not servable: {variant.reason}")
        return variant

    def file(self, name: str, verify: bool = True) -> Path:
        """Path of a file listed in the manifest, its size and sha256 checked first."""
        entry = self.manifest.files.get(name)
        path = self.root / name
        if Path(name).name != name or name in (".", ".."):  # a manifest names files inside its artifact only
            raise UserError(f"{self.root / MANIFEST_NAME} names {name!r}, not a file of the artifact folder; {REEXPORT}")
        if entry is None:
            raise UserError(f"{name} is not listed in {self.root / MANIFEST_NAME}; {REEXPORT}")
        if not path.is_file():
            raise UserError(f"artifact file missing: {path}; copy the complete artifact directory or re-export it")
        if verify:
            size = path.stat().st_size
            if size != entry["size"]:
                raise UserError(f"{path} has {size} bytes, manifest says {entry['size']}: truncated or replaced; "
                                "copy the artifact again or re-export it")
            if sha256_file(path) != entry["sha256"]:
                raise UserError(f"{path} does not match its sha256 in the manifest: corrupted or tampered with; "
                                "copy the artifact again or re-export it")
        return path
