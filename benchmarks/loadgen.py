"""Load generator for a local onnxpress server: latency vs offered load, the knee, closed-loop throughput.

Open loop (`sweep`): requests are sent at Poisson arrival times whether or not earlier ones came
back (a closed loop - send, wait, send - slows down with the server and hides its queueing). Each
latency is measured from the request's *scheduled* arrival time, so a request the generator sent
late counts its delay too (no coordinated omission).

Closed loop (`run_closed`): N clients send back to back; the throughput the server reaches at that
concurrency. Both report the load generator's own CPU share, since it runs on the same machine;
both run on one event loop in one thread (uvloop when installed).

Bounded by design: a request count and a duration per rate, a cap on requests in flight, and
only loopback URLs (127.0.0.0/8, ::1, localhost): this is a benchmark for your own machine, not a
tool to point at someone else's service.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable, Sequence, TypeVar
from urllib.parse import urlsplit

import numpy as np

from onnxpress.errors import UserError

# The knee: the first offered rate the server no longer serves well.
KNEE_P99_MS = 100.0  # p99 over 100 ms
KNEE_ACHIEVED_FRACTION = 0.9  # or achieved < 90% of offered
KNEE_ERROR_RATE = 0.01  # or more than 1% errors
TIMER_SLACK_S = 0.0005  # the event loop's timers have millisecond resolution: wake half of it early
T = TypeVar("T")


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


class _Connection:
    """One kept-alive HTTP/1.1 connection on asyncio streams.

    A load generator on the machine it measures must cost little: `http.client` (its header
    parsing goes through `email`) in one thread per client used about twice the CPU per request.
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes) -> tuple[int, bytes]:
        """(status, body) of one request, reconnecting once if the kept-alive connection was closed."""
        for attempt in (0, 1):
            fresh = self.writer is None
            if fresh:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                return await self._exchange(request)
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                self.close()
                if attempt or fresh:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = dict(line.lower().split(":", 1) for line in lines[1:] if ":" in line)
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif "chunked" in headers.get("transfer-encoding", ""):
            body = await self._chunked()
        else:  # the body ends with the connection
            body = await self.reader.read()
            headers["connection"] = "close"
        if "close" in headers.get("connection", ""):
            self.close()
        return status, body

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)
        while await self.reader.readuntil(b"\r\n") != b"\r\n":  # trailers
            pass
        return b"".join(parts)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class _Poster:
    """POSTs bodies over kept-alive connections; records latencies and errors."""

    def __init__(self, url: str, body: Callable[[int], bytes], timeout_s: float, headers: dict[str, str] | None):
        self.host, self.port, path = check_loopback(url)
        self.body, self.timeout_s = body, timeout_s
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        fields = {"Host": f"{host}:{self.port}", "Content-Type": "application/json", **(headers or {})}
        self.head = (f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
                     + "Content-Length: ").encode("latin-1")
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def connection(self) -> _Connection:
        return _Connection(self.host, self.port)

    async def post(self, conn: _Connection, i: int, since: float) -> None:
        """Send request i on `conn`; its latency counts from `since` (perf_counter)."""
        body = self.body(i)
        try:
            status, payload = await asyncio.wait_for(
                conn.post(self.head + b"%d\r\n\r\n" % len(body) + body), self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - every failure is a data point
            conn.close()
            self.errors.append(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            return
        if 200 <= status < 300:
            self.latencies.append(time.perf_counter() - since)
        else:
            self.errors.append(f"HTTP {status}: {payload[:100]!r}")

    def percentiles(self) -> dict[str, float]:
        if not self.latencies:
            return {}
        arr = np.asarray(self.latencies) * 1e3
        return {"p50_ms": float(np.percentile(arr, 50)), "p90_ms": float(np.percentile(arr, 90)),
                "p99_ms": float(np.percentile(arr, 99)), "mean_ms": float(arr.mean()), "max_ms": float(arr.max())}


def run_async(main: Awaitable[T]) -> T:
    """Run `main` on uvloop when it is installed (as uvicorn would), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        uvloop = None
    if uvloop is None or not hasattr(asyncio, "Runner"):  # asyncio.Runner: Python 3.11+
        return asyncio.run(main)  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)  # type: ignore[arg-type]


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

    async def offer() -> tuple[int, int, float]:
        idle: list[_Connection] = []
        tasks: set[asyncio.Task] = set()

        async def send(i: int, scheduled: float) -> None:
            conn = idle.pop() if idle else poster.connection()
            # The loop's timers fire up to a millisecond off: a request sent early counts from its
            # sending, one sent late from its scheduled time.
            await poster.post(conn, i, min(scheduled, time.perf_counter()))
            idle.append(conn)

        sent = skipped = 0
        start = time.perf_counter()
        for i, offset in enumerate(arrivals):
            scheduled = start + float(offset)
            delay = scheduled - time.perf_counter()
            if delay > TIMER_SLACK_S:
                await asyncio.sleep(delay - TIMER_SLACK_S)
            if len(tasks) >= max_in_flight:
                skipped += 1
                continue
            task = asyncio.ensure_future(send(i, scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s + 5)
        for conn in idle:
            conn.close()
        return sent, skipped, time.perf_counter() - start

    cpu0 = time.process_time()
    sent, skipped, duration = run_async(offer())
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

    async def clients() -> float:
        start = time.perf_counter()
        stop = start + max_seconds

        async def client() -> None:
            conn = poster.connection()
            while time.perf_counter() < stop and (i := next(counter, None)) is not None:
                await poster.post(conn, i, time.perf_counter())
            conn.close()

        await asyncio.gather(*(client() for _ in range(concurrency)))
        return time.perf_counter() - start

    cpu0 = time.process_time()
    duration = run_async(clients())
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


# the offline reference, measured before the load tests and again after them (the result's keys)
OFFLINE_REFERENCES = (("offline", "Offline"), ("offline_after", "After the load tests, offline"))


def markdown(result: dict[str, Any]) -> str:
    """The open-loop sweep (and, when present, closed-loop points and the offline reference) as tables."""
    per = result.get("texts_per_request", 1)
    references = [(label, result[key]) for key, label in OFFLINE_REFERENCES if result.get(key)]
    offline_rate = statistics.mean(r["texts_per_s"] for _, r in references) if references else None
    lines = [f"# onnxpress bench-server: {result['url']}", ""]
    for label, offline in references:
        lines += [f"{label} `predict` on the same texts and threads ({offline['threads']}): "
                  f"{offline['texts_per_s']:.0f} texts/s; batch-1 p50 {offline['batch1_p50_ms']:.2f} ms back to back"
                  + (f", {offline['batch1_idle_p50_ms']:.2f} ms after {offline['idle_gap_ms']:.0f} ms idle"
                     if "batch1_idle_p50_ms" in offline else "") + "."]
    if len(references) > 1:
        lines.append(f"'of offline' below is of their mean, {offline_rate:.0f} texts/s.")
    lines += [""] if references else []
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
            share = f"{texts_s / offline_rate:.0%}" if offline_rate else "-"
            lines.append(f"| {p['concurrency']} | {p['completed']} | {p['errors']} | {p['achieved_rps']:.1f} | "
                         f"{texts_s:.0f} | {share} | {_ms(lat, 'p50_ms')} | {_ms(lat, 'p90_ms')} | "
                         f"{_ms(lat, 'p99_ms')} | {p['client_cpu_share']:.0%} |")
        lines.append("")
    return "\n".join(lines)
