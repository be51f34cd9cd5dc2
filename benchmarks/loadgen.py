"""Load generator for a local onnxpress server: latency vs offered load, the knee, closed-loop throughput.

Open loop (`sweep`): requests are sent at Poisson arrival times whether or not earlier ones came
back (a closed loop - send, wait, send - slows down with the server and hides its queueing). Each
latency is measured from the request's *scheduled* arrival time, so time a request spent
waiting for a free client worker counts too (no coordinated omission).

Closed loop (`run_closed`): N clients send back to back; the throughput the server reaches at that
concurrency. Both report the load generator's own CPU share, since it runs on the same machine.

Bounded by design: a request count and a duration per rate, a cap on requests in flight, and
only loopback URLs (127.0.0.0/8, ::1, localhost): this is a benchmark for your own machine, not a
tool to point at someone else's service.
"""
from __future__ import annotations

import http.client
import ipaddress
import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

import numpy as np

from onnxpress.errors import UserError

# The knee: the first offered rate the server no longer serves well.
KNEE_P99_MS = 100.0  # p99 over 100 ms
KNEE_ACHIEVED_FRACTION = 0.9  # or achieved < 90% of offered
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
    client_cpu_share: float = 0.0  # the load generator's CPU time / (wall time x cores)


@dataclass
class ClosedPoint:
    concurrency: int
    sent: int
    completed: int
    errors: int
    duration_s: float
    achieved_rps: float
    latency: dict[str, float] = field(default_factory=dict)
    error_examples: list[str] = field(default_factory=list)
    client_cpu_share: float = 0.0


class _Client(threading.local):
    conn: http.client.HTTPConnection | None = None


class _Poster:
    """POSTs bodies over one kept-alive connection per thread; records latencies and errors."""

    def __init__(self, url: str, body: Callable[[int], bytes], timeout_s: float, headers: dict[str, str] | None):
        self.host, self.port, self.path = check_loopback(url)
        self.body, self.timeout_s = body, timeout_s
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.client = _Client()
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def post(self, i: int, since: float) -> None:
        """Send request i; its latency counts from `since` (perf_counter)."""
        client = self.client
        try:
            for attempt in (0, 1):  # one reconnect: a kept-alive connection may have been closed
                if client.conn is None:
                    client.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
                try:
                    client.conn.request("POST", self.path, body=self.body(i), headers=self.headers)
                    resp = client.conn.getresponse()
                    payload = resp.read()
                    break
                except (ConnectionError, http.client.HTTPException, OSError):
                    client.conn.close()
                    client.conn = None
                    if attempt:
                        raise
            done = time.perf_counter()
            with self.lock:
                if 200 <= resp.status < 300:
                    self.latencies.append(done - since)
                else:
                    self.errors.append(f"HTTP {resp.status}: {payload[:100]!r}")
        except Exception as exc:  # noqa: BLE001 - every failure is a data point
            with self.lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def percentiles(self) -> dict[str, float]:
        if not self.latencies:
            return {}
        arr = np.asarray(self.latencies) * 1e3
        return {"p50_ms": float(np.percentile(arr, 50)), "p90_ms": float(np.percentile(arr, 90)),
                "p99_ms": float(np.percentile(arr, 99)), "mean_ms": float(arr.mean()), "max_ms": float(arr.max())}


def cpu_share(cpu_seconds: float, wall_seconds: float) -> float:
    """This process's CPU time as a fraction of the whole machine over `wall_seconds`."""
    return cpu_seconds / max(wall_seconds, 1e-9) / (os.cpu_count() or 1)


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
    poster = _Poster(url, body, timeout_s, headers)
    arrivals = poisson_arrivals(rate, max_requests, max_seconds, seed)
    in_flight = [0]

    def send(i: int, scheduled: float) -> None:
        try:
            poster.post(i, scheduled)
        finally:
            with poster.lock:
                in_flight[0] -= 1

    sent = skipped = 0
    futures = []
    cpu0 = time.process_time()
    with ThreadPoolExecutor(max_workers=max_in_flight) as pool:
        start = time.perf_counter()
        for i, offset in enumerate(arrivals):
            scheduled = start + float(offset)
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            with poster.lock:
                if in_flight[0] >= max_in_flight:
                    skipped += 1
                    continue
                in_flight[0] += 1
            futures.append(pool.submit(send, i, scheduled))
            sent += 1
        wait(futures, timeout=timeout_s + 5)
        duration = time.perf_counter() - start
    completed = len(poster.latencies)
    return LoadPoint(offered_rps=rate, scheduled=len(arrivals), sent=sent, completed=completed,
                     errors=len(poster.errors), skipped=skipped, duration_s=duration,
                     achieved_rps=completed / duration if duration > 0 else 0.0, latency=poster.percentiles(),
                     error_examples=sorted(set(poster.errors))[:3],
                     client_cpu_share=cpu_share(time.process_time() - cpu0, duration))


