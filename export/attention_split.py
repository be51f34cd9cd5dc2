"""ONNX Runtime's QAttention split into its int8 Q, K, V projections and the ONNX `Attention` op.

QAttention (the fused attention of a dynamically quantized BERT) computes the three projections
as one int8 GEMM and then the attention core in fp32, one small GEMM pair per (row, head). Since
ONNX Runtime 1.23 the CPU provider also implements the standard `Attention` op (opset 23), whose
core is faster on the same inputs (measured with 1.31). So each QAttention becomes

    MatMulIntegerToFloat(x, W_q) / (x, W_k) / (x, W_v)  ->  Attention(q, k, v, mask)

with the weights, scales, zero points and bias split by columns (three GEMMs read the same
quantized input; one GEMM and a `Split` cost more than that). The padding mask becomes one additive
float mask [batch, 1, sequence, sequence] built once and shared: 0 where a key is a real token,
the node's `mask_filter_value` where it is padding. A finite value matters: with a boolean mask a
run with padded rows took about 20% longer, the slowdown a float-minimum fill gave QAttention
(denormals in the softmax; `export/optimize.py`, MASK_FILTER_VALUE).
The outputs are the same as QAttention's (measured: bit-identical on the AG News test set);
figures in benchmarks/README.md ("Attention as the ONNX op").
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ATTENTION_OPSET = 23  # the first ai.onnx opset with `Attention`
ORT_DEFAULT_MASK_FILTER_VALUE = -10000.0  # QAttention's default when the attribute is absent
_SUPPORTED_ATTRIBUTES = {"num_heads", "mask_filter_value"}


def split_quantized_attention(model: onnx.ModelProto) -> int:
    """Rewrite every QAttention of `model` (in place) that has a 2-D mask, no past state and no
    attribute besides `num_heads` and `mask_filter_value`; returns how many were rewritten and
    raises the default-domain opset to ATTENTION_OPSET (and the IR version to match) when any was."""
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    ranks = _tensor_ranks(model)
    nodes: list[onnx.NodeProto] = []
    masks: dict[tuple[str, float], str] = {}  # (mask input, fill value) -> additive mask
    split = 0
    for node in graph.node:
        inputs = list(node.input) + [""] * (9 - len(node.input))
        x, weight, bias, x_scale, w_scale, mask, x_zero, w_zero, past = inputs[:9]
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type != "QAttention" or node.domain != "com.microsoft" or past or len(node.output) > 1
                or set(attributes) - _SUPPORTED_ATTRIBUTES or (mask and ranks.get(mask) != 2)):
            nodes.append(node)
            continue
        heads = int(attributes["num_heads"])
        fill = float(attributes.get("mask_filter_value", ORT_DEFAULT_MASK_FILTER_VALUE))
        parts = {name: _column_thirds(initializers[name]) if name in initializers else None
                 for name in (weight, bias, w_scale, w_zero) if name}
        if any(p is None for p in parts.values()):  # a run-time weight, scale or bias: leave the node
            nodes.append(node)
            continue
        if mask and (mask, fill) not in masks:
            masks[(mask, fill)] = _additive_mask(nodes, graph, mask, fill)
        projections = []
        for k, role in enumerate("qkv"):
            own = {}  # this projection's share of each split tensor
            for name, thirds in parts.items():
                graph.initializer.append(numpy_helper.from_array(thirds[k], f"{name}_{role}"))
                own[name] = f"{name}_{role}"
            out = f"{node.output[0]}_{role}"
            args = [x, own[weight], x_scale, own[w_scale], x_zero, own.get(w_zero, ""), own.get(bias, "")]
            while args[-1] == "":
                args.pop()
            nodes.append(helper.make_node("MatMulIntegerToFloat", args, [out], name=f"{node.name}_{role}",
                                          domain="com.microsoft"))
            projections.append(out)
        core_inputs = projections + ([masks[(mask, fill)]] if mask else [])
        nodes.append(helper.make_node("Attention", core_inputs, [node.output[0]], name=f"{node.name}_core",
                                      q_num_heads=heads, kv_num_heads=heads))
        split += 1
    if split:
        del graph.node[:]
        graph.node.extend(nodes)
        _drop_unused_initializers(graph)
        for opset in model.opset_import:
            if opset.domain in ("", "ai.onnx"):
                opset.version = max(opset.version, ATTENTION_OPSET)
        model.ir_version = max(model.ir_version, helper.find_min_ir_version_for(
            list(model.opset_import), ignore_unknown=True))  # opset 23 comes with IR version 11
    return split


def _column_thirds(init: onnx.TensorProto) -> list[np.ndarray] | None:
    """A scalar three times over, or the three equal column blocks of a [.., 3H] tensor."""
    array = numpy_helper.to_array(init)
    if array.ndim == 0 or array.size == 1:
        return [array] * 3
    if array.shape[-1] % 3:
        return None
    return [np.ascontiguousarray(block) for block in np.split(array, 3, axis=-1)]


def _additive_mask(nodes: list[onnx.NodeProto], graph: onnx.GraphProto, mask: str, fill: float) -> str:
    """Append the nodes that turn a [batch, sequence] 0/1 mask into [batch, 1, sequence, sequence]
    floats (0 for a real key, `fill` for padding); returns the result's name."""
    base = f"{mask}_additive"
    graph.initializer.extend([
        numpy_helper.from_array(np.array(0.0, np.float32), f"{base}_keep"),
        numpy_helper.from_array(np.array(fill, np.float32), f"{base}_fill"),
        numpy_helper.from_array(np.array([1, 2], np.int64), f"{base}_axes"),
        numpy_helper.from_array(np.array([1, 1], np.int64), f"{base}_lead"),
        numpy_helper.from_array(np.array([1], np.int64), f"{base}_tail"),
    ])
    nodes.extend([
        helper.make_node("Cast", [mask], [f"{base}_bool"], to=TensorProto.BOOL),
        helper.make_node("Where", [f"{base}_bool", f"{base}_keep", f"{base}_fill"], [f"{base}_keys"]),
        helper.make_node("Unsqueeze", [f"{base}_keys", f"{base}_axes"], [f"{base}_row"]),  # [B, 1, 1, S]
        helper.make_node("Shape", [mask], [f"{base}_length"], start=1, end=2),
        helper.make_node("Concat", [f"{base}_lead", f"{base}_length", f"{base}_tail"], [f"{base}_shape"], axis=0),
        # ONNX Runtime wants the query axis spelled out: [B, 1, 1, S] broadcast against [1, 1, S, 1]
        helper.make_node("Expand", [f"{base}_row", f"{base}_shape"], [base]),
    ])
    return base


def _tensor_ranks(model: onnx.ModelProto) -> dict[str, int]:
    """Ranks of the graph's tensors that shape inference can tell (contrib ops stay unknown)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {}
    for info in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        if info.type.tensor_type.HasField("shape"):
            ranks[info.name] = len(info.type.tensor_type.shape.dim)
    return ranks


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
