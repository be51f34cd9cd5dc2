"""The translator's vocabulary-wide step ops in ONNX Runtime's forms, on the same random logits (one thread).

    python -m onnxpress.benchmarks.probes.vocab_ops [--rows 256] [--vocab 6000] [--k 5] [--rounds 5]

The decoder step ends in LogSoftmax then TopK over the target vocabulary (the search needs the k best
log-probabilities per beam). Forms measured: that pair; TopK on the logits with the log-sum-exp
subtracted after (ReduceLogSumExp, or ReduceMax/Exp/ReduceSum/Log spelled out), which skips writing
the full log-probabilities; TopK alone (the floor). For k = 1 also ArgMax with ReduceMax or
GatherElements in place of TopK. Prints the median ms per call and each form's largest difference
from LogSoftmax + TopK (ids must be equal).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _session(nodes: list, constants: list, rows: int, vocab: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "vocab", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, vocab])],
                              [helper.make_tensor_value_info("values", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("ids", TensorProto.INT64, None)], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # not every form uses both constants
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def forms(rows: int, vocab: int, k: int) -> dict[str, object]:
    from onnx import helper, numpy_helper

    node = helper.make_node
    constants = [numpy_helper.from_array(np.array([k], np.int64), "k"),
                 numpy_helper.from_array(np.array([-1], np.int64), "axis")]
    topk_logits = node("TopK", ["x", "k"], ["top", "ids"], axis=-1)
    built = {
        "LogSoftmax + TopK": [node("LogSoftmax", ["x"], ["lp"], axis=-1), node("TopK", ["lp", "k"], ["values", "ids"], axis=-1)],
        "TopK + ReduceLogSumExp": [topk_logits, node("ReduceLogSumExp", ["x", "axis"], ["lse"], keepdims=1),
                                   node("Sub", ["top", "lse"], ["values"])],
        "TopK + log-sum-exp in plain ops": [
            topk_logits, node("ReduceMax", ["x", "axis"], ["max"], keepdims=1), node("Sub", ["x", "max"], ["shifted"]),
            node("Exp", ["shifted"], ["e"]), node("ReduceSum", ["e", "axis"], ["sum"], keepdims=1),
            node("Log", ["sum"], ["log"]), node("Add", ["log", "max"], ["lse"]), node("Sub", ["top", "lse"], ["values"])],
        "TopK alone (logits, the floor)": [node("TopK", ["x", "k"], ["values", "ids"], axis=-1)],
    }
    if k == 1:
        argmax = [node("LogSoftmax", ["x"], ["lp"], axis=-1), node("ArgMax", ["lp"], ["ids"], axis=-1, keepdims=1)]
        built["LogSoftmax + ArgMax + ReduceMax"] = argmax + [node("ReduceMax", ["lp", "axis"], ["values"], keepdims=1)]
        built["LogSoftmax + ArgMax + GatherElements"] = argmax + [node("GatherElements", ["lp", "ids"], ["values"], axis=-1)]
    return {name: _session(nodes, constants, rows, vocab) for name, nodes in built.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=256, help="batch x beam rows (64 sentences x beam 4)")
    ap.add_argument("--vocab", type=int, default=6000)
    ap.add_argument("--k", type=int, default=5, help="continuations per row (beam + 1)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.3, help="timing per form and round")
    args = ap.parse_args(argv)
    x = (3 * np.random.default_rng(0).standard_normal((args.rows, args.vocab))).astype(np.float32)
    sessions = forms(args.rows, args.vocab, args.k)
    outputs = {name: s.run(["values", "ids"], {"x": x}) for name, s in sessions.items()}
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(args.rounds):
        for name, session in sessions.items():
            calls, start = 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds:
                session.run(["values", "ids"], {"x": x})
                calls += 1
            times[name].append((time.perf_counter() - start) / calls * 1e3)
    values, ids = outputs["LogSoftmax + TopK"]
    print(f"{args.rows} rows x {args.vocab} words, k {args.k}, 1 thread")
    for name in sessions:
        got_values, got_ids = outputs[name]
        same = bool(np.array_equal(np.asarray(got_ids).reshape(ids.shape), ids))
        diff = "-" if name.startswith("TopK alone") else f"{np.abs(np.asarray(got_values).reshape(values.shape) - values).max():.1e}"
        print(f"| {name} | {statistics.median(times[name]):.3f} ms | same ids {same} | max diff {diff} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
