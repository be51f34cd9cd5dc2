"""Bad input never gets a 5xx: a fixed list of mistakes, then schema fuzzing of the OpenAPI spec."""
from __future__ import annotations

import contextlib
import http.client
import threading
import json
import time

import pytest

from server_fixtures import GERMAN, TEXTS, Client, metric, start_server

V2 = "/v2/models/clf/infer"


def _v2(data, datatype="BYTES", shape=None, **extra):
    return {"inputs": [{"name": "text", "datatype": datatype, "shape": shape or [len(data)], "data": data}], **extra}


CASES = [
    ("POST", "/v1/classify", b"{not json", 400, "invalid"),
    ("POST", "/v1/classify", {"texts": "one string"}, 400, "texts"),
    ("POST", "/v1/classify", {"texts": [1, 2]}, 400, "string"),
    ("POST", "/v1/classify", {}, 400, "texts"),
    ("POST", "/v1/classify", {"texts": []}, 400, "empty"),
    ("POST", "/v1/classify", {"texts": ["ok", "  "]}, 400, "texts[1] is empty"),
    ("POST", "/v1/classify", {"texts": ["\u200b\x00\ufeff"]}, 400, "texts[0] is empty (no visible character)"),
    ("POST", "/v1/classify", b'{"texts": ["\\ud800 lone"]}', 400, "surrogate"),
    ("POST", "/v1/classify", {"texts": ["x"] * 100_000}, 413, "limit"),
    ("POST", "/v1/classify", {"texts": ["x" * 1_000_000]}, 413, "characters"),
    ("POST", "/v1/classify", {"texts": ["a"], "model": "../../etc/passwd"}, 404, "unknown model"),
    ("POST", "/v1/classify", {"texts": ["a"], "model": "mt"}, 400, "not a classifier"),
    ("POST", "/v1/translate", {"texts": GERMAN[:1], "beam_size": -3}, 400, "beam_size"),
    ("POST", "/v1/translate", {"texts": GERMAN[:1], "beam_size": 10_000}, 400, "beam_size"),
    ("POST", "/v1/translate", {"texts": GERMAN[:1], "beam_size": "four"}, 400, "beam_size"),
    ("POST", "/v2/models/nope/infer", _v2(["a"]), 404, "unknown model"),
    ("POST", "/v2/models/..%2F..%2Fetc/infer", _v2(["a"]), 404, ""),
    ("POST", V2, _v2([1], datatype="INT32"), 400, "BYTES"),
    ("POST", V2, _v2(["a", "b"], shape=[3]), 400, "elements"),
    ("POST", V2, _v2(["a", "b"], shape=[1, 2]), 400, "shape"),
    ("POST", V2, {"inputs": [{"name": "other", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}, 400, "'text'"),
    ("POST", V2, _v2(["a"], outputs=[{"name": "logits"}]), 400, "unknown output"),
    ("POST", V2, _v2(["a"], parameters={"timeout": -1}), 400, "timeout"),
    ("POST", V2, b"\xff\xfe", 400, "JSON"),
    ("POST", "/v2/models/mt/infer", _v2(GERMAN[:1], parameters={"beam_size": 0}), 400, "beam_size"),
    ("POST", "/v1/classify", b'{"texts": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "nested too deeply"),
    ("POST", V2, b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "nested too deeply"),
    ("POST", V2, b'{"inputs": [], "parameters": {"beam_size": ' + b"1" * 5000 + b"}}", 400,
     "an integer of more than 4,300 digits"),
    ("POST", "/v1/classify", '{"texts": ["a"]}'.encode("utf-16"), 400, "not UTF-8: byte 0"),
    ("POST", "/v1/classify", b'\xef\xbb\xbf{"texts": ["\xff"]}', 400, "not UTF-8: byte 15 is b'\\xff'"),
    ("POST", V2, {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": "a"}]}, 400, "JSON array"),
    ("POST", "/v1/translate", {"texts": GERMAN[:1], "beam_size": "4"}, 400, "beam_size"),
    ("POST", "/v1/translate", {"texts": GERMAN[:1], "beam_size": True}, 400, "beam_size"),
    ("POST", "/v1/translate", {"texts": GERMAN[:1], "return_attention": "yes"}, 400, "return_attention"),
    ("POST", V2, _v2(["a"], parameters={"binary_data_output": "false"}), 400, "binary_data_output"),
    ("POST", V2, _v2(["a"], outputs=[{"name": "label", "parameters": {"binary_data": 1}}]), 400, "binary_data"),
    ("POST", "/v1/translate", {"texts": GERMAN[:1], "beamsize": 99}, 400, "beamsize: unknown field"),
    ("POST", "/v1/classify", {"texts": ["a"], "beam_size": 4}, 400, "beam_size: unknown field"),
    ("GET", "/v2/models/clf/versions/2", None, 404, "version 1"),
    ("GET", "/nowhere", None, 404, ""),
]


@pytest.mark.parametrize("method, path, body, status, says", CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_each_mistake_is_a_clear_4xx(server, method, path, body, status, says):
    client = Client(server.url)
    raw = body if isinstance(body, bytes) else None
    got, _, payload = client.request(method, path, None if raw else body, raw=raw)
    assert got == status, payload[:300]
    error = json.loads(payload)["error"]
    assert says in error


def test_a_utf8_body_with_a_bom_is_read(server):
    client = Client(server.url)
    status, _, body = client.request("POST", "/v1/classify", raw=b"\xef\xbb\xbf" + b'{"texts": ["stocks rally"]}')
    assert status == 200
    assert json.loads(body) == json.loads(client.request("POST", "/v1/classify", {"texts": ["stocks rally"]})[2])


def test_body_over_the_limit_is_413_and_the_server_lives_on(server):
    client = Client(server.url)
    # valid requests but for their size: 9 MB of JSON whitespace > the 8 MiB default
    big = b'{"texts": ["stocks rally"]' + b" " * 9_000_000 + b"}"
    assert Client(server.url).request("POST", "/v1/classify", raw=big[:30] + b"}")[0] == 200
    status, _, payload = client.request("POST", "/v1/classify", raw=big)
    assert status == 413 and "limit" in json.loads(payload)["error"]
    for path in ("/v1/classify", "/v2/models/clf/infer"):  # chunked: no Content-Length to refuse up front
        conn = http.client.HTTPConnection(*server.url.removeprefix("http://").split(":"), timeout=30)
        conn.request("POST", path, body=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]),
                     headers={"Content-Type": "application/json"}, encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 413 and "limit" in json.loads(response.read())["error"]
        conn.close()
    assert Client(server.url).request("GET", "/v2/health/ready")[0] == 200


def test_bearer_token_guards_everything_but_health_and_the_page(classifier_dir):
    served = start_server(classifier_dir, env={"ONNXPRESS_API_KEY": "s3cret"})
    try:
        anonymous, keyed = Client(served.url), Client(served.url, headers={"Authorization": "Bearer s3cret"})
        for path in ("/v2/health/live", "/v2/health/ready", "/"):
            assert anonymous.request("GET", path)[0] == 200
        for path in ("/v2", "/v2/models/clf", "/metrics", "/v1/models", "/openapi.json"):
            status, headers, _ = anonymous.request("GET", path)
            assert status == 401 and headers["www-authenticate"] == "Bearer"
        wrong = Client(served.url, headers={"Authorization": "Bearer nope"})
        assert wrong.request("POST", "/v1/classify", {"texts": TEXTS[:1]})[0] == 401
        status, body = keyed.json("POST", "/v1/classify", {"texts": TEXTS[:1]})
        assert status == 200 and body["results"][0]["label"]
    finally:
        served.stop()


def test_request_ids_are_kept_or_made(server):
    client = Client(server.url)
    _, headers, _ = client.request("GET", "/v2/health/live", headers={"X-Request-ID": "abc-123"})
    assert headers["x-request-id"] == "abc-123"
    _, headers, _ = client.request("GET", "/v2/health/live", headers={"X-Request-ID": "bad id\twith junk"})
    made = headers["x-request-id"]
    _, headers, _ = client.request("GET", "/v2/health/live")
    again = headers["x-request-id"]
    # 32 hex digits: the server process's random half, then a counter
    assert len(made) == len(again) == 32 and made[:16] == again[:16] and int(again[16:], 16) > int(made[16:], 16)
    status, _, _ = client.request("POST", "/v1/classify", {"texts": TEXTS[:1]}, headers={"X-Request-ID": "log-me"})
    assert status == 200
    time.sleep(0.2)  # the access log line follows the response
    lines = [json.loads(line) for line in server.log if '"log-me"' in line]
    assert lines and lines[0]["path"] == "/v1/classify" and lines[0]["model"] == "clf" and lines[0]["status"] == 200


def test_log_level_warning_turns_the_access_log_off(classifier_dir):
    served = start_server(classifier_dir, "--log-level", "warning")
    try:
        status, _, _ = Client(served.url).request("POST", "/v1/classify", {"texts": TEXTS[:1]},
                                                  headers={"X-Request-ID": "quiet-1"})
        assert status == 200
        time.sleep(0.2)  # where the access log line would follow the response
        assert not [line for line in served.log if "quiet-1" in line]
    finally:
        served.stop()


def test_schema_fuzzing_yields_no_5xx(server):
    """Every operation of /openapi.json, bounded examples each (schemathesis strategies, driven by hypothesis)."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def check(case):
            response = case.call(timeout=30)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")

        check()
    assert not failures, failures[:5]


def test_every_failed_inference_request_is_counted_by_model_and_status(server):
    client = Client(server.url)
    before = client.request("GET", "/metrics")[2].decode()
    mistakes = [  # (path, body, the model label it is counted under, status)
        ("/v1/classify", {"texts": [1]}, "", 400),  # pydantic refuses it before a model is resolved
        ("/v1/classify", {"texts": ["a"], "model": "mt"}, "mt", 400),
        ("/v2/models/clf/infer", _v2([1], datatype="INT32"), "clf", 400),
        ("/v2/models/nope/infer", _v2(["a"]), "", 404),  # unknown names never become labels
    ]
    for path, body, _, status in mistakes:
        assert client.request("POST", path, body)[0] == status
    assert client.request("GET", "/v2/models/clf/versions/2")[0] == 404  # not an inference request
    after = client.request("GET", "/metrics")[2].decode()
    for model, status in {(m, s) for _, _, m, s in mistakes}:
        want = sum(1 for _, _, m, s in mistakes if (m, s) == (model, status))
        labels = {"model": model, "code": str(status)}
        assert (metric(after, "nv_inference_request_failure_total", **labels)
                - metric(before, "nv_inference_request_failure_total", **labels)) == want, labels


def test_head_answers_as_get_without_a_body(server):
    conn = http.client.HTTPConnection(*server.url.removeprefix("http://").split(":"), timeout=10)
    for path in ("/v2/health/ready", "/v2/health/live", "/metrics", "/"):
        conn.request("HEAD", path)
        response = conn.getresponse()
        assert response.status == 200 and response.read() == b"", path
    conn.close()


def test_a_client_that_hangs_up_mid_body_is_logged_499_without_a_traceback(server):
    import socket

    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"X-Request-ID: hangs-up\r\nContent-Length: 100\r\n\r\n{\"texts\": [")
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any('"hangs-up"' in line for line in server.log):
        time.sleep(0.1)
    line = next(json.loads(line) for line in server.log if '"hangs-up"' in line)
    assert line["status"] == 499
    assert not any("Traceback" in line for line in server.log)
    assert Client(server.url).request("GET", "/v2/health/ready")[0] == 200


def test_a_body_that_stalls_is_408_at_the_request_timeout_and_the_server_lives_on(classifier_dir):
    import socket

    served = start_server(classifier_dir, "--request-timeout", "1")
    try:
        host, port = served.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"texts\": [")
            start = time.monotonic()
            answer = b""
            while b"}" not in answer.partition(b"\r\n\r\n")[2]:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
            waited = time.monotonic() - start
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        assert b"connection: close" in head.lower()
        assert json.loads(body) == {"error": "request body not received within 1 s"}
        assert 0.9 <= waited < 5
        assert Client(served.url).request("POST", "/v1/classify", {"texts": ["stocks rally"]})[0] == 200
    finally:
        served.stop()


@pytest.mark.parametrize("path, body", [("/v1/classify", {"texts": ["stocks rally"]}),
                                        ("/v2/models/clf/infer", {"inputs": [{"name": "text", "datatype": "BYTES",
                                                                              "shape": [1], "data": ["stocks"]}]})])
def test_a_client_that_hangs_up_while_its_answer_computes_is_499_not_a_success(classifier_dir, caplog, path, body):
    """A real uvicorn server in this process, its model made slow: the client sends a whole request and
    leaves before the answer. The log and the metrics say 499, not 200 and a success."""
    import asyncio
    import socket

    from onnxpress.runtime.server.models import ServedModel

    real_run = ServedModel.run

    async def slow_run(self, texts, timeout_s, **options):
        await asyncio.sleep(0.6)
        return await real_run(self, texts, timeout_s, **options)

    with caplog.at_level("INFO", logger="onnxpress.access"), _in_process_server(classifier_dir, slow_run) as port:
        deadline = time.monotonic() + 30
        url = f"http://127.0.0.1:{port}"
        raw = json.dumps(body).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"X-Request-ID: left-early\r\nContent-Length: {len(raw)}\r\n\r\n".encode() + raw)
            time.sleep(0.2)  # the request is whole and computing: leave
        while time.monotonic() < deadline and not any("left-early" in r.getMessage() for r in caplog.records):
            time.sleep(0.05)
        line = next(json.loads(r.getMessage()) for r in caplog.records if "left-early" in r.getMessage())
        client = Client(url)
        metrics = client.request("GET", "/metrics")[2].decode()
        assert line["status"] == 499 and line["model"] == "clf"
        assert metric(metrics, "nv_inference_request_failure_total", model="clf", code="499") == 1
        assert metric(metrics, "nv_inference_request_success_total", model="clf") == 0
        assert client.json("POST", "/v1/classify", {"texts": ["team wins"]})[0] == 200  # a client that waits
        metrics = client.request("GET", "/metrics")[2].decode()
        assert metric(metrics, "nv_inference_request_success_total", model="clf") == 1


def test_the_time_a_body_takes_to_arrive_counts_against_the_request_deadline(classifier_dir):
    """One deadline per request: what the model is given is what the body left of --request-timeout."""
    import socket

    from onnxpress.runtime.server.models import ServedModel

    real_run, given = ServedModel.run, []

    async def spy_run(self, texts, timeout_s, **options):
        given.append(timeout_s)
        return await real_run(self, texts, timeout_s, **options)

    with _in_process_server(classifier_dir, spy_run, request_timeout_s=5.0) as port:
        raw = json.dumps({"texts": ["stocks rally"]}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(raw)}\r\n\r\n".encode() + raw[:5])
            time.sleep(1.0)
            sock.sendall(raw[5:])
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    assert len(given) == 1 and 3.0 < given[0] <= 4.05


@contextlib.contextmanager
def _in_process_server(classifier_dir, run, **settings):
    """A real uvicorn server in this thread's process on a free port (yielded), `ServedModel.run`
    replaced by `run` while it serves."""
    import uvicorn

    from onnxpress.runtime.server.app import build_app
    from onnxpress.runtime.server.models import ServedModel
    from onnxpress.runtime.server.settings import ServerSettings

    app = build_app([("clf", classifier_dir)], ServerSettings(**settings), variant="fp32", threads=1)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    real_run = ServedModel.run
    ServedModel.run = run
    try:
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        ServedModel.run = real_run
        server.should_exit = True
        thread.join(30)


def test_a_bug_in_a_route_is_a_json_500_with_the_request_id(classifier_dir, caplog):
    """The one 5xx a user can meet: a defect of the server, answered in JSON and logged with its id."""
    from starlette.testclient import TestClient

    from onnxpress.runtime.server import v1_routes
    from onnxpress.runtime.server.app import build_app
    from onnxpress.runtime.server.settings import ServerSettings

    app = build_app([("clf", classifier_dir)], ServerSettings(), variant="fp32", threads=1)
    original = v1_routes.classify

    async def broken(request, body):
        raise RuntimeError("a defect")

    try:
        v1_routes.classify = broken
        from onnxpress.runtime.server import direct
        routes = direct.ROUTES
        direct.ROUTES = (direct.DirectRoute(routes[0].path, broken, routes[0].body),) + routes[1:]
        with caplog.at_level("ERROR", logger="onnxpress.server"), TestClient(app) as client:
            response = client.post("/v1/classify", json={"texts": ["a"]}, headers={"X-Request-ID": "bug-1"})
            assert client.get("/v2/health/ready").status_code == 200
    finally:
        v1_routes.classify = original
        direct.ROUTES = routes
    assert response.status_code == 500 and response.headers["x-request-id"] == "bug-1"
    assert "bug-1" in response.json()["error"]
    assert any("bug-1" in r.getMessage() and r.exc_info for r in caplog.records)


def test_openapi_documents_the_400_the_server_answers(server):
    status, spec = Client(server.url).json("GET", "/openapi.json")
    assert status == 200 and "HTTPValidationError" not in json.dumps(spec)
    for path in ("/v1/classify", "/v1/translate"):
        responses = spec["paths"][path]["post"]["responses"]
        assert "422" not in responses and responses["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"}
    assert spec["components"]["schemas"]["Error"]["required"] == ["error"]


def test_log_format_json_makes_every_stderr_line_json(classifier_dir):
    import socket

    served = start_server(classifier_dir, "--log-format", "json")
    try:
        client = Client(served.url)
        assert client.request("POST", "/v1/classify", {"texts": TEXTS[:1]}, headers={"X-Request-ID": "j-1"})[0] == 200
        host, port = served.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:  # uvicorn's own warning
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            sock.recv(1024)
    finally:
        served.stop()
    entries = [json.loads(line) for line in served.log if line.strip()]  # raises on any plain-text line
    assert any(e.get("request_id") == "j-1" and e["status"] == 200 for e in entries)
    assert any("serving" in e.get("message", "") for e in entries)
    assert any(e.get("logger", "").startswith("uvicorn") for e in entries)
