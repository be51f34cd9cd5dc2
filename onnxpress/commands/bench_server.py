"""`onnxpress bench-server URL`: load on a local server (open-loop Poisson and closed-loop clients);
latency vs load, the knee, throughput beside offline `predict` on the same texts and threads."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from onnxpress.errors import UserError

IDLE_GAP_MAX_S = 0.1


def _rates(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"rates must be positive, got {text!r}")
    return values


def _counts(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"client counts must be >= 1, got {text!r}")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench-server", help="load test of a local server: latency percentiles vs offered load, the knee",
        description="Sends requests at Poisson arrival times (open loop) at each rate, then (--closed) from N "
                    "clients back to back, bounded in count and time, to a loopback URL only; reports "
                    "throughput, p50/p90/p99, errors and its own CPU share per point, the knee, and (--artifact) "
                    "offline predict throughput on the same texts and threads.")
    p.add_argument("url", help="endpoint on this machine, e.g. http://127.0.0.1:8000/v1/classify or "
                               "http://127.0.0.1:8000/v2/models/clf/infer")
    p.add_argument("--rates", type=_rates, default=[5, 10, 20, 40, 80, 160],
                   help="offered requests/s, comma-separated (default 5,10,20,40,80,160)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per rate (default 10)")
    p.add_argument("--max-requests", type=int, default=2000, help="requests per rate at most (default 2000)")
    p.add_argument("--max-total", type=float, default=300.0, help="stop starting new rates after this many s")
    p.add_argument("--max-in-flight", type=int, default=256, help="outstanding requests at most (default 256)")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, s")
    p.add_argument("--data", default="ag_news", help="texts to send: ag_news | multi30k | FILE")
    p.add_argument("--texts-per-request", type=int, default=1)
    p.add_argument("--key", default="texts", help='JSON body key: {"KEY": [text, ...]} (default texts)')
    p.add_argument("--protocol", choices=["auto", "v1", "v2"], default="auto",
                   help="request bodies: v1 JSON or KServe v2 (auto: v2 when the URL path starts with /v2/)")
    p.add_argument("--closed", type=_counts, default=[], metavar="N,N,...",
                   help="also run closed-loop clients at these concurrencies (e.g. 1,8,32)")
    p.add_argument("--artifact", default=None, help="classifier artifact: measure offline predict as the reference")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the offline reference")
    p.add_argument("--workers", default="auto", metavar="N|auto",
                   help="parallel batches of the offline reference (Classifier.load(workers=...); default auto)")
    p.add_argument("--knee-p99-ms", type=float, default=100.0, help="the knee: first rate whose p99 exceeds this")
    p.add_argument("--api-key", default=None, help="bearer token for a server started with --api-key")
    p.add_argument("--all-rates", action="store_true", help="keep going after the knee")
    p.add_argument("--out", type=Path, default=None, help="directory for server_results.json/.md")
    p.set_defaults(func=run)


def offline_reference(artifact: str, texts: list[str], threads: int | None, max_seconds: float = 10.0,
                      workers: int | str = "auto", idle_gap_s: float = 0.0) -> dict:
    """Offline `Classifier.predict` on `texts` (one call) and batch-1 latency, in this process: back to
    back and, with `idle_gap_s`, after that much idle time before each call (as a lone request meets
    an idle server in the open loop: on many machines caches and clocks cool within milliseconds)."""
    import time

    import numpy as np

    from onnxpress.runtime import Classifier

    clf = Classifier.load(artifact, threads=threads, workers=workers)
    clf.predict(texts[:64])  # warm-up
    start = time.perf_counter()
    clf.predict(texts)
    texts_per_s = len(texts) / (time.perf_counter() - start)

    def batch1_p50_ms(gap_s: float, seconds: float) -> float:
        singles, stop = [], time.perf_counter() + seconds
        for text in texts[:500]:
            if gap_s:
                time.sleep(gap_s)
            t0 = time.perf_counter()
            clf.predict([text])
            singles.append(time.perf_counter() - t0)
            if t0 > stop:
                break
        return float(np.median(singles) * 1e3)

    reference = {"artifact": artifact, "threads": threads, "texts": len(texts), "texts_per_s": texts_per_s,
                 "batch1_p50_ms": batch1_p50_ms(0.0, max_seconds / 2)}
    if idle_gap_s > 0:
        reference.update(idle_gap_ms=idle_gap_s * 1e3, batch1_idle_p50_ms=batch1_p50_ms(idle_gap_s, max_seconds / 2))
    return reference


def run(args: argparse.Namespace) -> int:
    from urllib.parse import urlsplit

    from onnxpress.benchmarks import loadgen
    from onnxpress.benchmarks.texts import load_texts

    loadgen.check_loopback(args.url)
    if args.duration <= 0 or args.max_requests < 1 or args.max_in_flight < 1 or args.texts_per_request < 1:
        raise UserError("--duration, --max-requests, --max-in-flight and --texts-per-request must be positive")
    texts = load_texts(args.data).texts
    v2 = args.protocol == "v2" or (args.protocol == "auto" and urlsplit(args.url).path.startswith("/v2/"))
    body = (loadgen.v2_body(texts, args.texts_per_request) if v2
            else loadgen.json_body(texts, args.key, args.texts_per_request))
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
    # the lowest rate's mean gap between arrivals (at most 100 ms): what a lone request finds there
    idle_gap_s = min(1.0 / min(args.rates), IDLE_GAP_MAX_S)
    offline = (offline_reference(args.artifact, texts, args.threads, workers=args.workers, idle_gap_s=idle_gap_s)
               if args.artifact else None)

    def progress(p: loadgen.LoadPoint) -> None:
        lat = p.latency
        print(f"offered {p.offered_rps:g}/s: achieved {p.achieved_rps:.1f}/s, "
              f"p50 {lat.get('p50_ms', float('nan')):.1f} ms, p99 {lat.get('p99_ms', float('nan')):.1f} ms, "
              f"errors {p.errors}, skipped {p.skipped}", file=sys.stderr, flush=True)

    result = loadgen.sweep(args.url, args.rates, body, max_requests=args.max_requests, max_seconds=args.duration,
                           max_total_seconds=args.max_total, timeout_s=args.timeout,
                           max_in_flight=args.max_in_flight, stop_after_knee=not args.all_rates, progress=progress,
                           knee_p99_ms=args.knee_p99_ms, headers=headers)
    closed = [loadgen.run_closed(args.url, n, body, max_requests=args.max_requests * 10, max_seconds=args.duration,
                                 timeout_s=args.timeout, headers=headers) for n in args.closed]
    # measured again once the server is idle: a host whose speed drifts moves both sides of the ratio
    offline_after = (offline_reference(args.artifact, texts, args.threads, workers=args.workers,
                                       idle_gap_s=idle_gap_s) if args.artifact else None)
    result.update(protocol="v2" if v2 else "v1", texts_per_request=args.texts_per_request, offline=offline,
                  offline_after=offline_after, closed=[asdict(p) for p in closed])
    if all(p["completed"] == 0 for p in result["points"] + result["closed"]):
        example = next((e for p in result["points"] + result["closed"] for e in p["error_examples"]), "no response")
        raise UserError(f"no request to {args.url} succeeded ({example})")
    text = loadgen.markdown(result)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "server_results.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "server_results.md").write_text(text)
    return 0
