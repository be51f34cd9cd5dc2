"""Engine session settings that change which graph ONNX Runtime actually runs."""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from onnxpress.runtime.devices import CPU_EP, CUDA_EP
from onnxpress.runtime.engine import Engine, EngineConfig, disabled_optimizers, session_options


def residual_layer_norm(path) -> None:
    """y = LayerNorm(x + skip): the pattern ORT's SkipLayerNormFusion rewrites."""
    hidden = 8
    node_add = helper.make_node("Add", ["x", "skip"], ["sum"])
    node_ln = helper.make_node("LayerNormalization", ["sum", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-12)
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", "seq", hidden]) for n in ("x", "skip")]
    inits = [numpy_helper.from_array(np.linspace(0.5, 1.5, hidden, dtype=np.float32), "gamma"),
             numpy_helper.from_array(np.linspace(-0.1, 0.1, hidden, dtype=np.float32), "beta")]
    graph = helper.make_graph([node_add, node_ln], "g", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))


def optimized_ops(path, tmp_path, disabled: list[str]) -> Counter:
    so = session_options(threads=1)
    so.optimized_model_filepath = str(tmp_path / f"opt{len(disabled)}.onnx")
    ort.InferenceSession(str(path), so, providers=[CPU_EP], disabled_optimizers=disabled)
    return Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)


def test_cpu_sessions_keep_add_and_layer_norm(tmp_path):
    path = tmp_path / "ln.onnx"
    residual_layer_norm(path)
    assert optimized_ops(path, tmp_path, [])["SkipLayerNormalization"] == 1  # what ORT does by default
    kept = optimized_ops(path, tmp_path, disabled_optimizers([CPU_EP]))
    assert kept["SkipLayerNormalization"] == 0 and kept["LayerNormalization"] == 1

    engine = Engine(path, EngineConfig(device="cpu", threads=1))
    assert engine.describe()["disabled_optimizers"] == ["SkipLayerNormFusion"]
    rng = np.random.default_rng(0)
    x, skip = rng.standard_normal((2, 3, 8), dtype=np.float32), rng.standard_normal((2, 3, 8), dtype=np.float32)
    s = x + skip
    expected = (s - s.mean(-1, keepdims=True)) / np.sqrt(s.var(-1, keepdims=True) + 1e-12)
    expected = expected * np.linspace(0.5, 1.5, 8) + np.linspace(-0.1, 0.1, 8)
    np.testing.assert_allclose(engine.run({"x": x, "skip": skip})[0], expected, atol=1e-5)


def test_gpu_sessions_keep_ort_fusions():
    assert disabled_optimizers([(CUDA_EP, {"device_id": "0"}), CPU_EP]) == []
