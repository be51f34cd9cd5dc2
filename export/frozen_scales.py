"""Batch-invariant int8 that keeps the dynamic graph's kernels: activation scales frozen by calibration.

Dynamic quantization (QAttention, DynamicQuantizeMatMul) computes each activation's scale over the
whole batch, padding included, so a text's result depends on its batch neighbours. This pass keeps
the dynamically quantized graph (int8 weights, QAttention with its fused attention, QEmbedLayerNorm)
and turns every run-time scale into a constant:

* each `DynamicQuantizeLinear(x)` becomes `QuantizeLinear(x, scale, zero_point)`: uint8, asymmetric,
  from the min/max of `x` on the fp32 graph over calibration texts, padding positions left out
  (they are masked out of attention, so their values need no range);
* each `MatMulInteger -> Cast -> Mul(a_scale * b_scale) [-> Add(bias)]` chain becomes one
  com.microsoft `MatMulIntegerToFloat`. ONNX Runtime fuses that chain itself only behind a
  `DynamicQuantizeLinear`; unfused, the Cast and Mul cost about as much as the integer GEMM.

A row's quantized values then depend on that row alone, so its result is the same in any batch.
Last, each QAttention is split into its three int8 projections and the ONNX `Attention` op, whose
CPU kernel is faster (`export/attention_split.py`).
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnxpress.export import quantize as q
from onnxpress.export.attention_split import split_quantized_attention

MASK_INPUT = "attention_mask"


def tensor_values(model: onnx.ModelProto, names: Sequence[str], feeds: Sequence[Mapping[str, np.ndarray]],
                  elem_type: int = onnx.TensorProto.FLOAT) -> Iterator[dict[str, np.ndarray]]:
    """For each feed, the values of the tensors `names` of `model` (of type `elem_type`; a graph input
    is read from the feed). Adds the computed ones to `model`'s outputs and runs it with graph
    optimizations off, so that intermediate tensors keep their names."""
    import onnxruntime as ort

    fed = {i.name for i in model.graph.input}
    computed = [n for n in dict.fromkeys(names) if n not in fed]
    for name in computed:
        model.graph.output.append(helper.make_tensor_value_info(name, elem_type, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep the tensors named
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    for feed in feeds:
        outputs = session.run(computed, {k: feed[k] for k in inputs}) if computed else []
        values = dict(zip(computed, outputs))
        yield {n: values[n] if n in values else np.asarray(feed[n]) for n in names}


def activation_ranges(
    fp32_model: str | Path, names: Sequence[str], feeds: Sequence[Mapping[str, np.ndarray]]
) -> dict[str, tuple[float, float]]:
    """Min and max of each tensor in `names` of the fp32 graph over `feeds`. Padding positions are
    left out where a feed has an `attention_mask` (the classifier); elsewhere (the translator's
    `src_mask`) they count, their values being zeros that every range holds anyway."""
    model = onnx.load(str(fp32_model))
    produced = {o for node in model.graph.node for o in node.output}
    fed = {i.name for i in model.graph.input}  # a graph input quantized directly: its range is the feeds'
    missing = [n for n in names if n not in produced and n not in fed]
    if missing:
        raise ValueError(f"the fp32 graph has no tensor(s) {missing[:3]}: not the graph the int8 one was built from")
    low = dict.fromkeys(names, np.inf)
    high = dict.fromkeys(names, -np.inf)
    for feed, values in zip(feeds, tensor_values(model, names, feeds)):
        real = np.asarray(feed[MASK_INPUT]).astype(bool) if MASK_INPUT in feed else None
        for name in names:
            value = values[name]
            if real is not None and value.ndim >= 2 and value.shape[:2] == real.shape:
                value = value[real]
            if value.size:
                low[name] = min(low[name], float(value.min()))
                high[name] = max(high[name], float(value.max()))
    unseen = [n for n in names if not np.isfinite(low[n])]
    if unseen:
        raise ValueError(f"calibration saw no values of {unseen[:3]} (no calibration feeds?)")
    return {n: (low[n], high[n]) for n in names}


def uint8_qparams(low: float, high: float) -> tuple[np.float32, np.uint8]:
    """Scale and zero point of `DynamicQuantizeLinear` for the range [low, high] (0 always inside)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = np.float32((high - low) / 255.0) if high > low else np.float32(1.0)
    zero_point = np.uint8(np.clip(np.round(-low / scale), 0, 255))
    return scale, zero_point


