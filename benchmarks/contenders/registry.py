"""Contenders rebuilt from their JSON `spec` (the fresh-process children of `probe.py`)."""
from __future__ import annotations

from typing import Any

from onnxpress.benchmarks.contenders.base import Contender
from onnxpress.benchmarks.contenders.onnxpress_contender import Onnxpress
from onnxpress.benchmarks.contenders.optimum_peer import OptimumORT
from onnxpress.benchmarks.contenders.torch_peers import TorchCompiled, TorchEager, TorchFp16


def from_spec(spec: dict[str, Any]) -> Contender:
    """Rebuild a contender from its `spec` (used by the fresh-process children)."""
    kind = spec["kind"]
    if kind == "onnxpress":
        return Onnxpress(spec["artifact"], spec["variant"], spec.get("device", "cpu"))
    if kind in ("torch", "torch-compile", "torch-fp16"):
        cls = {"torch": TorchEager, "torch-compile": TorchCompiled, "torch-fp16": TorchFp16}[kind]
        return cls(spec["checkpoint"], spec["max_length"], spec.get("artifact"), sort=spec.get("sort", False),
                   key=spec.get("key"), device=spec.get("device", "cpu"))
    common = dict(artifact=spec.get("artifact"), key=spec.get("key"))
    if kind == "optimum":
        return OptimumORT(spec["checkpoint"], spec["max_length"], spec["cache_dir"], spec["quantize"], **common)
    if kind == "ct2":
        from onnxpress.benchmarks.ct2_contender import CTranslate2Int8

        return CTranslate2Int8(spec["checkpoint"], spec["max_length"], cache_dir=spec["cache_dir"], **common)
    if kind == "openvino":
        from onnxpress.benchmarks.openvino_contender import OpenVINOInt8

        return OpenVINOInt8(spec["checkpoint"], spec["max_length"], cache_dir=spec["cache_dir"], **common)
    raise ValueError(f"unknown contender kind {kind!r}")
