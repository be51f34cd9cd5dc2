"""Engine session settings that change which graph ONNX Runtime actually runs."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
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


def reshape_to_six(path) -> None:
    """y = Reshape(x, [2, 3]) + 1, z = x * 2: fails at run time unless x has 6 elements."""
    shape = numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "shape")
    one = numpy_helper.from_array(np.ones((1,), dtype=np.float32), "one")
    two = numpy_helper.from_array(np.full((1,), 2.0, dtype=np.float32), "two")
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]), helper.make_node("Add", ["r", "one"], ["y"]),
             helper.make_node("Mul", ["x", "two"], ["z"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], [shape, one, two])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))


def test_named_outputs_and_device_resident_feeds_equal_plain_run(tmp_path):
    path = tmp_path / "r.onnx"
    reshape_to_six(path)
    plain = Engine(path, EngineConfig(device="cpu", threads=1))
    bound = Engine(path, EngineConfig(device="cpu", threads=1, io_binding=True))
    x = np.arange(6, dtype=np.float32)
    y, z = plain.run({"x": x})
    assert [a.tolist() for a in plain.run({"x": x}, ["z", "y"])] == [z.tolist(), y.tolist()]
    np.testing.assert_array_equal(bound.run({"x": x}, ["y"])[0], y)
    resident = bound.to_device(x)  # an OrtValue fed to several runs
    kept, host = bound.run({"x": resident}, ["y", "z"], keep_on_device={"y"})
    assert not isinstance(kept, np.ndarray) and isinstance(host, np.ndarray)
    np.testing.assert_array_equal(kept.numpy(), y)
    np.testing.assert_array_equal(plain.run({"x": resident})[1], z)  # plain engines take OrtValues too


def test_run_time_failure_names_provider_variant_and_shapes(tmp_path):
    from onnxpress.errors import InferenceError, UserError

    path = tmp_path / "r.onnx"
    reshape_to_six(path)
    for io_binding in (False, True):
        engine = Engine(path, EngineConfig(device="cpu", threads=1, variant="fp32", io_binding=io_binding))
        with pytest.raises(InferenceError) as failure:
            engine.run({"x": np.zeros(5, np.float32)})
        message = str(failure.value)
        assert "CPUExecutionProvider" in message and "variant 'fp32'" in message and "x[5]" in message
        assert "r.onnx" in message and "\n" not in message
        assert isinstance(failure.value, UserError)  # the CLI prints it on one line
    with pytest.raises(ValueError, match="not provided"):  # a caller's mistake stays what it was
        engine.run({"y": np.zeros(6, np.float32)})


def test_out_of_memory_message_says_what_to_lower(tmp_path):
    path = tmp_path / "r.onnx"
    reshape_to_six(path)
    engine = Engine(path, EngineConfig(device="cpu", threads=1, variant="fp16"))
    oom = RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDA failure 2: out of memory")
    message = engine.failure_message(oom, {"input_ids": np.zeros((256, 512), np.int64)})
    assert "input_ids[256, 512]" in message and "lower max_batch_tokens" in message


def test_fixed_shape_path_is_safe_from_many_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "r.onnx"
    reshape_to_six(path)
    plain = Engine(path, EngineConfig(device="cpu", threads=1))
    fixed = Engine(path, EngineConfig(device="cpu", threads=1, cuda_graphs=True))
    assert not fixed.cuda_graphs  # on CPU memory the buckets run without graphs
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(6).astype(np.float32) for _ in range(64)]
    expected = [plain.run({"x": x}) for x in xs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda x: fixed.run_fixed({"x": x}, [(2, 3), (6,)]), xs))
    for (ey, ez), (gy, gz) in zip(expected, got):
        np.testing.assert_array_equal(gy, ey)
        np.testing.assert_array_equal(gz, ez)
    assert fixed.n_buckets == 1
