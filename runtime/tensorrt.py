"""TensorRT execution-provider options derived from the variant and the token budget.

- precision: int8 variants are QDQ graphs (calibration-free: the scales are in the graph), so
  `trt_int8_enable` is set without a calibration table, with fp16 allowed for the layers TensorRT
  keeps in float; fp16 variants set `trt_fp16_enable`; fp32 sets neither. Without the int8 flag
  ORT fails the engine build ("Int8 precision has been set ... but int8 is not configured").
- caches: engines and timing caches live in a per-model cache folder outside the artifact (which
  may be read-only), keyed by the model's sha256, so a second load does not rebuild.
- profiles: one optimization profile covering every (batch, length) the token-budget planner can
  emit (1..max_batch_size rows, 1..max_length tokens; other named axes such as the translator's
  beam take their own range), so TensorRT builds one engine, never one per new shape.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from onnxpress.runtime.artifact import TensorSpec
from onnxpress.runtime.token_budget import TokenBudget, round_up

PRECISION_FLAGS = {
    "int8": {"trt_int8_enable": "1", "trt_fp16_enable": "1"},
    "fp16": {"trt_fp16_enable": "1"},
    "fp32": {},
}


def cache_root() -> str:
    """onnxpress's cache folder ($XDG_CACHE_HOME/onnxpress, else ~/.cache/onnxpress)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "onnxpress")


def model_cache_dir(model_sha256: str, kind: str) -> str:
    """Per-model cache folder (`kind`: "tensorrt", "gpu-check"), created on demand."""
    path = os.path.join(cache_root(), kind, model_sha256[:16])
    os.makedirs(path, exist_ok=True)
    return path


DimRange = tuple[int, int, int]  # (min, opt, max) of one symbolic dimension


def profile_shapes(inputs: Sequence[TensorSpec], budget: TokenBudget, max_length: int,
                   named: Mapping[str, DimRange] | None = None) -> dict[str, str]:
    """`trt_profile_{min,opt,max}_shapes` covering every batch the planner makes.

    A symbolic dimension listed in `named` takes that range (the translator's beam axis); otherwise
    the first symbolic dimension is the batch (1..max_batch_size) and the others are token lengths
    (1..max_length rounded up to the budget's multiple); static dimensions stay.
    The optimum is a half-length batch that fills the token budget.
    """
    longest = round_up(max_length, budget.pad_to_multiple)
    opt_length = max(1, longest // 2)
    opt_rows = max(1, min(budget.max_batch_size, budget.max_batch_tokens // opt_length))
    rows = (1, opt_rows, budget.max_batch_size)
    lengths = (1, opt_length, longest)
    named = dict(named or {})
    shapes: dict[str, str] = {}
    for k, which in enumerate(("min", "opt", "max")):
        parts = []
        for spec in inputs:
            dims = []
            for axis, dim in enumerate(spec.shape):
                if isinstance(dim, int):
                    dims.append(dim)
                elif isinstance(dim, str) and dim in named:
                    dims.append(named[dim][k])
                else:
                    dims.append((rows if axis == 0 else lengths)[k])
            parts.append(f"{spec.name}:{'x'.join(str(d) for d in dims)}")
        shapes[f"trt_profile_{which}_shapes"] = ",".join(parts)
    return shapes


def graph_inputs(model_path: str | os.PathLike) -> list[TensorSpec]:
    """The inputs of an ONNX graph as ONNX Runtime reads them (a CPU session, no optimization):
    for graphs whose manifest does not list every input's static dimensions."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    return [TensorSpec(i.name, i.type, [d if isinstance(d, (int, str)) else "?" for d in i.shape])
            for i in session.get_inputs()]


def parse_profile(value: str) -> dict[str, tuple[int, ...]]:
    """'a:1x2,b:3x4' -> {'a': (1, 2), 'b': (3, 4)} (for checks and tests)."""
    out = {}
    for part in value.split(","):
        name, dims = part.rsplit(":", 1)
        out[name] = tuple(int(d) for d in dims.split("x"))
    return out


def tensorrt_options(precision: str, cache_dir: str | None = None,
                     profiles: dict[str, str] | None = None) -> dict[str, str]:
    """TensorRT provider options for a variant of `precision` (int8, fp16, fp32)."""
    options = dict(PRECISION_FLAGS.get(precision, {}))
    if cache_dir:
        options.update(trt_engine_cache_enable="1", trt_engine_cache_path=cache_dir,
                       trt_timing_cache_enable="1", trt_timing_cache_path=cache_dir)
    options.update(profiles or {})
    return options
