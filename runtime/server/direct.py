"""The inference routes called by the gate itself, around FastAPI's router.

FastAPI's router, dependency solving and response handling were the largest part of the event loop's
CPU per single-text request, and on a small machine the loop shares the cores with the model's
workers (figures: docs/serving.md, "Performance"). The routes stay FastAPI routes (OpenAPI,
/docs, other methods); for a POST to one of them the gate calls the same endpoint function here: the
JSON body validated by the route's pydantic model, the returned model serialized by pydantic, errors
answered as the app's exception handlers answer them. A success is counted here, once its client is
known to be still there (one that hung up meanwhile is logged and counted as 499 by the gate).
"""
from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from onnxpress.runtime.server import v1_routes, v2_routes
from onnxpress.runtime.server.errors import ApiError, error_response
from onnxpress.runtime.server.inputs import parse_json
from onnxpress.runtime.server.state import state_of


@dataclass(frozen=True)
class DirectRoute:
    path: re.Pattern[str]  # groups: the endpoint's path parameters
    endpoint: Callable[..., Awaitable[Any]]  # (request, **path parameters[, body])
    body: type[BaseModel] | None  # the JSON body's model; None where the endpoint reads the body itself


ROUTES = (
    DirectRoute(re.compile(r"/v1/classify"), v1_routes.classify, v1_routes.ClassifyRequest),
    DirectRoute(re.compile(r"/v1/translate"), v1_routes.translate, v1_routes.TranslateRequest),
    DirectRoute(re.compile(r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer"),
                v2_routes.infer, None),
)


def direct_route(scope: Scope) -> ASGIApp | None:
    """The ASGI callable for a POST to an inference route, None for any other request."""
    if scope["method"] != "POST":
        return None
    for route in ROUTES:
        match = route.path.fullmatch(scope["path"])
        if match:
            params = {k: v for k, v in match.groupdict().items() if v is not None}
            return functools.partial(_call, route, params)
    return None


async def _call(route: DirectRoute, params: dict[str, str], scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive)
    start = time.perf_counter()
    try:
        if route.body is not None:
            # from_attributes as FastAPI validates bodies: the same error messages
            params["body"] = route.body.model_validate(parse_json(await request.body()), from_attributes=True)
        result = await route.endpoint(request, **params)
        response = result if isinstance(result, Response) else Response(
            result.model_dump_json(), media_type="application/json")
    except (ApiError, HTTPException, ValidationError) as exc:
        response = error_response(exc)
    if response.status_code < 400:
        if await request.is_disconnected():  # it hung up while its answer was computed: nobody to send it to
            raise ClientDisconnect()
        state_of(request).observe_success(request.state.model, time.perf_counter() - start)
    await response(scope, receive, send)

