"""Per-operator time of one model on the same batches: ONNX Runtime (`enable_profiling`, with the
runtime's own session settings) and OpenVINO (`PERF_COUNT`), grouped by operator type.

    python -m onnxpress.benchmarks.op_profile ARTIFACT --variants int8,int8-dynamic \\
        [--openvino bench/cache/openvino-KEY/model.xml] [--texts 512] [--batch 64] [--threads 2]

Batches: the first `--texts` AG News test texts, length-sorted, `--batch` per batch, padded to the
longest (what the runtime's planner does with a larger budget). Prints one Markdown table per
model: op type, total ms, share, calls.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

Feeds = dict[str, np.ndarray]


def sorted_batches(artifact: Path, texts: Sequence[str], batch: int) -> list[Feeds]:
    """The artifact's own tokenization, length-sorted batches padded to their longest text."""
    from onnxpress.benchmarks.texts import SharedTokenizer
    from onnxpress.runtime.artifact import Artifact

    manifest = Artifact.open(artifact).manifest
    shared = SharedTokenizer(artifact / manifest.tokenizers["text"], manifest.max_length,
                             [t.name for t in manifest.inputs])
    order = np.argsort(shared.lengths(texts), kind="stable")
    return [shared.batch([texts[j] for j in order[i:i + batch]]).feeds for i in range(0, len(order), batch)]


def ort_profile(model: Path, batches: Sequence[Feeds], threads: int) -> dict[str, Any]:
    """Per-op-type time over one pass of `batches` (after a warm-up pass), from ORT's profiler."""
    import onnxruntime as ort

    from onnxpress.runtime.session_setup import disabled_optimizers, session_options

    so = session_options(threads)
    with tempfile.TemporaryDirectory(prefix="onnxpress-prof-") as tmp:
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "ort")
        providers = ["CPUExecutionProvider"]
        session = ort.InferenceSession(str(model), so, providers=providers,
                                       disabled_optimizers=disabled_optimizers(providers))
        names = {i.name for i in session.get_inputs()}
        run = [{k: v for k, v in f.items() if k in names} for f in batches]
        for feeds in run[:2]:  # warm-up, excluded below by its start time
            session.run(None, feeds)
        t_start = time.perf_counter()
        for feeds in run:
            session.run(None, feeds)
        wall = time.perf_counter() - t_start
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = [e for e in events if e.get("name") == "model_run"]
    mark = runs[-len(run)]["ts"] if len(runs) >= len(run) else 0
    by_op: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= mark:
            slot = by_op[e["args"].get("op_name", "?")]
            slot[0] += e["dur"] / 1e3
            slot[1] += 1
    return {"wall_ms": wall * 1e3, "ops": {k: {"ms": v[0], "calls": v[1]} for k, v in by_op.items()}}


def openvino_profile(model_xml: Path, batches: Sequence[Feeds], threads: int) -> dict[str, Any]:
    """Per-layer-type time (with the kernel implementation it ran) from OpenVINO's PERF_COUNT."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(model_xml), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True})
    request = compiled.create_infer_request()
    names = {p.get_any_name() for p in compiled.inputs}
    run = [{k: v for k, v in f.items() if k in names} for f in batches]
    for feeds in run[:2]:
        request.infer(feeds)
    by_op: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    t_start = time.perf_counter()
    for feeds in run:
        request.infer(feeds)
        for info in request.get_profiling_info():
            if info.status == info.Status.EXECUTED:
                slot = by_op[f"{info.node_type} [{info.exec_type}]"]
                slot[0] += info.real_time.total_seconds() * 1e3
                slot[1] += 1
    wall = time.perf_counter() - t_start
    return {"wall_ms": wall * 1e3, "precision": str(compiled.get_property("INFERENCE_PRECISION_HINT")),
            "ops": {k: {"ms": v[0], "calls": v[1]} for k, v in by_op.items()}}


def markdown(title: str, profile: dict[str, Any], top: int = 14) -> str:
    ops = sorted(profile["ops"].items(), key=lambda kv: -kv[1]["ms"])
    total = sum(v["ms"] for _, v in ops) or 1.0
    lines = [f"**{title}**: wall {profile['wall_ms']:.0f} ms, op time {total:.0f} ms", "",
             "| op | ms | share | calls |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['ms']:.1f} | {v['ms'] / total:.1%} | {v['calls']} |" for k, v in ops[:top]]
    rest = sum(v["ms"] for _, v in ops[top:])
    if rest:
        lines.append(f"| (other {len(ops) - top}) | {rest:.1f} | {rest / total:.1%} | |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from onnxpress.benchmarks.texts import load_texts
    from onnxpress.runtime.artifact import Artifact

    p = argparse.ArgumentParser(prog="python -m onnxpress.benchmarks.op_profile", description=__doc__.split("\n")[0])
    p.add_argument("artifact", type=Path)
    p.add_argument("--variants", default="int8", help="comma-separated artifact variants (default int8)")
    p.add_argument("--openvino", type=Path, default=None, help="an OpenVINO IR (model.xml) to profile too")
    p.add_argument("--data", default="ag_news")
    p.add_argument("--texts", type=int, default=512)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = p.parse_args(argv)
    texts = load_texts(args.data).texts[:args.texts]
    batches = sorted_batches(args.artifact, texts, args.batch)
    artifact = Artifact.open(args.artifact)
    for name in [v for v in args.variants.split(",") if v]:
        path = artifact.root / artifact.manifest.variants[name].files["model"]
        print(markdown(f"onnxpress {name} (ORT)", ort_profile(path, batches, args.threads)))
    if args.openvino:
        prof = openvino_profile(args.openvino, batches, args.threads)
        print(markdown(f"OpenVINO {args.openvino.parent.name} (inference precision {prof['precision']})", prof))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
