"""Shape checks of a parsed `manifest.json`: every problem is one `UserError` naming the file and the fix.

The reader is strict about what it uses (types of every field the runtime reads) and lenient about
what it does not: keys it does not know are ignored, so a manifest that only gained fields still
loads. A manifest written by a newer onnxpress with a newer format is refused with "upgrade".
"""
from __future__ import annotations

import re
from typing import Any, Callable

from onnxpress.errors import UserError

FORMAT = "onnxpress-artifact"
FORMAT_VERSION = 1
TASKS = ("text-classification", "translation")
SHA256 = re.compile(r"[0-9a-f]{64}")
REEXPORT = "re-export the artifact (onnxpress export ...) or restore its manifest.json"
JSON_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null",
              int: "integer", float: "number"}


class _Checker:
    def __init__(self, source: str):
        self.source = source

    def fail(self, problem: str, fix: str = REEXPORT) -> UserError:
        return UserError(f"{self.source}: {problem}; {fix}")

    def field(self, data: dict, key: str, kind: type | tuple[type, ...], what: str, required: bool = True,
              default: Any = None) -> Any:
        if key not in data:
            if required:
                raise self.fail(f"{what} is missing")
            return default
        value = data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(JSON_NAMES[k] for k in kinds)
            raise self.fail(f"{what} must be {_article(names)}, not {_json_type(value)}")
        return value

    def mapping_of(self, value: dict, check: Callable[[str, Any], Any]) -> dict:
        return {str(k): check(str(k), v) for k, v in value.items()}

    def strings(self, value: Any, what: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{what} must be a list of strings")
        return value


def check_manifest(data: Any, source: str) -> dict[str, Any]:
    """The fields of a valid manifest (unknown keys dropped), or a `UserError` naming `source`."""
    c = _Checker(source)
    if not isinstance(data, dict):
        raise c.fail(f"holds {_article(_json_type(data))}, not an onnxpress manifest (a JSON object)")
    if data.get("format") != FORMAT:
        raise c.fail(f"not an onnxpress manifest (format={data.get('format')!r})")
    version = data.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        writer = data.get("versions", {}).get("onnxpress") if isinstance(data.get("versions"), dict) else None
        by = f" by onnxpress {writer}" if writer else ""
        raise c.fail(f"manifest format_version {version} was written{by}, newer than this onnxpress reads "
                     f"(version {FORMAT_VERSION})", "upgrade onnxpress (pip install -U onnxpress)")
    if version != FORMAT_VERSION:
        raise c.fail(f"manifest format_version {version!r} is not supported by this onnxpress "
                     f"(it reads version {FORMAT_VERSION})", "re-export the artifact or upgrade onnxpress")
    task = data.get("task")
    if task not in TASKS:
        raise c.fail(f"unknown task {task!r} in manifest (known: {', '.join(TASKS)})")
    max_length = c.field(data, "max_length", int, "max_length")
    if max_length < 1:
        raise c.fail(f"max_length must be >= 1 (got {max_length})")
    out: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "task": task, "max_length": max_length}
    tokenizers = c.field(data, "tokenizers", dict, "tokenizers")
    out["tokenizers"] = c.mapping_of(tokenizers, lambda k, v: _string(c, v, f"tokenizers.{_shown(k)}"))
    for key in ("inputs", "outputs"):
        out[key] = [_tensor(c, t, f"{key}[{i}]") for i, t in enumerate(c.field(data, key, list, key))]
    variants = c.field(data, "variants", dict, "variants (an object of variant name -> description)")
    if not variants:
        raise c.fail("variants is empty: the artifact has no model to serve")
    out["variants"] = c.mapping_of(variants, lambda k, v: _variant(c, v, f"variants.{_shown(k)}"))
    labels = c.field(data, "labels", (list, type(None)), "labels", required=False)
    out["labels"] = None if labels is None else c.strings(labels, "labels")
    files = c.field(data, "files", dict, "files", required=False, default={})
    out["files"] = c.mapping_of(files, lambda k, v: _file_entry(c, v, k))
    versions = c.field(data, "versions", dict, "versions", required=False, default={})
    out["versions"] = {str(k): str(v) for k, v in versions.items()}
    out["created"] = str(data.get("created") or "")
    out["extra"] = c.field(data, "extra", dict, "extra", required=False, default={})
    return out


def _variant(c: _Checker, value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise c.fail(f"{what} must be an object, not {_json_type(value)}")
    files = c.field(value, "files", dict, f"{what}.files")
    out = {
        "files": c.mapping_of(files, lambda k, v: _string(c, v, f"{what}.files.{_shown(k)}")),
        "precision": _string(c, c.field(value, "precision", str, f"{what}.precision"), f"{what}.precision"),
        "devices": c.strings(c.field(value, "devices", list, f"{what}.devices"), f"{what}.devices"),
        "opset": c.field(value, "opset", (int, type(None)), f"{what}.opset", required=False),
        "servable": c.field(value, "servable", bool, f"{what}.servable", required=False, default=True),
        "reason": c.field(value, "reason", (str, type(None)), f"{what}.reason", required=False),
    }
    for key in ("method", "parity", "metrics"):
        out[key] = c.field(value, key, dict, f"{what}.{key}", required=False, default={})
    return out


def _tensor(c: _Checker, value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise c.fail(f"{what} must be an object with name, dtype and shape")
    shape = c.field(value, "shape", list, f"{what}.shape")
    if not all(isinstance(d, (int, str)) and not isinstance(d, bool) for d in shape):
        raise c.fail(f"{what}.shape must list integers and dimension names")
    return {"name": c.field(value, "name", str, f"{what}.name"), "dtype": c.field(value, "dtype", str, f"{what}.dtype"),
            "shape": shape}


def _file_entry(c: _Checker, value: Any, name: str) -> dict[str, Any]:
    what = f"files[{name!r}]"
    if not isinstance(value, dict):
        raise c.fail(f"{what} must be an object with sha256 and size")
    sha = c.field(value, "sha256", str, f"{what}.sha256")
    size = c.field(value, "size", int, f"{what}.size")
    if not SHA256.fullmatch(sha) or size < 0:
        raise c.fail(f"{what} has an invalid sha256 or size")
    return {"sha256": sha, "size": size}


def _shown(key: str) -> str:
    """A manifest key as an error message names it: quoted when it holds line breaks or other
    unprintable characters, so the message stays one line."""
    return key if key.isprintable() else repr(key)


def _string(c: _Checker, value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise c.fail(f"{what} must be a non-empty string")
    return value


def _json_type(value: Any) -> str:
    return JSON_NAMES.get(type(value), type(value).__name__)


def _article(name: str) -> str:
    return ("an " if name[:1] in "aeiou" else "a ") + name
