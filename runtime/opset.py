"""Refuse a model whose ONNX opset the installed onnxruntime does not implement."""
from __future__ import annotations

import functools

from onnxpress.errors import UserError

# Highest ai.onnx opset each onnxruntime minor release implements (ORT's Versioning.md).
# For anything newer than this table, or an opset above it, ORT's own schema registry is asked
# (about 0.4 s, so only when the fast table cannot answer).
MAX_OPSET = {
    (1, 14): 18, (1, 15): 19, (1, 16): 19, (1, 17): 20, (1, 18): 21, (1, 19): 21,
    (1, 20): 21, (1, 21): 22, (1, 22): 22, (1, 23): 23,
}


def ort_version() -> tuple[int, int]:
    import onnxruntime

    major, minor = onnxruntime.__version__.split(".")[:2]
    return int(major), int(minor)


@functools.cache  # the installed onnxruntime does not change under a running process
def max_supported_opset() -> int:
    """Highest ai.onnx opset the installed onnxruntime knows (from its schema registry)."""
    from onnxruntime.capi import _pybind_state as C

    return max(s.since_version for s in C.get_all_operator_schema() if s.domain in ("", "ai.onnx"))


def implemented_opset(needed: int = 0) -> int:
    """Highest ai.onnx opset the installed onnxruntime implements, as far as it matters for `needed`
    (ORT's schema registry is asked only when the table cannot answer for that opset)."""
    version = ort_version()
    known = MAX_OPSET.get(version)
    if known is None and version > max(MAX_OPSET):
        known = MAX_OPSET[max(MAX_OPSET)]  # newer releases implement at least this much
        if needed > known:
            known = max_supported_opset()
    return 17 if known is None else known  # older than the table: be conservative


def runs_opset(opset: int | None) -> bool:
    """Whether the installed onnxruntime implements `opset` (None or 0: unknown, assumed yes)."""
    return not opset or int(opset) <= implemented_opset(int(opset))


def check_opset(opset: int | None, artifact_ort: str | None = None) -> None:
    """Refuse a model whose opset the installed onnxruntime does not implement."""
    if runs_opset(opset):
        return
    built = f" (the artifact was validated with onnxruntime {artifact_ort})" if artifact_ort else ""
    raise UserError(
        f"the model uses ONNX opset {opset} but onnxruntime {'.'.join(map(str, ort_version()))} "
        f"implements opsets up to {implemented_opset(int(opset))}{built}; upgrade onnxruntime "
        "or choose a variant with a lower opset"
    )
