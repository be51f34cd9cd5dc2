"""KServe v2 / Triton HTTP routes: server and model health, metadata, infer (JSON or binary tensors)."""
from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from onnxpress import __version__
from onnxpress.runtime.server.codec import HEADER_LENGTH, InferRequest, Tensor, decode_request, encode_response
from onnxpress.runtime.server.errors import InvalidInput, ModelNotFound, TooLarge, Unavailable
from onnxpress.runtime.server.models import ServedModel
from onnxpress.runtime.server.inputs import check_beam_size, check_texts
from onnxpress.runtime.server.state import ServerState, state_of, time_left

TEXT_INPUT = "text"
INFER_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": {"type": "object", "required": ["name", "datatype", "shape"],
                                                  "properties": {"name": {"type": "string"},
                                                                 "datatype": {"type": "string"},
                                                                 "shape": {"type": "array",
                                                                           "items": {"type": "integer"}},
                                                                 "data": {"type": "array"}}}},
            "outputs": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "parameters": {"type": "object"},
        }}}}},
}

router = APIRouter(tags=["KServe v2"])


@router.get("/v2")
def server_metadata() -> dict[str, Any]:
    return {"name": "onnxpress", "version": __version__, "extensions": ["binary_tensor_data"]}


@router.get("/v2/health/live")
def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/v2/health/ready")
def ready(request: Request) -> dict[str, bool]:
    if state_of(request).lifecycle.draining:
        raise Unavailable("shutting down")
    return {"ready": True}


@router.get("/v2/models/{name}")
@router.get("/v2/models/{name}/versions/{version}")
def model_metadata(request: Request, name: str, version: str = "1") -> dict[str, Any]:
    return _model(request, name, version).metadata()


@router.get("/v2/models/{name}/ready")
@router.get("/v2/models/{name}/versions/{version}/ready")
def model_ready(request: Request, name: str, version: str = "1") -> dict[str, Any]:
    _model(request, name, version)
    if state_of(request).lifecycle.draining:
        raise Unavailable("shutting down")
    return {"name": name, "ready": True}


@router.post("/v2/models/{name}/infer", openapi_extra=INFER_BODY)
@router.post("/v2/models/{name}/versions/{version}/infer", openapi_extra=INFER_BODY)
async def infer(request: Request, name: str, version: str = "1") -> Response:
    state = state_of(request)
    served = _model(request, name, version)
    body = await request.body()
    if len(body) > state.settings.limits.max_body_bytes:
        raise TooLarge(f"body of {len(body)} bytes; the limit is {state.settings.limits.max_body_bytes}")
    parsed = decode_request(body, request.headers.get(HEADER_LENGTH))
    texts = _texts(parsed, state)
    timeout = _timeout(parsed, time_left(request))
    if served.kind == "classifier":
        _check_outputs(parsed, ("label", "score", "probabilities"))
        probs = await served.run(texts, timeout)
        outputs = _classifier_outputs(served, probs)
    else:
        _check_outputs(parsed, ("translation", "score", "attention"))
        attention = parsed.outputs is not None and "attention" in parsed.outputs
        beam = check_beam_size(parsed.parameters.get("beam_size"), state.settings.limits)
        translations = await served.run(texts, timeout, beam_size=beam, return_attention=attention)
        outputs = _translator_outputs(translations, attention)
    if parsed.outputs is not None:
        outputs = [t for t in outputs if t.name in parsed.outputs]
    content, header_length = encode_response(served.name, parsed, outputs)
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(content, media_type="application/octet-stream", headers={HEADER_LENGTH: str(header_length)})


def _model(request: Request, name: str, version: str) -> ServedModel:
    served = state_of(request).registry.get(name)
    request.state.model = served.name
    if version != "1":
        raise ModelNotFound(f"model {name!r} has version 1 only (asked for {version!r})")
    return served


def _texts(parsed: InferRequest, state: ServerState) -> list[str]:
    tensor = parsed.inputs.get(TEXT_INPUT)
    if tensor is None or len(parsed.inputs) != 1:
        raise InvalidInput(f"expected one input named {TEXT_INPUT!r} (got {sorted(parsed.inputs)})")
    if tensor.datatype != "BYTES":
        raise InvalidInput(f"input {TEXT_INPUT!r} must be BYTES (got {tensor.datatype})")
    if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
        raise InvalidInput(f"input {TEXT_INPUT!r} must have shape [n] or [n, 1] (got {tensor.shape})")
    texts = []
    for i, raw in enumerate(tensor.data):
        try:
            texts.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput(f"{TEXT_INPUT}[{i}] is not valid UTF-8") from None
    return check_texts(texts, state.settings.limits, where=TEXT_INPUT)


def _timeout(parsed: InferRequest, server_timeout_s: float) -> float:
    """The request's Triton `timeout` parameter (microseconds), capped by the server's own."""
    micros = parsed.parameters.get("timeout")
    if micros is None:
        return server_timeout_s
    if isinstance(micros, bool) or not isinstance(micros, int) or micros <= 0:
        raise InvalidInput(f"parameters.timeout must be a positive integer of microseconds (got {micros!r})")
    return min(micros / 1e6, server_timeout_s)


def _check_outputs(parsed: InferRequest, known: tuple[str, ...]) -> None:
    unknown = sorted(set(parsed.outputs or ()) - set(known))
    if unknown:
        raise InvalidInput(f"unknown output(s) {unknown}; this model has {list(known)}")


def _classifier_outputs(served: ServedModel, probs: np.ndarray) -> list[Tensor]:
    n, labels = len(probs), served.model.labels
    top = probs.argmax(axis=1)
    return [Tensor("label", "BYTES", [n], [labels[k].encode() for k in top]),
            Tensor("score", "FP32", [n], probs[np.arange(n), top].astype(np.float32)),
            Tensor("probabilities", "FP32", [n, len(labels)], probs.astype(np.float32))]


def _translator_outputs(translations: list[Any], attention: bool) -> list[Tensor]:
    n = len(translations)
    outputs = [Tensor("translation", "BYTES", [n], [t.text.encode() for t in translations]),
               Tensor("score", "FP32", [n], np.array([t.score for t in translations], np.float32))]
    if attention:
        rows = max((t.attention.shape[0] for t in translations), default=0)
        cols = max((t.attention.shape[1] for t in translations), default=0)
        padded = np.zeros((n, rows, cols), np.float32)
        for i, t in enumerate(translations):
            padded[i, : t.attention.shape[0], : t.attention.shape[1]] = t.attention
        outputs.append(Tensor("attention", "FP32", [n, rows, cols], padded))
    return outputs