def freeze_dynamic_quantization(graph: onnx.GraphProto, ranges: Mapping[str, tuple[float, float]]) -> int:
    """Replace every `DynamicQuantizeLinear` with a `QuantizeLinear` of constant scale; returns how many."""
    renamed: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        scale, zero_point = uint8_qparams(*ranges[node.input[0]])
        quantized, scale_name, zero_name = node.output[0], node.output[1] + "_frozen", node.output[2] + "_frozen"
        graph.initializer.extend([numpy_helper.from_array(np.array(scale), scale_name),
                                  numpy_helper.from_array(np.array(zero_point), zero_name)])
        renamed[node.output[1]], renamed[node.output[2]] = scale_name, zero_name
        nodes.append(helper.make_node("QuantizeLinear", [node.input[0], scale_name, zero_name], [quantized],
                                      name=(node.name or node.output[0]) + "_frozen"))
    for node in nodes:
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)
    del graph.node[:]
    graph.node.extend(nodes)
    return len(renamed) // 2


def fuse_integer_matmuls(graph: onnx.GraphProto) -> int:
    """`MatMulInteger -> Cast -> Mul(a_scale * b_scale) [-> Add(bias)]` -> `MatMulIntegerToFloat`.

    Runs before `freeze_dynamic_quantization`: `a_scale` is found as the scale output of the
    `DynamicQuantizeLinear` that feeds the MatMul.
    """
    initializers = {i.name for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only_consumer(name: str, op_type: str) -> onnx.NodeProto | None:
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type else None

    replaced: dict[int, onnx.NodeProto] = {}
    dropped: set[int] = set()
    for matmul in (n for n in graph.node if n.op_type == "MatMulInteger"):
        cast = only_consumer(matmul.output[0], "Cast")
        mul = cast and only_consumer(cast.output[0], "Mul")
        if mul is None:
            continue
        scales = producer.get(next(i for i in mul.input if i != cast.output[0]))
        quantizer = producer.get(matmul.input[0])
        if scales is None or scales.op_type != "Mul" or quantizer is None \
                or quantizer.op_type != "DynamicQuantizeLinear" or quantizer.output[1] not in scales.input:
            continue
        a_scale = quantizer.output[1]
        b_scale = next((i for i in scales.input if i != a_scale), a_scale)
        output, bias = mul.output[0], ""
        add = only_consumer(output, "Add")
        if add is not None and any(i in initializers for i in add.input):
            bias, output = next(i for i in add.input if i in initializers), add.output[0]
            dropped.add(id(add))
        a_zero = matmul.input[2] if len(matmul.input) > 2 else ""
        b_zero = matmul.input[3] if len(matmul.input) > 3 else ""
        inputs = [matmul.input[0], matmul.input[1], a_scale, b_scale, a_zero, b_zero, bias]
        while inputs[-1] == "":
            inputs.pop()
        replaced[id(matmul)] = helper.make_node("MatMulIntegerToFloat", inputs, [output],
                                                name=(matmul.name or output) + "_to_float", domain="com.microsoft")
        dropped |= {id(cast), id(mul)}
        if len(consumers[scales.output[0]]) == 1:
            dropped.add(id(scales))
    nodes = [replaced.get(id(n), n) for n in graph.node if id(n) not in dropped]
    del graph.node[:]
    graph.node.extend(nodes)
    return len(replaced)


def quantize_int8_frozen(
    fp32_model: str | Path,
    dst: str | Path,
    feeds: Sequence[Mapping[str, np.ndarray]],
    *,
    nodes_to_exclude: Sequence[str] = (),
    op_types: Sequence[str] | None = None,
    per_channel: bool = True,
) -> dict[str, Any]:
    """Dynamic int8 of `fp32_model` (`op_types`: ONNX Runtime's default set when None) with its
    activation scales frozen on `feeds`, written to `dst`."""
    with tempfile.TemporaryDirectory(prefix="onnxpress-frozen-") as tmp:
        dynamic = Path(tmp) / "dynamic.onnx"
        method = q.quantize_int8_dynamic(fp32_model, dynamic, per_channel=per_channel,
                                         nodes_to_exclude=nodes_to_exclude, op_types=op_types)
        model = onnx.load(str(dynamic))
    names = [n.input[0] for n in model.graph.node if n.op_type == "DynamicQuantizeLinear"]
    ranges = activation_ranges(fp32_model, names, feeds)
    fused = fuse_integer_matmuls(model.graph)
    frozen = freeze_dynamic_quantization(model.graph, ranges)
    if not any(d.domain == "com.microsoft" for d in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    split = split_quantized_attention(model)
    onnx.save(model, str(dst))
    return {
        **method,
        "kind": "static",
        "scheme": "dynamic int8 graph with frozen activation scales",
        "tool": "onnxruntime.quantization.quantize_dynamic + onnxpress.export.frozen_scales",
        "activations": "uint8, asymmetric, scales calibrated (min/max on the fp32 graph, padding excluded)",
        "activation_type": "uint8",
        "calibration_method": "minmax",
        "calibration_batches": len(feeds),
        "frozen_activation_scales": frozen,
        "matmul_integer_to_float": fused,
        "attention": "int8 Q/K/V projections + ONNX Attention (opset 23)" if split else "QAttention",
        "split_attention_nodes": split,
    }
