"""Server settings and input limits (plain values: the CLI reads their defaults without importing the server)."""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# Bound on the spin-waiting of a served classifier's idle ONNX Runtime threads, in microseconds
# (figures: docs/serving.md, "Performance").
DEFAULT_SPIN_US = 1000


@dataclass(frozen=True)
class Limits:
    """What one request may hold."""

    max_texts: int = 256  # texts per request
    max_chars: int = 20_000  # characters per text
    max_body_bytes: int = 8 * 1024 * 1024
    max_beam_size: int = 16


@dataclass(frozen=True)
class ServerSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None
    limits: Limits = Limits()
    request_timeout_s: float = 30.0  # end-to-end deadline of one request: body, queue and compute
    max_queue_delay_ms: float = 0.0  # an idle model starts at once (figures: docs/serving.md, "Batching")
    max_queue_size: int = 256  # queued requests per model
    shutdown_grace_s: float = 0.0  # after SIGTERM: seconds of not-ready before the listener closes
    ort_spin_us: int | None = DEFAULT_SPIN_US  # 0: no spinning, None: ORT's default

