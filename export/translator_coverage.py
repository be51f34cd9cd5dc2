"""How much of an int8 translator runs in int8: shares of weights and of FLOPs, per graph and per sentence.

Recorded in the int8 variant's `method.coverage`: the encoder's GRU recurrences stay fp32
(ONNX GRU op), so the share is reported rather than assumed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx


def _observed_shapes(model: onnx.ModelProto, dims: dict[str, int]) -> dict[str, list[int]]:
    """Shapes of every MatMul/GRU input and MatMul output, observed by running the graph once.

    Static shape inference cannot follow the encoder's length-dependent gathers, so the
    graph is run on dummy inputs of the given sizes (token ids 4, masks all ones, topk 1).
    """
    import onnxruntime as ort
    from onnx import helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    wanted = []
    for node in model.graph.node:
        if node.op_type in ("MatMul", "GRU"):
            wanted.append(node.input[0])
            if node.op_type == "MatMul":
                wanted.append(node.output[0])
    known = {o.name for o in model.graph.output} | {i.name for i in model.graph.initializer}
    extra = [n for n in dict.fromkeys(wanted) if n not in known]
    model.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in extra)
    feeds = {}
    rng = np.random.default_rng(0)
    for value in model.graph.input:
        shape = [dims[d.dim_param] if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]
        if value.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            fill = 1 if value.name in ("src_mask", "topk") else 4
            feeds[value.name] = np.full(shape, fill, dtype=np.int64)
        else:
            feeds[value.name] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return {name: list(np.shape(value)) for name, value in zip(names, session.run(names, feeds))}


def _flops_by_weight(model: onnx.ModelProto, dims: dict[str, int]) -> tuple[dict[str, float], float]:
    """FLOPs per weight initializer (MatMul / GRU) and FLOPs of activation x activation MatMuls."""
    shapes = _observed_shapes(model, dims)
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    by_weight: dict[str, float] = {}
    activation = 0.0
    for node in model.graph.node:
        if node.op_type == "MatMul":
            a, b = node.input[0], node.input[1]
            a_shape = shapes.get(a) or inits.get(a)
            if b in inits:
                k, n = inits[b][-2], inits[b][-1]
                rows = int(np.prod(a_shape[:-1])) if a_shape else 0
                by_weight[b] = by_weight.get(b, 0.0) + 2.0 * rows * k * n
            else:
                out = shapes.get(node.output[0])
                if out and a_shape:
                    activation += 2.0 * float(np.prod(out)) * a_shape[-1]
        elif node.op_type == "GRU":
            x = shapes.get(node.input[0])  # [seq, batch, input]
            w, r = node.input[1], node.input[2]
            if x and w in inits and r in inits:
                d, three_h, i = inits[w]
                h = inits[r][2]
                by_weight[w] = 2.0 * x[0] * x[1] * d * three_h * i
                by_weight[r] = 2.0 * x[0] * x[1] * d * three_h * h
    return by_weight, activation


def _float_weights(model: onnx.ModelProto) -> dict[str, int]:
    """Float initializers that are weights (not shape constants or scalars), name -> element count."""
    out = {}
    for init in model.graph.initializer:
        if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) and len(init.dims) >= 1:
            n = int(np.prod(init.dims))
            if n >= 16:
                out[init.name] = n
    return out


def quantization_coverage(fp32: dict[str, str | Path], int8: dict[str, str | Path], *,
                          src_len: float, tgt_len: float, beams: tuple[int, ...] = (1, 4)) -> dict[str, Any]:
    """How much of the model runs in int8: shares of weight parameters and of FLOPs.

    FLOPs are counted from the graphs at the given mean source length: the encoder once per
    sentence, the decoder step `tgt_len` times per beam. A weight counts as int8 when the
    quantized graph holds its `_quantized` initializer. What stays fp32 is listed by op.
    """
    s = max(1, int(round(src_len)))
    report: dict[str, Any] = {"src_len": src_len, "tgt_len": tgt_len, "graphs": {},
                              "counted": "MatMul and GRU FLOPs (2 per multiply-add); elementwise ops not counted; "
                                         "weights = float initializers of >= 16 elements"}
    per_graph = {}
    total_params = int8_params = 0
    for role in ("encoder", "decoder_step"):
        m32 = onnx.load(str(fp32[role]))
        m8 = onnx.load(str(int8[role]))
        quantized = {i.name[: -len("_quantized")] for i in m8.graph.initializer if i.name.endswith("_quantized")}
        weights = _float_weights(m32)
        dims = {"batch": 1, "src_len": s, "beam": 1}
        flops, activation = _flops_by_weight(m32, dims)
        q_flops = sum(f for w, f in flops.items() if w in quantized)
        all_flops = sum(flops.values()) + activation
        consumers: dict[str, str] = {}
        for node in m32.graph.node:
            for name in node.input:
                consumers.setdefault(name, node.op_type)
        fp32_left: dict[str, int] = {}
        for name, n in weights.items():
            if name not in quantized:
                op = consumers.get(name, "?")
                fp32_left[op] = fp32_left.get(op, 0) + n
        n_all = sum(weights.values())
        n_q = sum(n for w, n in weights.items() if w in quantized)
        total_params += n_all
        int8_params += n_q
        per_graph[role] = (q_flops, all_flops)
        report["graphs"][role] = {
            "weight_params": n_all, "int8_params": n_q, "int8_param_share": n_q / max(n_all, 1),
            "flops_per_call": all_flops, "int8_flops_per_call": q_flops, "int8_flop_share": q_flops / max(all_flops, 1),
            "fp32_params_by_op": fp32_left,
            "file_bytes_fp32": Path(fp32[role]).stat().st_size, "file_bytes_int8": Path(int8[role]).stat().st_size,
        }
    report["int8_weight_share"] = int8_params / max(total_params, 1)
    report["per_sentence"] = {}
    for k in beams:
        q = per_graph["encoder"][0] + tgt_len * k * per_graph["decoder_step"][0]
        a = per_graph["encoder"][1] + tgt_len * k * per_graph["decoder_step"][1]
        report["per_sentence"][f"beam{k}"] = {"flops": a, "int8_flops": q, "int8_flop_share": q / max(a, 1)}
    return report
