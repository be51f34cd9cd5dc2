"""`onnxpress bench-server URL`: open-loop Poisson load on a local server; latency vs load, the knee."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from onnxpress.errors import UserError


def _rates(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"rates must be positive, got {text!r}")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench-server", help="open-loop load test of a local server: latency percentiles vs offered load",
        description="Sends requests at Poisson arrival times (open loop) at each rate, bounded in count and "
                    "time, to a loopback URL only; reports p50/p90/p99 per rate and the knee.")
    p.add_argument("url", help="endpoint on this machine, e.g. http://127.0.0.1:8000/v1/classify")
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
    p.add_argument("--all-rates", action="store_true", help="keep going after the knee")
    p.add_argument("--out", type=Path, default=None, help="directory for server_results.json/.md")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from onnxpress.benchmarks import loadgen
    from onnxpress.benchmarks.texts import load_texts

    loadgen.check_loopback(args.url)
    if args.duration <= 0 or args.max_requests < 1 or args.max_in_flight < 1 or args.texts_per_request < 1:
        raise UserError("--duration, --max-requests, --max-in-flight and --texts-per-request must be positive")
    texts = load_texts(args.data).texts
    body = loadgen.json_body(texts, args.key, args.texts_per_request)

    def progress(p: loadgen.LoadPoint) -> None:
        lat = p.latency
        print(f"offered {p.offered_rps:g}/s: achieved {p.achieved_rps:.1f}/s, "
              f"p50 {lat.get('p50_ms', float('nan')):.1f} ms, p99 {lat.get('p99_ms', float('nan')):.1f} ms, "
              f"errors {p.errors}, skipped {p.skipped}", file=sys.stderr, flush=True)

    result = loadgen.sweep(args.url, args.rates, body, max_requests=args.max_requests, max_seconds=args.duration,
                           max_total_seconds=args.max_total, timeout_s=args.timeout,
                           max_in_flight=args.max_in_flight, stop_after_knee=not args.all_rates, progress=progress)
    if result["points"] and all(p["completed"] == 0 for p in result["points"]):
        example = next((e for p in result["points"] for e in p["error_examples"]), "no response")
        raise UserError(f"no request to {args.url} succeeded ({example})")
    text = loadgen.markdown(result)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "server_results.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "server_results.md").write_text(text)
    return 0
