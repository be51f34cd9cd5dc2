"""What Ray adds on one machine: the AG News test set scored by the local file job with 2 threads
and by the Ray file job with 2 actors x 1 thread, side by side, alternating, same chunks.

    python -m onnxpress.benchmarks.probes.ray_overhead artifacts/seed [--data ../shared/data] [--rounds 2]
           [--variant int8] [--chunk-rows 2048] [--single]

`--single` compares 1 local thread with 1 actor x 1 thread instead: the same compute, so the
difference is what Ray itself costs (actor start, object store, driver hand-off).

Both runs score the same file into parquet with the same chunking; the Ray run's output is
checked against the local one (labels equal, probabilities to 1e-6). Ray's start-up (`ray.init`)
is timed apart from the job; the job time includes starting the actors and loading the model in
each. Prints one JSON object per run and a summary line with the ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def ag_news_test(data: str | None) -> Path:
    root = Path(data or os.environ.get("ONNXPRESS_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
    path = root / "ag_news" / "test.csv"
    if not path.is_file():
        raise SystemExit(f"AG News test set not found: {path} (pass --data DIR)")
    return path


def same_scores(a: Path, b: Path) -> bool:
    import numpy as np
    import pyarrow.parquet as pq

    ta, tb = pq.read_table(a), pq.read_table(b)
    if ta.column_names != tb.column_names or ta.column("label").to_pylist() != tb.column("label").to_pylist():
        return False
    probs = [n for n in ta.column_names if n.startswith("prob_")]
    return all(np.allclose(ta.column(n).to_numpy(), tb.column(n).to_numpy(), atol=1e-6, rtol=0) for n in probs)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact")
    p.add_argument("--data", default=None)
    p.add_argument("--variant", default="int8")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--chunk-rows", type=int, default=2048)
    p.add_argument("--single", action="store_true", help="1 local thread vs 1 actor x 1 thread")
    args = p.parse_args(argv)

    from onnxpress.runtime.classifier import Classifier
    from onnxpress.runtime.jobs.ray import Workers, require_ray, score_file_on_ray
    from onnxpress.runtime.jobs.score import ScoreConfig, run_score

    ray = require_ray(local=True)  # a private Ray, on loopback
    source = ag_news_test(args.data)
    local_threads, actors = (1, 1) if args.single else (2, 2)
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray_start = time.perf_counter() - started
    times: dict[str, list[float]] = {"local": [], "ray": []}
    rows = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(args.rounds):
                for engine in ("local", "ray"):
                    out = Path(tmp) / f"{engine}.parquet"
                    config = ScoreConfig(input=source, output=out, text_columns=["1", "2"], header=False,
                                         probabilities=True, chunk_rows=args.chunk_rows, overwrite=True,
                                         progress=False)
                    t = time.perf_counter()
                    if engine == "local":
                        clf = Classifier.load(args.artifact, variant=args.variant, device="cpu", threads=local_threads)
                        summary = run_score(clf, config)
                    else:
                        summary = score_file_on_ray(args.artifact, config, Workers(workers=actors, threads=1,
                                                                                   variant=args.variant))
                    seconds = time.perf_counter() - t
                    times[engine].append(seconds)
                    rows = summary.rows
                    print(json.dumps({"round": round_, "engine": engine, "rows": summary.rows,
                                      "scored": summary.scored, "seconds": round(seconds, 2),
                                      "texts_per_s": round(summary.scored / seconds, 1)}), flush=True)
                equal = same_scores(Path(tmp) / "local.parquet", Path(tmp) / "ray.parquet")
                print(json.dumps({"round": round_, "ray_output_equals_local": equal}), flush=True)
    finally:
        ray.shutdown()
    local, on_ray = statistics.median(times["local"]), statistics.median(times["ray"])
    print(f"{rows} rows: local {local_threads} thread(s) {rows / local:.1f} texts/s ({local:.1f} s), "
          f"Ray {actors} actor(s) x 1 thread "
          f"{rows / on_ray:.1f} texts/s ({on_ray:.1f} s): Ray/local time {on_ray / local:.2f}x "
          f"(medians of {args.rounds}); ray.init {ray_start:.1f} s not included")


if __name__ == "__main__":
    main()