def run_closed(url: str, concurrency: int, body: Callable[[int], bytes], *, max_requests: int = 20000,
               max_seconds: float = 10.0, timeout_s: float = 30.0,
               headers: dict[str, str] | None = None) -> ClosedPoint:
    """`concurrency` clients each send, wait, send again until the time or request budget is spent."""
    if concurrency < 1:
        raise UserError(f"concurrency must be >= 1 (got {concurrency})")
    poster = _Poster(url, body, timeout_s, headers)
    counter = iter(range(max_requests))
    start = time.perf_counter()
    stop = start + max_seconds

    def client() -> None:
        while time.perf_counter() < stop:
            with poster.lock:
                i = next(counter, None)
            if i is None:
                return
            poster.post(i, time.perf_counter())

    cpu0 = time.process_time()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max_seconds + timeout_s + 5)
    duration = time.perf_counter() - start
    completed = len(poster.latencies)
    return ClosedPoint(concurrency=concurrency, sent=completed + len(poster.errors), completed=completed,
                       errors=len(poster.errors), duration_s=duration,
                       achieved_rps=completed / duration if duration > 0 else 0.0, latency=poster.percentiles(),
                       error_examples=sorted(set(poster.errors))[:3],
                       client_cpu_share=cpu_share(time.process_time() - cpu0, duration))


def find_knee(points: Sequence[LoadPoint], p99_ms: float = KNEE_P99_MS) -> dict[str, Any]:
    """The first offered rate the server does not serve well, and the highest one it does."""
    ordered = sorted(points, key=lambda p: p.offered_rps)
    knee = sustained = None
    reason = None
    for p in ordered:
        attempted = max(p.sent + p.skipped, 1)
        why = None
        if (p.errors + p.skipped) / attempted > KNEE_ERROR_RATE:
            why = f"{p.errors} errors, {p.skipped} skipped of {attempted}"
        elif p.achieved_rps < KNEE_ACHIEVED_FRACTION * min(p.offered_rps, p.scheduled / max(p.duration_s, 1e-9)):
            why = f"achieved {p.achieved_rps:.1f}/s of {p.offered_rps:.1f}/s offered"
        elif p.latency and p.latency["p99_ms"] > p99_ms:
            why = f"p99 {p.latency['p99_ms']:.1f} ms > {p99_ms:g} ms"
        if why:
            knee, reason = p.offered_rps, why
            break
        sustained = p.offered_rps
    return {"knee_rps": knee, "max_sustained_rps": sustained, "reason": reason,
            "rule": (f"first rate with p99 > {p99_ms:g} ms, achieved < {KNEE_ACHIEVED_FRACTION:.0%} of offered, "
                     f"or > {KNEE_ERROR_RATE:.0%} errors/skips")}


def json_body(texts: Sequence[str], key: str = "texts", per_request: int = 1) -> Callable[[int], bytes]:
    """Request i carries `per_request` texts (cycling through `texts`) as {key: [...]}."""
    if not texts:
        raise UserError("no texts to send")

    def body(i: int) -> bytes:
        start = i * per_request
        chunk = [texts[(start + j) % len(texts)] for j in range(per_request)]
        return json.dumps({key: chunk}).encode()

    return body


