"""The FastAPI application: routes, the request gate (ids, auth, drain, body size, access log), errors."""
from __future__ import annotations

import hmac
import itertools
import json
import logging
import os
import re
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onnxpress import __version__
from onnxpress.runtime.server import v1_routes, v2_routes
from onnxpress.runtime.server.direct import direct_route
from onnxpress.runtime.server.errors import ApiError, BodyTimeout, error_response, json_error
from onnxpress.runtime.server.logs import ACCESS_LOGGER
from onnxpress.runtime.server.metrics import CONTENT_TYPE_LATEST, Metrics
from onnxpress.runtime.server.settings import ServerSettings
from onnxpress.runtime.server.shutdown import Lifecycle
from onnxpress.runtime.server.state import ServerState

PAGE = Path(__file__).with_name("page") / "index.html"
HEALTH = ("/v2/health/live", "/v2/health/ready")
OPEN = HEALTH + ("/",)  # no bearer token needed: health probes and the static page (it holds no data)
UNGATED = HEALTH + ("/metrics",)  # answered while draining too
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
V2_MODEL = re.compile(r"/v2/models/([^/]+)/")
CLIENT_CLOSED = 499  # the client went away before the answer (nginx's code; nothing is sent)
access_log = logging.getLogger(ACCESS_LOGGER)
log = logging.getLogger("onnxpress.server")
# ids the server makes: 32 hex digits, a random half per process and a counter (a uuid4 per request
# costs the event loop a getrandom system call)
_PROCESS_ID = uuid.uuid4().hex[:16]
_request_ids = (f"{_PROCESS_ID}{n:016x}" for n in itertools.count())


class Gate:
    """Pure ASGI middleware in front of every route.

    Gives each request an id (the client's `X-Request-ID` when sane), checks the bearer token,
    refuses new work while draining, refuses bodies whose Content-Length exceeds the limit, counts
    requests in flight for the graceful shutdown, counts every failed inference request (by model
    and status) and writes one JSON access-log line per request. Inference requests go straight to
    their endpoints (`direct`), the rest through FastAPI; HEAD is answered as GET without the body.
    An unexpected error is logged with the request id and answered 500 in JSON.
    """

    def __init__(self, app: ASGIApp, state: ServerState):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.match(given) else next(_request_ids)
        scope.setdefault("state", {})["request_id"] = request_id
        # one deadline for the whole request: its body, its queueing and its compute (routes: time_left)
        deadline = scope["state"]["deadline"] = time.monotonic() + self.state.settings.request_timeout_s
        path = scope["path"]
        start = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = list(message.get("headers", [])) + [(b"x-request-id", request_id.encode())]
            await send(message)

        # uvicorn keeps its own scope, so it still leaves out the body of a HEAD answered as GET
        routed = dict(scope, method="GET") if scope["method"] == "HEAD" else scope
        inference = direct_route(scope)
        refusal = self._refusal(path, headers)
        try:
            if refusal is not None:
                await refusal(scope, receive, send_with_id)
            elif path in UNGATED:
                await self.app(routed, receive, send_with_id)
            else:
                self.state.lifecycle.enter()
                try:
                    await (inference or self.app)(routed, self._bounded(receive, deadline), send_with_id)
                finally:
                    self.state.lifecycle.leave()
        except ClientDisconnect:  # the client is gone: nothing can be sent, the log says 499
            status = status or CLIENT_CLOSED
        except Exception:  # noqa: BLE001 - a bug: log it with the request id, answer in JSON, serve on
            log.exception("request %s (%s %s) failed", request_id, scope["method"], path)
            if not status:
                await json_error(500, f"internal error (request id {request_id})")(scope, receive, send_with_id)
        finally:
            model = scope["state"].get("model")
            if inference is not None and status >= 400:
                self.state.observe_failure(model or self._named_model(path), status)
            if access_log.isEnabledFor(logging.INFO):  # `--log-level warning` skips building the line too
                access_log.info(json.dumps({
                    "ts": round(time.time(), 3), "request_id": request_id, "method": scope["method"], "path": path,
                    "model": model, "status": status, "ms": round((time.perf_counter() - start) * 1e3, 2),
                    "client": (scope.get("client") or ("", 0))[0]}))

    def _named_model(self, path: str) -> str:
        """The served model a v2 path names; "" where none is (labels stay bounded by the models served)."""
        match = V2_MODEL.match(path)
        return match.group(1) if match and match.group(1) in self.state.registry.models else ""

    def _bounded(self, receive: Receive, deadline: float) -> Receive:
        """`receive` that stops a body without Content-Length (chunked) once it passes the limit, and
        one that has not arrived whole by the request's deadline (a client that stalls mid-body
        would otherwise hold its connection for as long as it likes)."""
        limit = self.state.settings.limits.max_body_bytes
        timeout = self.state.settings.request_timeout_s
        seen, whole = 0, False

        async def bounded() -> Message:
            nonlocal seen, whole
            if whole:  # after the body, receive only waits for a disconnect: no deadline of ours
                return await receive()
            try:
                with anyio.fail_after(max(deadline - time.monotonic(), 0.0)):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(f"request body not received within {timeout:g} s") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise StarletteHTTPException(413, f"body over the limit of {limit} bytes")
                whole = not message.get("more_body", False)
            return message

        return bounded

    def _refusal(self, path: str, headers: dict[str, str]) -> Response | None:
        settings = self.state.settings
        key = settings.api_key
        if key and path not in OPEN:
            auth = headers.get("authorization", "")
            token = auth[7:] if auth[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(token.encode(), key.encode()):
                return json_error(401, "missing or wrong bearer token (Authorization: Bearer KEY)",
                                  {"WWW-Authenticate": "Bearer"})
        if self.state.lifecycle.draining and path not in UNGATED:
            return json_error(503, "shutting down: not accepting new requests", {"Retry-After": "1",
                                                                                "Connection": "close"})
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.limits.max_body_bytes):
            return json_error(413, f"body of {length} bytes; the limit is {settings.limits.max_body_bytes}")
        return None


