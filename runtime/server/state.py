"""What the routes share: the models, the settings, the metrics and the shutdown state."""
from __future__ import annotations

from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from onnxpress.runtime.server.errors import ApiError, HasErrors, error_response
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


def answer_error(request: Request, exc: ApiError | HTTPException | HasErrors) -> Response:
    """The response to an error a route raised (`errors.error_response`), counted as a failure of
    the model the request named, if it named one."""
    model = getattr(request.state, "model", None)
    if isinstance(exc, ApiError) and model is not None:
        state_of(request).observe_failure(model, exc.status)
    return error_response(exc)
