"""Do the Optimum and CTranslate2 peers gain from parallel batches, as onnxpress does?

    python -m onnxpress.benchmarks.probes.peer_streams BENCH_OUT --checkpoint CKPT --artifact ART \\
        [--texts 3000] [--rounds 2]

For each peer already built by `onnxpress bench` (its cache under BENCH_OUT/cache), in a fresh
process per mode: length-sorted batches of 64, tokenization included, either one batch at a time
on 2 intra-op threads (how the harness runs them) or 2 batches at once on one thread each (Optimum:
a 1-thread session called from 2 threads; CTranslate2: `Encoder(inter_threads=2, intra_threads=1)`
called from 2 threads). Prints texts/s per round.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

MODES = ("one batch x 2 threads", "2 batches x 1 thread")


def child(spec: dict, mode: str, n: int, rounds: int) -> list[float]:
    from onnxpress.benchmarks.contenders.registry import from_spec
    from onnxpress.benchmarks.texts import load_texts

    texts = load_texts("ag_news").texts[:n]
    peer = from_spec(spec)
    parallel = mode == MODES[1]
    peer.load(1 if parallel else 2)
    if parallel and spec["kind"] == "ct2":
        import ctranslate2

        peer.encoder = ctranslate2.Encoder(str(peer.model_dir), device="cpu", compute_type="int8",
                                           intra_threads=1, inter_threads=2)
    pool = ThreadPoolExecutor(2) if parallel else None
    order = np.argsort(peer.token_lengths(texts), kind="stable")
    chunks = [order[i:i + 64] for i in range(0, len(texts), 64)]
    out = np.empty((len(texts), len(peer.labels())), np.float32)

    def one(rows: np.ndarray) -> None:
        out[rows] = peer.proba([texts[j] for j in rows])

    rates = []
    for _ in range(rounds + 1):  # the first pass builds per-shape kernels; not reported
        start = time.perf_counter()
        list(pool.map(one, chunks)) if pool else [one(rows) for rows in chunks]
        rates.append(len(texts) / (time.perf_counter() - start))
    return rates[1:]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bench_out", type=Path, help="an `onnxpress bench --out` folder whose cache holds the peers")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--artifact", required=True, help="the artifact benchmarked (its max_length)")
    ap.add_argument("--texts", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        spec, mode = json.loads(args.child)
        print(json.dumps(child(spec, mode, args.texts, args.rounds)))
        return
    from onnxpress.benchmarks.contenders.checkpoint_peer import checkpoint_key
    from onnxpress.runtime.artifact import Artifact

    max_length = Artifact.open(args.artifact).manifest.max_length
    cache = args.bench_out / "cache"
    key = checkpoint_key(Path(args.checkpoint).resolve())
    common = {"checkpoint": str(Path(args.checkpoint).resolve()), "max_length": max_length, "artifact": args.artifact,
              "cache_dir": str(cache), "key": key}
    for spec in ({"kind": "optimum", "quantize": True, **common}, {"kind": "ct2", **common}):
        for mode in MODES:
            cmd = [sys.executable, "-m", "onnxpress.benchmarks.probes.peer_streams", str(args.bench_out),
                   "--checkpoint", args.checkpoint, "--artifact", args.artifact,
                   "--texts", str(args.texts), "--rounds", str(args.rounds),
                   "--child", json.dumps([spec, mode])]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]
            result = [round(r, 1) for r in json.loads(lines[-1])] if lines else proc.stderr.strip()[-300:]
            print(f"{spec['kind']:8s} {mode:22s} texts/s per round: {result}", flush=True)


if __name__ == "__main__":
    main()
