"""The server's error taxonomy: each error says its HTTP status; bodies are `{"error": message}`."""
from __future__ import annotations

from typing import Any, Protocol, Sequence

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from onnxpress.runtime.batcher import BatcherError, Closed, DeadlineExceeded, Overloaded


class ApiError(Exception):
    """An answer other than success; `status` is its HTTP status code."""

    status = 500
    headers: dict[str, str] = {}

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401
    headers = {"WWW-Authenticate": "Bearer"}


class ModelNotFound(ApiError):
    status = 404


class TooLarge(ApiError):
    """Body bytes, texts per request or characters per text over the server's limits."""

    status = 413


class BodyTimeout(ApiError):
    """The body did not arrive within the request's deadline; the connection closes."""

    status = 408
    headers = {"Connection": "close"}


class Unavailable(ApiError):
    """Overloaded or shutting down: the client may retry (elsewhere) later."""

    status = 503
    headers = {"Retry-After": "1"}


class Timeout(ApiError):
    status = 504


def from_batcher(exc: BatcherError) -> ApiError:
    """The API error for a request the batcher did not compute."""
    if isinstance(exc, Overloaded):
        return Unavailable(f"overloaded: {exc}")
    if isinstance(exc, Closed):
        return Unavailable(f"shutting down: {exc}")
    if isinstance(exc, DeadlineExceeded):
        return Timeout(f"deadline exceeded: {exc}")
    return ApiError(str(exc))


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error body of every route: `{"error": message}`."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class HasErrors(Protocol):
    """A validation error (FastAPI's `RequestValidationError`, pydantic's `ValidationError`)."""

    def errors(self) -> Sequence[Any]: ...


def error_response(exc: ApiError | HTTPException | HasErrors) -> JSONResponse:
    """The answer to an error a route raised: its own status, 400 for a body that fails validation."""
    if isinstance(exc, ApiError):
        return json_error(exc.status, exc.message, exc.headers or None)
    if isinstance(exc, HTTPException):
        return json_error(exc.status_code, str(exc.detail), exc.headers)
    return json_error(400, "invalid request: " + "; ".join(_describe(e) for e in exc.errors()))


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
    if error.get("type") == "extra_forbidden":
        return f"{where}: unknown field (misspelt, or sent to the wrong route?)"
    return f"{where}: {error.get('msg', 'invalid')}"
