"""The frozen-scale int8 pass (export/frozen_scales.py) on the tiny exported classifier's graphs."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from tokenizers import Tokenizer

from export_fixtures import synthetic_texts
from onnxpress.export.attention_split import ATTENTION_OPSET, split_quantized_attention
from onnxpress.export.frozen_scales import (
    activation_ranges,
    freeze_dynamic_quantization,
    fuse_integer_matmuls,
    uint8_qparams,
)
from onnxpress.export.optimize import MASK_FILTER_VALUE, count_ops


def session(model: onnx.ModelProto | str) -> ort.InferenceSession:
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def feeds_for(artifact_dir, texts: list[str]) -> dict[str, np.ndarray]:
    tokenizer = Tokenizer.from_file(str(artifact_dir / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0)
    encodings = tokenizer.encode_batch(texts)
    ids = np.array([e.ids for e in encodings], np.int64)
    mask = np.array([e.attention_mask for e in encodings], np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


@pytest.fixture(scope="module")
def graphs(artifact):
    out, _ = artifact
    dynamic = onnx.load(str(out / "model.int8-dynamic.onnx"))
    names = [n.input[0] for n in dynamic.graph.node if n.op_type == "DynamicQuantizeLinear"]
    calibration = [feeds_for(out, synthetic_texts(16, seed=s)[0]) for s in range(4)]
    ranges = activation_ranges(out / "model.onnx", names, calibration)
    return out, dynamic, ranges


@pytest.mark.parametrize("low, high", [(-3.0, 5.0), (0.5, 2.0), (-4.0, -1.0), (0.0, 0.0)])
def test_qparams_match_dynamic_quantize_linear(low, high):
    x = np.linspace(low, high, 97, dtype=np.float32)
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "scale", "zero_point"])
    graph = helper.make_graph([node], "dql", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [97])],
                              [helper.make_tensor_value_info(n, t, None) for n, t in
                               (("y", onnx.TensorProto.UINT8), ("scale", onnx.TensorProto.FLOAT),
                                ("zero_point", onnx.TensorProto.UINT8))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    _, scale, zero_point = session(model).run(None, {"x": x})
    ours = uint8_qparams(float(x.min()), float(x.max()))
    if high > low:
        assert ours[0] == pytest.approx(float(scale), rel=1e-6)
    assert int(ours[1]) == int(zero_point)


def test_ranges_leave_padding_out(graphs):
    out, dynamic, _ = graphs
    names = [n.input[0] for n in dynamic.graph.node if n.op_type == "DynamicQuantizeLinear"]
    texts = synthetic_texts(6, seed=21)[0] + ["the " * 25 + "stocks"]  # the long one pads the others
    padded = activation_ranges(out / "model.onnx", names, [feeds_for(out, texts)])
    alone = activation_ranges(out / "model.onnx", names, [feeds_for(out, [t]) for t in texts])
    for name in names:
        np.testing.assert_allclose(padded[name], alone[name], rtol=1e-5, atol=1e-5)


def test_matmul_fusion_keeps_the_outputs(graphs):
    out, dynamic, ranges = graphs
    unfused, fused = onnx.ModelProto(), onnx.ModelProto()
    unfused.CopyFrom(dynamic)
    fused.CopyFrom(dynamic)
    freeze_dynamic_quantization(unfused.graph, ranges)
    assert fuse_integer_matmuls(fused.graph) > 0
    freeze_dynamic_quantization(fused.graph, ranges)
    assert count_ops(fused)["MatMulInteger"] == 0 and count_ops(unfused)["MatMulIntegerToFloat"] == 0
    feeds = feeds_for(out, synthetic_texts(24, seed=5)[0])
    expected = session(unfused).run(["logits"], feeds)[0]
    np.testing.assert_allclose(session(fused).run(["logits"], feeds)[0], expected, atol=1e-4)


def test_frozen_graph_is_batch_invariant_and_dynamic_is_not(graphs):
    out, dynamic, ranges = graphs
    frozen = onnx.ModelProto()
    frozen.CopyFrom(dynamic)
    fuse_integer_matmuls(frozen.graph)
    assert freeze_dynamic_quantization(frozen.graph, ranges) == len(ranges)
    texts = synthetic_texts(12, seed=9)[0] + ["computer " * 28]  # a long, extreme neighbour

    def max_batch_effect(sess: ort.InferenceSession) -> float:
        batched = sess.run(["logits"], feeds_for(out, texts))[0][:-1]
        alone = np.concatenate([sess.run(["logits"], feeds_for(out, [t]))[0] for t in texts[:-1]])
        return float(np.abs(batched - alone).max())

    assert max_batch_effect(session(frozen)) < 1e-4
    assert max_batch_effect(session(dynamic)) > 1e-3


def frozen_graph(graphs) -> onnx.ModelProto:
    _, dynamic, ranges = graphs
    frozen = onnx.ModelProto()
    frozen.CopyFrom(dynamic)
    fuse_integer_matmuls(frozen.graph)
    freeze_dynamic_quantization(frozen.graph, ranges)
    return frozen


def test_split_attention_keeps_the_outputs_padded_or_not(graphs):
    out = graphs[0]
    fused = frozen_graph(graphs)
    split = onnx.ModelProto()
    split.CopyFrom(fused)
    layers = count_ops(fused)["QAttention"]
    assert split_quantized_attention(split) == layers > 0
    ops = count_ops(split)
    assert ops["QAttention"] == 0 and ops["Attention"] == layers
    assert ops["MatMulIntegerToFloat"] == count_ops(fused)["MatMulIntegerToFloat"] + 3 * layers
    assert {o.domain: o.version for o in split.opset_import}[""] == ATTENTION_OPSET and split.ir_version >= 11
    onnx.checker.check_model(split)
    texts = synthetic_texts(12, seed=13)[0] + ["computer " * 28]  # pads every other row
    for batch in (texts, texts[:1]):
        feeds = feeds_for(out, batch)
        np.testing.assert_allclose(session(split).run(["logits"], feeds)[0],
                                   session(fused).run(["logits"], feeds)[0], atol=1e-5)


def test_split_attention_masks_padding_with_the_nodes_fill_value(graphs):
    split = frozen_graph(graphs)
    fill = {helper.get_attribute_value(a) for n in split.graph.node if n.op_type == "QAttention"
            for a in n.attribute if a.name == "mask_filter_value"}
    split_quantized_attention(split)
    where = [n for n in split.graph.node if n.op_type == "Where"]
    constants = {i.name: float(numpy_helper.to_array(i)) for i in split.graph.initializer if not i.dims}
    assert len(where) == 1 and fill == {MASK_FILTER_VALUE}  # one mask, shared by every layer
    assert constants[where[0].input[1]] == 0.0 and constants[where[0].input[2]] == MASK_FILTER_VALUE


def test_attention_it_cannot_split_is_left_alone(graphs):
    model = frozen_graph(graphs)
    node = next(n for n in model.graph.node if n.op_type == "QAttention")
    node.attribute.append(helper.make_attribute("unidirectional", 1))  # causal: not a padding mask
    before = count_ops(model)["QAttention"]
    assert split_quantized_attention(model) == before - 1
    assert count_ops(model)["QAttention"] == 1
