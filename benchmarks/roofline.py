"""Roofline: how many GEMM operations per second this machine can do, and how close models get.

The roof is measured, not taken from a datasheet: one large MatMulInteger (uint8 x int8 ->
int32, the kernel ONNX Runtime's dynamic int8 models run) and one fp32 MatMul, each in an ONNX
Runtime session with the benchmark's thread budget, at the GEMM shapes of a BERT layer. A
contender's achieved GOPS = its model's multiply-add work (2 ops per MAC) / measured latency;
divided by the roof of its precision it says how much of the machine's GEMM throughput it turns
into model work (the rest goes to non-GEMM ops, memory traffic, overheads, padding).
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Sequence

import numpy as np

IR_VERSION = 9  # onnx >= 1.23 writes IR 14 by default, which onnxruntime 1.31 refuses


def gemm_model(m: int, k: int, n: int, precision: str) -> bytes:
    """A one-node ONNX model: A[m,k] (input) x B[k,n] (initializer)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if precision == "int8":
        b = rng.integers(-127, 128, size=(k, n), dtype=np.int8)
        node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    elif precision == "fp32":
        b = rng.standard_normal((k, n), dtype=np.float32)
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    else:
        raise ValueError(f"unknown precision {precision!r}")
    graph = helper.make_graph(
        [node], f"gemm_{precision}",
        [helper.make_tensor_value_info("A", a_type, [m, k])],
        [helper.make_tensor_value_info("Y", y_type, [m, n])],
        initializer=[numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def measure_gemm(m: int, k: int, n: int, precision: str, threads: int,
                 min_runs: int = 5, time_budget_s: float = 1.5) -> dict[str, Any]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    session = ort.InferenceSession(gemm_model(m, k, n, precision), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    a = (rng.integers(0, 256, size=(m, k), dtype=np.uint8) if precision == "int8"
         else rng.standard_normal((m, k), dtype=np.float32))
    for _ in range(2):
        session.run(None, {"A": a})
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < time_budget_s:
        t0 = time.perf_counter()
        session.run(None, {"A": a})
        times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    median = statistics.median(times)
    return {"m": m, "k": k, "n": n, "precision": precision, "runs": len(times),
            "median_ms": median * 1e3, "gops": 2 * m * k * n / median / 1e9,
            "best_gops": 2 * m * k * n / min(times) / 1e9}


def bert_gemm_shapes(hidden: int = 384, intermediate: int = 1536, tokens: int = 2048) -> list[tuple[int, int, int]]:
    """The dominant GEMMs of a BERT layer over `tokens` rows: attention projections and the FFN."""
    return [(tokens, hidden, hidden), (tokens, hidden, intermediate), (tokens, intermediate, hidden)]


def measure_roof(threads: int, shapes: Sequence[tuple[int, int, int]] | None = None,
                 precisions: Sequence[str] = ("int8", "fp32"), time_budget_s: float = 1.5) -> dict[str, Any]:
    """Attainable GOPS per precision: the best median over `shapes` (and every shape's result)."""
    shapes = list(shapes or bert_gemm_shapes())
    out: dict[str, Any] = {"threads": threads, "method": "ONNX Runtime CPU EP, one MatMulInteger (u8 x s8) "
                           "or MatMul (fp32) node, B constant, median of repeated runs"}
    for precision in precisions:
        runs = [measure_gemm(m, k, n, precision, threads, time_budget_s=time_budget_s) for m, k, n in shapes]
        out[precision] = {"gops": max(r["gops"] for r in runs), "shapes": runs}
    return out


# -- model work ---------------------------------------------------------------------------

def encoder_config(config: dict[str, Any]) -> dict[str, int] | None:
    """hidden / layers / intermediate of a BERT-like HF config.json, or None if it is not one."""
    try:
        return {"hidden": int(config["hidden_size"]), "layers": int(config["num_hidden_layers"]),
                "intermediate": int(config["intermediate_size"])}
    except (KeyError, TypeError, ValueError):
        return None


def encoder_ops(dims: dict[str, int], batch: int, length: int) -> float:
    """Multiply-add work (2 ops per MAC) of a BERT encoder forward on a [batch, length] input.

    Per layer and token: Q, K, V and output projections 8*H^2, FFN 4*H*I; per layer and
    sequence: attention scores and context 4*L^2*H. Embeddings, norms and softmax are not
    GEMM work and are left out, as is the (tiny) classification head.
    """
    h, layers, i = dims["hidden"], dims["layers"], dims["intermediate"]
    per_layer = length * (8 * h * h + 4 * h * i) + 4 * length * length * h
    return float(batch * layers * per_layer)