def v2_body(texts: Sequence[str], per_request: int = 1, input_name: str = "text") -> Callable[[int], bytes]:
    """Request i as a KServe v2 JSON body: one BYTES input of `per_request` texts."""
    if not texts:
        raise UserError("no texts to send")

    def body(i: int) -> bytes:
        start = i * per_request
        chunk = [texts[(start + j) % len(texts)] for j in range(per_request)]
        return json.dumps({"inputs": [{"name": input_name, "datatype": "BYTES", "shape": [len(chunk)],
                                       "data": chunk}]}).encode()

    return body


def sweep(url: str, rates: Sequence[float], body: Callable[[int], bytes], *, max_requests: int = 2000,
          max_seconds: float = 10.0, max_total_seconds: float = 300.0, timeout_s: float = 30.0,
          max_in_flight: int = 256, pause_s: float = 1.0, stop_after_knee: bool = True,
          progress: Callable[[LoadPoint], None] | None = None, knee_p99_ms: float = KNEE_P99_MS,
          headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Run each rate in increasing order (stopping after the knee); returns points and knee."""
    check_loopback(url)
    points: list[LoadPoint] = []
    t0 = time.perf_counter()
    for k, rate in enumerate(sorted(rates)):
        if time.perf_counter() - t0 > max_total_seconds:
            break
        point = run_rate(url, rate, body, max_requests=max_requests, max_seconds=max_seconds,
                         timeout_s=timeout_s, max_in_flight=max_in_flight, seed=k, headers=headers)
        points.append(point)
        if progress:
            progress(point)
        if stop_after_knee and find_knee(points, knee_p99_ms)["knee_rps"] is not None:
            break
        time.sleep(pause_s)  # let the server drain before the next rate
    return {"url": url, "points": [asdict(p) for p in points], "knee": find_knee(points, knee_p99_ms),
            "duration_s": time.perf_counter() - t0,
            "median_p50_ms": statistics.median([p.latency["p50_ms"] for p in points if p.latency])
            if any(p.latency for p in points) else None}


def _ms(latency: dict[str, float], key: str) -> str:
    return f"{latency[key]:.1f}" if key in latency else "-"


def markdown(result: dict[str, Any]) -> str:
    """The open-loop sweep (and, when present, closed-loop points and the offline reference) as tables."""
    per = result.get("texts_per_request", 1)
    offline = result.get("offline")
    lines = [f"# onnxpress bench-server: {result['url']}", ""]
    if offline:
        lines += [f"Offline `predict` on the same texts and threads ({offline['threads']}): "
                  f"{offline['texts_per_s']:.0f} texts/s; batch-1 p50 {offline['batch1_p50_ms']:.2f} ms.", ""]
    lines += ["Open loop (Poisson arrivals):", "",
              "| offered req/s | sent | completed | errors | skipped | achieved req/s | p50 ms | p90 ms | p99 ms "
              "| loadgen CPU |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for p in result["points"]:
        lat = p["latency"]
        lines.append(f"| {p['offered_rps']:g} | {p['sent']} | {p['completed']} | {p['errors']} | {p['skipped']} | "
                     f"{p['achieved_rps']:.1f} | {_ms(lat, 'p50_ms')} | {_ms(lat, 'p90_ms')} | {_ms(lat, 'p99_ms')} | "
                     f"{p.get('client_cpu_share', 0.0):.0%} |")
    knee = result["knee"]
    lines += ["", f"Knee: {knee['knee_rps']} req/s ({knee['reason']}); highest sustained: "
              f"{knee['max_sustained_rps']} req/s. Rule: {knee['rule']}.", ""]
    if result.get("closed"):
        lines += ["Closed loop (each client sends, waits, sends):", "",
                  "| clients | completed | errors | req/s | texts/s | of offline | p50 ms | p90 ms | p99 ms "
                  "| loadgen CPU |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for p in result["closed"]:
            lat, texts_s = p["latency"], p["achieved_rps"] * per
            share = f"{texts_s / offline['texts_per_s']:.0%}" if offline else "-"
            lines.append(f"| {p['concurrency']} | {p['completed']} | {p['errors']} | {p['achieved_rps']:.1f} | "
                         f"{texts_s:.0f} | {share} | {_ms(lat, 'p50_ms')} | {_ms(lat, 'p90_ms')} | "
                         f"{_ms(lat, 'p99_ms')} | {p['client_cpu_share']:.0%} |")
        lines.append("")
    return "\n".join(lines)