def create_app(state: ServerState) -> FastAPI:
    """The application for `state`'s models; closing it drains their batchers."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.registry.close(drain=True)

    app = FastAPI(title="onnxpress", version=__version__, lifespan=lifespan,
                  description="Text classification and translation on ONNX Runtime: KServe v2 and a JSON API.")
    app.state.server = state
    for served in state.registry.models.values():
        state.metrics.load_duration.labels(served.name).set(served.load_seconds)
        state.metrics.track_queue(served.name, lambda b=served.batcher: b.queue_depth)
    app.include_router(v2_routes.router)
    app.include_router(v1_routes.router)
    app.openapi = lambda: app.openapi_schema or _openapi_as_answered(app)  # type: ignore[method-assign]

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(ApiError)
    @app.exception_handler(RequestValidationError)
    @app.exception_handler(StarletteHTTPException)
    async def route_error(request: Request, exc: ApiError | RequestValidationError | StarletteHTTPException
                          ) -> Response:
        return error_response(exc)

    app.add_middleware(Gate, state=state)
    return app


def _openapi_as_answered(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with the errors the server really answers: 400 `{"error": ...}` where
    FastAPI documents its 422 validation body (the gate and the handlers answer 400)."""
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    error = {"description": "invalid request",
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if operation.get("responses", {}).pop("422", None) is not None:
                operation["responses"]["400"] = error
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Error"] = {"title": "Error", "type": "object", "required": ["error"],
                        "properties": {"error": {"type": "string", "description": "what is wrong"}}}
    app.openapi_schema = schema
    return schema


def build_app(models: Sequence[tuple[str, str | os.PathLike]], settings: ServerSettings,
              **load_options: Any) -> FastAPI:
    """Load `(name, artifact path)` pairs, each behind a batcher with `settings`' queue policy, and
    return their app; its `state.server` (a ServerState) holds the models, metrics and lifecycle."""
    from onnxpress.runtime.batcher import BatcherConfig
    from onnxpress.runtime.server.models import Registry, load_model

    metrics = Metrics()
    config = BatcherConfig(max_queue_delay_ms=settings.max_queue_delay_ms, max_queue_size=settings.max_queue_size,
                           timeout_s=settings.request_timeout_s)
    loaded = [load_model(name, path, config, metrics.observer(name), spin_us=settings.ort_spin_us,
                         **load_options) for name, path in models]
    return create_app(ServerState(Registry(loaded), settings, metrics, Lifecycle()))

