"""Cold start and peak RSS of the torch-free runtime, each sample in a fresh process.

    python -m onnxpress.benchmarks.probes.cold_start ARTIFACT [--variant int8] [--threads 2] [--runs 5]
           [--ag-news]   # also predict the whole AG News test set, then report peak RSS

Cold start = wall time from spawning `python` to the first prediction being printed
(interpreter start, `import onnxpress.runtime`, sha256 checks, session creation,
tokenizer load, first `predict`). Peak RSS = the child's own ru_maxrss. Owned by the
runtime (issue 4); the benchmark harness has its own side-by-side cold-start contest.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import time, sys, json, resource
t0 = time.perf_counter()
from onnxpress.runtime import Classifier
t_import = time.perf_counter()
kw = json.loads(sys.argv[2])
clf = Classifier.load(sys.argv[1], **kw)
t_load = time.perf_counter()
pred = clf.predict(["Stocks rally as oil prices fall on hopes of a cease-fire in the Middle East."])
t_first = time.perf_counter()
print(json.dumps({"first": list(pred[0])}), flush=True)
extra = {}
if len(sys.argv) > 3:
    import csv
    with open(sys.argv[3], newline="", encoding="utf-8") as fh:
        texts = [f"{t} {d}".replace("\\", " ") for _, t, d in csv.reader(fh)][: int(sys.argv[4])]
    t = time.perf_counter()
    clf.predict(texts)
    extra = {"ag_news_texts_per_s": round(len(texts) / (time.perf_counter() - t), 1)}
mods = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers", "optimum"})
print(json.dumps({"import_s": t_import - t0, "load_s": t_load - t_import, "first_predict_s": t_first - t_load,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "heavy_modules": mods, **extra}))
"""


def sample(artifact: str, kwargs: dict, ag_news: str | None, limit: int = 10**9) -> dict:
    argv = [sys.executable, "-c", CHILD, artifact, json.dumps(kwargs)] + ([ag_news, str(limit)] if ag_news else [])
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    first = proc.stdout.readline()
    cold = time.perf_counter() - start
    rest = proc.stdout.read()  # not communicate(): it would skip what readline() buffered
    err = proc.stderr.read()
    proc.wait()
    if proc.returncode != 0 or not first:
        raise SystemExit(f"child failed: {err.strip()}")
    return {"cold_start_s": cold, **json.loads(rest.strip().splitlines()[-1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact")
    ap.add_argument("--variant", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-arena", action="store_true", help="load with mem_arena=False")
    ap.add_argument("--ag-news", action="store_true", help="then predict all AG News test texts (peak RSS under load)")
    ap.add_argument("--limit", type=int, default=10**9, help="with --ag-news: first N texts only")
    ap.add_argument("--max-batch-tokens", type=int, default=None)
    ap.add_argument("--data", default=os.environ.get("ONNXPRESS_DATA", "../shared/data"))
    args = ap.parse_args()
    kwargs = {"variant": args.variant, "threads": args.threads}
    if args.no_arena:
        kwargs["mem_arena"] = False
    if args.max_batch_tokens:
        kwargs["max_batch_tokens"] = args.max_batch_tokens
    ag = os.path.join(args.data, "ag_news", "test.csv") if args.ag_news else None
    runs = [sample(args.artifact, kwargs, ag, args.limit) for _ in range(args.runs)]
    for r in runs:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}))
    keys = [k for k in runs[0] if isinstance(runs[0][k], float)]
    print("median:", json.dumps({k: round(statistics.median(r[k] for r in runs), 3) for k in keys}))


if __name__ == "__main__":
    main()
