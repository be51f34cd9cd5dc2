"""Open-loop load generator for a local onnxpress server: latency vs offered load, and the knee.

Open loop: requests are sent at Poisson arrival times whether or not earlier ones came back
(a closed loop - send, wait, send - slows down with the server and hides its queueing). Each
latency is measured from the request's *scheduled* arrival time, so time a request spent
waiting for a free client worker counts too (no coordinated omission).

Bounded by design: a request count and a duration per rate, a cap on requests in flight, and
only loopback URLs (127.0.0.0/8, ::1, localhost): this is a benchmark for your own machine, not a
tool to point at someone else's service.
"""
from __future__ import annotations

import http.client
import ipaddress
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

import numpy as np

from onnxpress.errors import UserError

# The knee: the first offered rate the server no longer keeps up with.
KNEE_ACHIEVED_FRACTION = 0.9  # achieved < 90% of offered
KNEE_P99_FACTOR = 3.0  # or p99 > 3x the p99 at the lowest rate
KNEE_ERROR_RATE = 0.01  # or more than 1% errors


def check_loopback(url: str) -> tuple[str, int, str]:
    """(host, port, path) of an http:// URL on this machine; UserError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise UserError(f"bench-server needs an http:// URL on this machine, got {url!r}")
    host = parts.hostname or ""
    if host != "localhost":
        try:
            if not ipaddress.ip_address(host).is_loopback:
                raise ValueError
        except ValueError:
            raise UserError(f"bench-server only loads loopback addresses (127.0.0.1, ::1, localhost); "
                            f"refusing {host!r}") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return host, parts.port or 80, path


@dataclass
class LoadPoint:
    offered_rps: float
    scheduled: int
    sent: int
    completed: int
    errors: int
    skipped: int  # arrivals not sent because max_in_flight requests were outstanding
    duration_s: float
    achieved_rps: float
    latency: dict[str, float] = field(default_factory=dict)
    error_examples: list[str] = field(default_factory=list)


class _Client(threading.local):
    conn: http.client.HTTPConnection | None = None


def poisson_arrivals(rate: float, max_requests: int, max_seconds: float, seed: int = 0) -> np.ndarray:
    """Arrival offsets (s) of a Poisson process at `rate`/s, at most `max_requests`, before `max_seconds`."""
    if rate <= 0:
        raise UserError(f"rates must be positive (got {rate})")
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / rate, size=max_requests)
    times = np.cumsum(gaps) - gaps[0]  # the first request goes out at once
    return times[times < max_seconds]


def run_rate(url: str, rate: float, body: Callable[[int], bytes], *, max_requests: int = 2000,
             max_seconds: float = 10.0, timeout_s: float = 30.0, max_in_flight: int = 256,
             seed: int = 0, headers: dict[str, str] | None = None) -> LoadPoint:
    """Offer `rate` requests/s (Poisson) to `url` (POST `body(i)`) and measure every response."""
    host, port, path = check_loopback(url)
    headers = {"Content-Type": "application/json", **(headers or {})}
    arrivals = poisson_arrivals(rate, max_requests, max_seconds, seed)
    client = _Client()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    in_flight = [0]

    def send(i: int, scheduled: float) -> None:
        try:
            for attempt in (0, 1):  # one reconnect: a kept-alive connection may have been closed
                if client.conn is None:
                    client.conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
                try:
                    client.conn.request("POST", path, body=body(i), headers=headers)
                    resp = client.conn.getresponse()
                    payload = resp.read()
                    break
                except (ConnectionError, http.client.HTTPException, OSError):
                    client.conn.close()
                    client.conn = None
                    if attempt:
                        raise
            done = time.perf_counter()
            with lock:
                if 200 <= resp.status < 300:
                    latencies.append(done - scheduled)
                else:
                    errors.append(f"HTTP {resp.status}: {payload[:100]!r}")
        except Exception as exc:  # noqa: BLE001 - every failure is a data point
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            with lock:
                in_flight[0] -= 1

    sent = skipped = 0
    futures = []
    with ThreadPoolExecutor(max_workers=max_in_flight) as pool:
        start = time.perf_counter()
        for i, offset in enumerate(arrivals):
            scheduled = start + float(offset)
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            with lock:
                if in_flight[0] >= max_in_flight:
                    skipped += 1
                    continue
                in_flight[0] += 1
            futures.append(pool.submit(send, i, scheduled))
            sent += 1
        wait(futures, timeout=timeout_s + 5)
        duration = time.perf_counter() - start
    secs = sorted(latencies)
    lat: dict[str, float] = {}
    if secs:
        arr = np.asarray(secs) * 1e3
        lat = {"p50_ms": float(np.percentile(arr, 50)), "p90_ms": float(np.percentile(arr, 90)),
               "p99_ms": float(np.percentile(arr, 99)), "mean_ms": float(arr.mean()), "max_ms": float(arr.max())}
    return LoadPoint(offered_rps=rate, scheduled=len(arrivals), sent=sent, completed=len(secs),
                     errors=len(errors), skipped=skipped, duration_s=duration,
                     achieved_rps=len(secs) / duration if duration > 0 else 0.0, latency=lat,
                     error_examples=sorted(set(errors))[:3])


def find_knee(points: Sequence[LoadPoint]) -> dict[str, Any]:
    """The first offered rate the server does not sustain, and the highest one it does."""
    ordered = sorted(points, key=lambda p: p.offered_rps)
    base_p99 = next((p.latency["p99_ms"] for p in ordered if p.latency), None)
    knee = sustained = None
    reason = None
    for p in ordered:
        attempted = max(p.sent + p.skipped, 1)
        why = None
        if (p.errors + p.skipped) / attempted > KNEE_ERROR_RATE:
            why = f"{p.errors} errors, {p.skipped} skipped of {attempted}"
        elif p.achieved_rps < KNEE_ACHIEVED_FRACTION * min(p.offered_rps, p.scheduled / max(p.duration_s, 1e-9)):
            why = f"achieved {p.achieved_rps:.1f}/s of {p.offered_rps:.1f}/s offered"
        elif base_p99 and p.latency and p.latency["p99_ms"] > KNEE_P99_FACTOR * base_p99:
            why = f"p99 {p.latency['p99_ms']:.1f} ms > {KNEE_P99_FACTOR:g}x the {base_p99:.1f} ms at the lowest rate"
        if why:
            knee, reason = p.offered_rps, why
            break
        sustained = p.offered_rps
    return {"knee_rps": knee, "max_sustained_rps": sustained, "reason": reason,
            "rule": (f"first rate with achieved < {KNEE_ACHIEVED_FRACTION:.0%} of offered, p99 > "
                     f"{KNEE_P99_FACTOR:g}x the lowest rate's, or > {KNEE_ERROR_RATE:.0%} errors/skips")}


def json_body(texts: Sequence[str], key: str = "texts", per_request: int = 1) -> Callable[[int], bytes]:
    """Request i carries `per_request` texts (cycling through `texts`) as {key: [...]}."""
    if not texts:
        raise UserError("no texts to send")

    def body(i: int) -> bytes:
        start = i * per_request
        chunk = [texts[(start + j) % len(texts)] for j in range(per_request)]
        return json.dumps({key: chunk}).encode()

    return body


def sweep(url: str, rates: Sequence[float], body: Callable[[int], bytes], *, max_requests: int = 2000,
          max_seconds: float = 10.0, max_total_seconds: float = 300.0, timeout_s: float = 30.0,
          max_in_flight: int = 256, pause_s: float = 1.0, stop_after_knee: bool = True,
          progress: Callable[[LoadPoint], None] | None = None) -> dict[str, Any]:
    """Run each rate in increasing order (stopping after the knee); returns points and knee."""
    check_loopback(url)
    points: list[LoadPoint] = []
    t0 = time.perf_counter()
    for k, rate in enumerate(sorted(rates)):
        if time.perf_counter() - t0 > max_total_seconds:
            break
        point = run_rate(url, rate, body, max_requests=max_requests, max_seconds=max_seconds,
                         timeout_s=timeout_s, max_in_flight=max_in_flight, seed=k)
        points.append(point)
        if progress:
            progress(point)
        if stop_after_knee and find_knee(points)["knee_rps"] is not None:
            break
        time.sleep(pause_s)  # let the server drain before the next rate
    return {"url": url, "points": [asdict(p) for p in points], "knee": find_knee(points),
            "duration_s": time.perf_counter() - t0,
            "median_p50_ms": statistics.median([p.latency["p50_ms"] for p in points if p.latency])
            if any(p.latency for p in points) else None}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# onnxpress bench-server: {result['url']}", "",
             "| offered req/s | sent | completed | errors | skipped | achieved req/s | p50 ms | p90 ms | p99 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in result["points"]:
        lat = p["latency"]
        lines.append(f"| {p['offered_rps']:g} | {p['sent']} | {p['completed']} | {p['errors']} | {p['skipped']} | "
                     f"{p['achieved_rps']:.1f} | {lat.get('p50_ms', float('nan')):.1f} | "
                     f"{lat.get('p90_ms', float('nan')):.1f} | {lat.get('p99_ms', float('nan')):.1f} |")
    knee = result["knee"]
    lines += ["", f"Knee: {knee['knee_rps']} req/s ({knee['reason']}); highest sustained: "
              f"{knee['max_sustained_rps']} req/s. Rule: {knee['rule']}.", ""]
    return "\n".join(lines)
