"""How much event-loop CPU does one request cost the server, and what part of it is whose?

    python -m onnxpress.benchmarks.probes.asgi_overhead ARTIFACT [--answer real|thread|instant]
        [--requests 3000] [--concurrency 32] [--texts-per-request 1] [--protocol v1|v2]

Drives the served app's ASGI callable directly (no sockets, no uvicorn) on uvloop when installed,
`--concurrency` requests at a time, and prints the main thread's CPU time per request
(`time.thread_time`). `--answer` replaces what the model behind the route does: `real` (the batcher
and the model), `thread` (an instant answer from another thread through a `concurrent.futures`
future, as the batcher hands results back) or `instant` (an answer computed on the event loop).
Pin it to one core (`taskset -c 0`) to compare runs.
"""
from __future__ import annotations

import argparse
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np

from onnxpress.benchmarks import loadgen

ANSWERS = ("real", "thread", "instant")


def _replace_answers(mode: str) -> None:
    """Make every served model answer `mode`'s way (uniform probabilities, the right shape)."""
    from onnxpress.runtime.server.models import ServedModel

    pool = ThreadPoolExecutor(1)

    def uniform(model: ServedModel, n: int) -> np.ndarray:
        labels = len(model.model.labels)
        return np.full((n, labels), 1.0 / labels, np.float32)

    async def instant(self: ServedModel, texts: Sequence[str], timeout_s: float, **options: Any) -> Any:
        return uniform(self, len(texts))

    async def thread(self: ServedModel, texts: Sequence[str], timeout_s: float, **options: Any) -> Any:
        return await asyncio.wrap_future(pool.submit(uniform, self, len(texts)))

    ServedModel.run = {"instant": instant, "thread": thread}[mode]  # type: ignore[method-assign]


def _bodies(texts: Sequence[str], per: int, protocol: str) -> tuple[str, list[bytes]]:
    """The route and 512 request bodies, as `bench-server` sends them."""
    if protocol == "v1":
        path, body = "/v1/classify", loadgen.json_body(texts, per_request=per)
    else:
        path, body = "/v2/models/clf/infer", loadgen.v2_body(texts, per_request=per)
    return path, [body(i) for i in range(512)]


async def _drive(app: Any, path: str, bodies: list[bytes], requests: int, concurrency: int) -> float:
    """Main-thread CPU seconds per request over `requests` requests (after 300 for warm-up)."""

    async def one(i: int) -> None:
        body = bodies[i % len(bodies)]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
                 "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode())],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000), "state": {}}
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if sent:  # the app only asks again to watch for a disconnect
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        status: list[int] = []

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        if status != [200]:
            raise RuntimeError(f"request {i} answered {status}")

    gate = asyncio.Semaphore(concurrency)

    async def limited(i: int) -> None:
        async with gate:
            await one(i)

    async with app.router.lifespan_context(app):
        await asyncio.gather(*(limited(i) for i in range(300)))
        cpu = time.thread_time()
        await asyncio.gather(*(limited(i) for i in range(requests)))
        return (time.thread_time() - cpu) / requests


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("artifact")
    p.add_argument("--answer", choices=ANSWERS, default="real")
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--texts-per-request", type=int, default=1)
    p.add_argument("--protocol", choices=["v1", "v2"], default="v1")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    from onnxpress.benchmarks.texts import load_texts
    from onnxpress.runtime.server.app import build_app
    from onnxpress.runtime.server.settings import ServerSettings

    if args.answer != "real":
        _replace_answers(args.answer)
    app = build_app([("clf", args.artifact)], ServerSettings(), threads=args.threads)
    path, bodies = _bodies(load_texts("ag_news").texts, args.texts_per_request, args.protocol)
    seconds = loadgen.run_async(_drive(app, path, bodies, args.requests, args.concurrency))
    print(f"answer={args.answer} {args.protocol} x{args.texts_per_request}, {args.concurrency} at a time: "
          f"event loop {seconds * 1e6:.0f} us CPU per request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
