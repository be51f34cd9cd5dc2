"""Cold start and peak memory of one contender, measured in a fresh process.

In one process, resident memory mixes every contender loaded so far (and torch's allocator
never gives pages back), so each contender gets its own child:

    python -m onnxpress.benchmarks.probe SPEC_JSON --threads N --texts FILE [--workload N]
        [--stream FILE] [--invariance N]

The child loads the contender, makes one prediction (cold start ends there), records
ru_maxrss, then predicts a workload of texts its own way and records ru_maxrss again. With
`--stream` it then scores every text of FILE its best way (the isolated throughput run: no
other contender's threads in the process) and with `--invariance N` it checks the first N of
them batched against one at a time. It prints one JSON line. `cold_start` in the parent runs these children one after another and
measures from just before spawning to the child's first prediction, interpreter start and
imports included: what a user waits for when their app or job starts.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence


def _maxrss_mib() -> float:
    """Peak resident set of this process so far, MiB.

    VmHWM belongs to the process's own address space, which exec replaces. ru_maxrss does
    not do here: Linux carries it over fork+exec, so a child of a 1.4 GB parent would report
    at least 1.4 GB whatever it did itself.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def child_main(argv: Sequence[str] | None = None) -> int:
    t_main = time.time()
    parser = argparse.ArgumentParser(prog="onnxpress.benchmarks.probe")
    parser.add_argument("spec")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--texts", required=True, help="file with one text per line")
    parser.add_argument("--workload", type=int, default=0, help="texts to predict after the first")
    parser.add_argument("--stream", default=None, help="file of texts to score, timed (throughput)")
    parser.add_argument("--invariance", type=int, default=0, help="batch-invariance check on N stream texts")
    parser.add_argument("--first-pass", action="store_true",
                        help="score the stream once before the timed pass (timed apart: first_pass_s)")
    args = parser.parse_args(argv)
    texts = Path(args.texts).read_text(encoding="utf-8").splitlines()

    from onnxpress.benchmarks.contenders.registry import from_spec

    contender = from_spec(json.loads(args.spec))
    t_import = time.time()
    contender.load(args.threads)
    t_loaded = time.time()
    first = contender.predict_texts(texts[:1])
    t_first = time.time()
    rss_first = _maxrss_mib()
    workload = texts[1:1 + args.workload]
    t0 = time.perf_counter()
    if workload:
        contender.predict_stream(workload)
    workload_s = time.perf_counter() - t0
    report: dict[str, Any] = {"peak_rss_mib": _maxrss_mib()}
    if args.stream:
        report.update(_stream(contender, Path(args.stream), args.invariance, args.first_pass))
    print(json.dumps({
        "t_main": t_main, "t_import": t_import, "t_loaded": t_loaded, "t_first": t_first,
        "first_label": first[0] if first else None,
        "rss_after_first_mib": rss_first, **report,
        "workload_texts": len(workload), "workload_s": workload_s,
        "threads": contender.threads(),
        "torch_imported": "torch" in sys.modules, "modules_loaded": len(sys.modules),
    }), flush=True)
    return 0


def _stream(contender: Any, path: Path, invariance: int, first_pass: bool = False) -> dict[str, Any]:
    """Score every text of `path` the contender's best way (timed), then the invariance check.

    With `first_pass`, the texts are scored once before the timed pass: a runtime that compiles
    kernels per new input shape (OpenVINO's CPU plugin does) pays that on the first pass only, which
    a long-running job or server pays once. Both times are reported."""
    from onnxpress.benchmarks.invariance import batch_invariance
    from onnxpress.benchmarks.sections.common import gpu_memory_mib

    texts = path.read_text(encoding="utf-8").split("\n")[:-1]
    first: dict[str, Any] = {}
    if first_pass:
        t0 = time.perf_counter()
        contender.stream_proba(texts)
        first["first_pass_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    probs = contender.stream_proba(texts)
    seconds = time.perf_counter() - t0
    labels = contender.labels()
    out: dict[str, Any] = {**first, "stream_s": seconds, "stream_texts": len(texts),
                           "stream_labels": [labels[int(k)] for k in probs.argmax(axis=1)],
                           "peak_rss_stream_mib": _maxrss_mib(), "gpu_memory_mib": gpu_memory_mib(contender)}
    if invariance:
        out["invariance"] = batch_invariance(contender.proba, texts[:invariance])
    return out


def run_probe(spec: dict[str, Any], threads: int, texts_file: Path, workload: int = 0,
              timeout_s: float = 1200, nice: int = 0, stream: Path | None = None,
              invariance: int = 0, first_pass: bool = False) -> dict[str, Any]:
    """Spawn one child for `spec`; return its report plus the parent-side cold start."""
    cmd = [sys.executable, "-m", "onnxpress.benchmarks.probe", json.dumps(spec), "--threads", str(threads),
           "--texts", str(texts_file), "--workload", str(workload)]
    if stream is not None:
        cmd += ["--stream", str(stream), "--invariance", str(invariance)] + (["--first-pass"] if first_pass else [])
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    t_spawn = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env,
                              preexec_fn=(lambda: os.nice(nice)) if nice else None)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout_s:.0f}s"}
    t_exit = time.time()
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    rep = json.loads(lines[-1])
    return {
        "cold_start_s": rep["t_first"] - t_spawn,  # spawn -> first prediction returned
        "interpreter_s": rep["t_main"] - t_spawn,
        "import_s": rep["t_import"] - rep["t_main"],
        "load_s": rep["t_loaded"] - rep["t_import"],
        "first_prediction_s": rep["t_first"] - rep["t_loaded"],
        "process_wall_s": t_exit - t_spawn,
        **{k: rep[k] for k in ("rss_after_first_mib", "peak_rss_mib", "workload_texts", "workload_s",
                               "threads", "torch_imported", "modules_loaded", "first_label")},
        **{k: rep[k] for k in ("first_pass_s", "stream_s", "stream_texts", "stream_labels", "peak_rss_stream_mib",
                               "gpu_memory_mib", "invariance")
           if k in rep},
    }


if __name__ == "__main__":
    raise SystemExit(child_main())
