"""What the routes share: the models, the settings, the metrics and the shutdown state."""
from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.requests import Request

from onnxpress.runtime.server.metrics import Metrics
from onnxpress.runtime.server.models import Registry
from onnxpress.runtime.server.settings import ServerSettings
from onnxpress.runtime.server.shutdown import Lifecycle


@dataclass
class ServerState:
    registry: Registry
    settings: ServerSettings
    metrics: Metrics
    lifecycle: Lifecycle

    def observe_success(self, model: str, seconds: float) -> None:
        self.metrics.success.labels(model).inc()
        self.metrics.request_duration.labels(model).observe(seconds)

    def observe_failure(self, model: str, status: int) -> None:
        self.metrics.failure.labels(model, str(status)).inc()


def state_of(request: Request) -> ServerState:
    return request.app.state.server



def time_left(request: Request) -> float:
    """Seconds left of the request's deadline (set by the gate as the request arrived)."""
    return max(request.scope["state"]["deadline"] - time.monotonic(), 0.0)
