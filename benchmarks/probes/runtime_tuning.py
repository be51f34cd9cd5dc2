"""Tune the runtime's batching/session defaults on AG News test (7,600 texts, tokenization included).

    python -m onnxpress.benchmarks.probes.runtime_tuning ARTIFACT [--rounds 2] [--threads 2]
        [--compare OTHER_ARTIFACT ...]

Every configuration is a fresh `Classifier` timed on the full list through `predict` (one call),
configurations interleaved round by round; prints texts/s (median over rounds) and the
process RSS after each run. `--compare` runs every configuration on other builds of the same
model too (an export change against the build before it), interleaved, and prints how far their
probabilities are from the first artifact's. Owned by the runtime (issue 4); the comparison with PyTorch and
Optimum is the benchmark harness's job.
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

CONFIGS = {
    "tok1024-b64": dict(max_batch_tokens=1024, max_batch_size=64),
    "tok2048-b64": dict(max_batch_tokens=2048, max_batch_size=64),
    "tok4096-b64": dict(max_batch_tokens=4096, max_batch_size=64),
    "tok8192-b128": dict(max_batch_tokens=8192, max_batch_size=128),
    "tok512-b64": dict(max_batch_tokens=512, max_batch_size=64),
    "tok384-b64": dict(max_batch_tokens=384, max_batch_size=64),
    "tok256-b64": dict(max_batch_tokens=256, max_batch_size=64),
    # one batch at a time on every thread vs one batch per thread (parallel_runs.split_threads)
    "tok512-b64-1x2": dict(max_batch_tokens=512, max_batch_size=64, workers=1),
    "tok512-b64-2x1": dict(max_batch_tokens=512, max_batch_size=64, workers=2),
    "tok2048-b16": dict(max_batch_tokens=2048, max_batch_size=16),
    "tok2048-b64-noarena": dict(max_batch_tokens=2048, max_batch_size=64, mem_arena=False),
    "tok2048-b64-nospin": dict(max_batch_tokens=2048, max_batch_size=64,
                               session_config={"session.intra_op.allow_spinning": "0"}),
}


def main() -> None:
    import numpy as np
    import psutil

    from onnxpress.benchmarks.texts import load_texts
    from onnxpress.runtime import Classifier
    from onnxpress.runtime.token_budget import padding_ratio

    ap = argparse.ArgumentParser()
    ap.add_argument("artifact")
    ap.add_argument("--variant", default="int8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="config names to run")
    ap.add_argument("--limit", type=int, default=None, help="first N texts only (quick look)")
    ap.add_argument("--data", default="ag_news", help="ag_news (its test split), a CSV or a text file")
    ap.add_argument("--compare", nargs="*", default=[], help="other artifacts of the same model, run alike")
    args = ap.parse_args()
    data = load_texts(args.data).head(args.limit)
    texts, labels = data.texts, data.labels
    proc = psutil.Process()
    configs = args.only or list(CONFIGS)
    artifacts = [args.artifact, *args.compare]
    runs = [(artifact, config) for config in configs for artifact in artifacts]
    name_of = {run: run[1] if not args.compare else f"{run[0]}:{run[1]}" for run in runs}
    rates: dict[str, list[float]] = {name_of[run]: [] for run in runs}
    reference: dict[str, np.ndarray] = {}  # per config, the first artifact's probabilities
    for rnd in range(args.rounds):
        for artifact, config in runs:
            name = name_of[(artifact, config)]
            clf = Classifier.load(artifact, variant=args.variant, threads=args.threads, **CONFIGS[config])
            clf.predict(texts[:64])  # warm-up
            start, cpu = time.perf_counter(), time.process_time()
            probs = clf.predict_proba(texts)
            seconds = time.perf_counter() - start
            cpu = time.process_time() - cpu
            rates[name].append(len(texts) / seconds)
            reference.setdefault(config, probs)
            preds = [clf.labels[k] for k in probs.argmax(axis=1)]
            enc = clf.encode(texts)
            pad = padding_ratio(clf.budget.plan(enc.lengths), enc.lengths)
            acc = sum(p == y for p, y in zip(preds, labels)) / len(labels) if labels else None
            print(json.dumps({"round": rnd, "config": name, "texts_per_s": round(len(texts) / seconds, 1),
                              "cpu_ms_per_text": round(1000 * cpu / len(texts), 2),
                              "rss_mib": round(proc.memory_info().rss / 2**20), "padding": round(pad, 4),
                              "accuracy": None if acc is None else round(acc, 4),
                              "max_abs_dprob_vs_first": float(np.abs(probs - reference[config]).max())}), flush=True)
            del clf
            gc.collect()
    print("median texts/s:", {n: round(statistics.median(r), 1) for n, r in rates.items()})


if __name__ == "__main__":
    main()
