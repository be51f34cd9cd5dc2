"""The attention core alone in ONNX Runtime's op forms, on the same random q, k, v (one thread).

    python -m onnxpress.benchmarks.probes.attention_ops [--batch 10] [--length 50] [--padded-rows 5]
        [--pad 40] [--rounds 5]

Forms: com.microsoft MultiHeadAttention with a key padding mask (what QAttention runs after its
projections) and without one; the ONNX `Attention` op (opset 23) with a boolean mask, with an
additive float mask (0 / -40, what `export/attention_split.py` builds) and without a mask; and the
same attention spelled out in plain ops (Reshape/Transpose, MatMul, Add, Softmax, MatMul), additive mask.
`--padded-rows` rows of the batch have their last `--pad` positions masked. Prints the median ms
per call and each masked form's largest difference from MultiHeadAttention on the real positions.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

HIDDEN, HEADS = 384, 12  # MiniLM-L6


def build(nodes_inputs: tuple, opset: int, batch: int, length: int, mask_type: int | None, mask_shape: list | None):
    from onnx import TensorProto, helper

    op, inputs, attrs, domain = nodes_inputs
    tensors = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, length, HIDDEN]) for n in "qkv"]
    if mask_type is not None:
        tensors.append(helper.make_tensor_value_info("mask", mask_type, mask_shape))
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, length, HIDDEN])
    graph = helper.make_graph([helper.make_node(op, inputs, ["out"], domain=domain, **attrs)], "attention", tensors, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)],
                              ir_version=10)
    return _one_thread_session(model)


def build_decomposed(batch: int, length: int):
    """The attention as plain ONNX ops, additive mask [B, 1, S, S]: what a graph without a fused op runs."""
    from onnx import TensorProto, helper, numpy_helper

    head = HIDDEN // HEADS
    tensors = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, length, HIDDEN]) for n in "qkv"]
    tensors.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [batch, 1, length, length]))
    constants = [numpy_helper.from_array(np.array([batch, length, HEADS, head], np.int64), "heads"),
                 numpy_helper.from_array(np.array([batch, length, HIDDEN], np.int64), "merged"),
                 numpy_helper.from_array(np.array(1 / np.sqrt(head), np.float32), "scale")]
    node = helper.make_node
    nodes = [node("Reshape", ["q", "heads"], ["q4"]), node("Transpose", ["q4"], ["qt"], perm=[0, 2, 1, 3]),
             node("Reshape", ["k", "heads"], ["k4"]), node("Transpose", ["k4"], ["kt"], perm=[0, 2, 3, 1]),
             node("Reshape", ["v", "heads"], ["v4"]), node("Transpose", ["v4"], ["vt"], perm=[0, 2, 1, 3]),
             node("MatMul", ["qt", "kt"], ["scores"]), node("Mul", ["scores", "scale"], ["scaled"]),
             node("Add", ["scaled", "mask"], ["masked"]), node("Softmax", ["masked"], ["weights"], axis=-1),
             node("MatMul", ["weights", "vt"], ["context"]), node("Transpose", ["context"], ["ct"], perm=[0, 2, 1, 3]),
             node("Reshape", ["ct", "merged"], ["out"])]
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, length, HIDDEN])
    model = helper.make_model(helper.make_graph(nodes, "decomposed", tensors, [out], constants),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return _one_thread_session(model)


def _one_thread_session(model):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> int:
    from onnx import TensorProto

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--length", type=int, default=50)
    ap.add_argument("--padded-rows", type=int, default=5)
    ap.add_argument("--pad", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.3, help="timing per form and round")
    args = ap.parse_args(argv)
    b, s = args.batch, args.length
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((b, s, HIDDEN), dtype=np.float32) for _ in range(3))
    lengths = np.full(b, s)
    lengths[b - args.padded_rows:] = max(1, s - args.pad)
    keys = np.arange(s)[None, :] < lengths[:, None]  # [B, S] real keys
    square = np.broadcast_to(keys[:, None, None, :], (b, 1, s, s))  # ORT wants the query axis spelled out
    mha = ("MultiHeadAttention", dict(num_heads=HEADS, mask_filter_value=-40.0), "com.microsoft")
    onnx_attention = ("Attention", dict(q_num_heads=HEADS, kv_num_heads=HEADS), "")
    forms = {
        "MultiHeadAttention, key padding mask": (mha, ["q", "k", "v", "", "mask"], 17, TensorProto.INT32, [b, s],
                                                 keys.astype(np.int32)),
        "MultiHeadAttention, no mask": (mha, ["q", "k", "v"], 17, None, None, None),
        "ONNX Attention, bool mask": (onnx_attention, ["q", "k", "v", "mask"], 23, TensorProto.BOOL, [b, 1, s, s],
                                      square.copy()),
        "ONNX Attention, additive mask (0 / -40)": (onnx_attention, ["q", "k", "v", "mask"], 23, TensorProto.FLOAT,
                                                    [b, 1, s, s], np.where(square, 0.0, -40.0).astype(np.float32)),
        "ONNX Attention, no mask": (onnx_attention, ["q", "k", "v"], 23, None, None, None),
    }
    sessions, feeds = {}, {}
    for name, ((op, attrs, domain), inputs, opset, mask_type, mask_shape, mask) in forms.items():
        sessions[name] = build((op, inputs, attrs, domain), opset, b, s, mask_type, mask_shape)
        feeds[name] = {"q": q, "k": k, "v": v, **({"mask": mask} if mask is not None else {})}
    additive = "ONNX Attention, additive mask (0 / -40)"
    decomposed = "MatMul + Softmax (plain ops), additive mask"
    forms[decomposed], feeds[decomposed] = forms[additive], feeds[additive]
    sessions[decomposed] = build_decomposed(b, s)
    times: dict[str, list[float]] = {name: [] for name in forms}
    outputs = {}
    for _ in range(args.rounds):
        for name, session in sessions.items():
            outputs[name] = session.run(None, feeds[name])[0]
            calls, start = 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds:
                session.run(None, feeds[name])
                calls += 1
            times[name].append((time.perf_counter() - start) / calls * 1e3)
    reference = outputs["MultiHeadAttention, key padding mask"]
    real = keys  # compare real query positions only (padded ones are never read)
    print(f"batch {b} x length {s}, {args.padded_rows} rows with {args.pad} padded positions, 1 thread")
    for name in forms:
        masked = forms[name][3] is not None
        diff = f"{np.abs(outputs[name] - reference)[real].max():.1e}" if masked else "-"
        print(f"| {name} | {statistics.median(times[name]):.3f} ms | max diff {diff} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
