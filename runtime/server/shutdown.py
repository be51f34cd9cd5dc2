"""Graceful shutdown: on SIGTERM turn not-ready and refuse new work, finish what was accepted, exit.

uvicorn on its own stops listening at once; a load balancer polling readiness then sees a closed
port rather than "not ready". Here the first SIGTERM or SIGINT only starts draining: readiness
answers 503 and new inference requests get 503 while accepted ones complete; once none is in flight
and `grace_s` has passed, uvicorn's own shutdown runs (it waits for open connections). A second
signal exits at once (uvicorn's forced exit: requests still running are dropped, and the process
ends by the signal, raised again once uvicorn has stopped: 143 for SIGTERM, 130 for a second Ctrl-C,
`onnxpress serve` having given SIGINT its default action).
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

import uvicorn

log = logging.getLogger("onnxpress.server")


class Lifecycle:
    """Readiness and the count of requests in flight, shared by the middleware and the server."""

    def __init__(self) -> None:
        self.draining = False
        self._in_flight = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        return self._in_flight


class GracefulServer(uvicorn.Server):
    """uvicorn.Server whose first exit signal drains `lifecycle` before stopping."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, grace_s: float = 0.0,
                 drain_timeout_s: float = 60.0):
        super().__init__(config)
        self.lifecycle = lifecycle
        self.grace_s = grace_s
        self.drain_timeout_s = drain_timeout_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.lifecycle.draining:  # the second signal: stop now, without waiting for requests
            log.info("%s again: exiting without waiting", signal.Signals(sig).name)
            self.force_exit = True
            super().handle_exit(sig, frame)
            return
        self.lifecycle.draining = True
        log.info("%s: draining %d request(s) in flight", signal.Signals(sig).name, self.lifecycle.in_flight)
        threading.Thread(target=self._stop_when_drained, name="drain", daemon=True).start()

    def _stop_when_drained(self) -> None:
        start = time.monotonic()
        while time.monotonic() - start < self.drain_timeout_s:
            if self.lifecycle.in_flight == 0 and time.monotonic() - start >= self.grace_s:
                break
            time.sleep(0.02)
        self.should_exit = True
