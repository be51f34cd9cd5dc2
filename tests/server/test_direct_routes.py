"""The gate's direct dispatch of inference routes answers exactly as FastAPI's routing of them does."""
from __future__ import annotations

import pytest

from server_fixtures import GERMAN, TEXTS, TRANSLATOR

pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from onnxpress.runtime.server import app as app_module  # noqa: E402
from onnxpress.runtime.server.app import build_app  # noqa: E402
from onnxpress.runtime.server.direct import direct_route  # noqa: E402
from onnxpress.runtime.server.settings import ServerSettings  # noqa: E402


def _v2(data, datatype="BYTES", **extra):
    return {"inputs": [{"name": "text", "datatype": datatype, "shape": [len(data)], "data": data}], **extra}


REQUESTS = [
    ("/v1/classify", {"texts": TEXTS}),
    ("/v1/classify", {"texts": TEXTS[:2], "model": "clf"}),
    ("/v1/translate", {"texts": GERMAN[:2], "beam_size": 2, "return_attention": True}),
    ("/v2/models/clf/infer", _v2(TEXTS[:3])),
    ("/v2/models/clf/versions/1/infer", _v2(TEXTS[:1], outputs=[{"name": "label"}])),
    ("/v2/models/mt/infer", _v2(GERMAN[:1], parameters={"beam_size": 1})),
    # mistakes
    ("/v1/classify", {"texts": "one string"}),
    ("/v1/classify", {"texts": [1, 2]}),
    ("/v1/classify", {}),
    ("/v1/classify", [TEXTS[0]]),
    ("/v1/classify", {"texts": ["ok", "  "]}),
    ("/v1/classify", {"texts": ["a"], "model": "nope"}),
    ("/v1/classify", {"texts": ["a"], "model": "mt"}),
    ("/v1/translate", {"texts": GERMAN[:1], "beam_size": "four"}),
    ("/v2/models/nope/infer", _v2(["a"])),
    ("/v2/models/clf/versions/2/infer", _v2(["a"])),
    ("/v2/models/clf/infer", _v2([1], datatype="INT32")),
    ("/v2/models/clf/infer", {"inputs": 3}),
]


@pytest.fixture(scope="module")
def app(classifier_dir):
    served = build_app([("clf", classifier_dir), ("mt", TRANSLATOR)], ServerSettings(), variant="fp32")
    with TestClient(served) as client:
        yield client


def _answers(client, monkeypatch, direct: bool) -> list[tuple[int, object, int]]:
    taken = []

    def spy(scope):
        route = direct_route(scope) if direct else None
        taken.append(route is not None)
        return route

    monkeypatch.setattr(app_module, "direct_route", spy)
    out = []
    for path, body in REQUESTS:
        response = client.post(path, json=body)
        out.append((response.status_code, response.json()))
    assert taken == [direct] * len(REQUESTS)
    return out


def test_direct_dispatch_answers_as_fastapi_routing_does(app, monkeypatch):
    direct = _answers(app, monkeypatch, direct=True)
    routed = _answers(app, monkeypatch, direct=False)
    assert [status for status, _ in direct][:6] == [200] * 6
    assert all(400 <= status < 500 for status, _ in direct[6:])
    for (path, _), got, want in zip(REQUESTS, direct, routed):
        assert got == want, path  # fp32 results do not depend on batch neighbours


def test_malformed_json_is_a_400_on_both_paths(app, monkeypatch):
    for direct in (True, False):
        monkeypatch.setattr(app_module, "direct_route", direct_route if direct else lambda scope: None)
        for path in ("/v1/classify", "/v1/translate"):
            response = app.post(path, content=b"{not json", headers={"Content-Type": "application/json"})
            assert response.status_code == 400 and "invalid request" in response.json()["error"], response.text


def test_only_posts_to_inference_routes_go_direct():
    def scope(method, path):
        return {"type": "http", "method": method, "path": path}

    assert direct_route(scope("POST", "/v1/classify")) is not None
    assert direct_route(scope("POST", "/v2/models/clf/versions/1/infer")).args[1] == {"name": "clf", "version": "1"}
    assert direct_route(scope("GET", "/v1/classify")) is None
    assert direct_route(scope("POST", "/v1/models")) is None
    assert direct_route(scope("POST", "/v2/models/a/b/infer")) is None
    assert direct_route(scope("POST", "/v2/models/clf/infer")).args[1] == {"name": "clf"}  # version: the default
