"""The open-loop load generator against a real local HTTP server with a known capacity."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from onnxpress.benchmarks import loadgen
from onnxpress.cli import main
from onnxpress.errors import UserError

SERVICE_S = 0.02  # one request at a time, 20 ms each: capacity 50 req/s


@pytest.fixture
def server():
    lock = threading.Lock()
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:  # a single worker: requests queue behind each other
                seen.append(body)
                time.sleep(SERVICE_S)
            out = json.dumps({"labels": ["x"] * len(body["texts"])}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1/classify", seen
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000/x", "http://example.com/", "https://127.0.0.1/",
                                 "http://0.0.0.0:80/", "ftp://localhost/"])
def test_refuses_non_loopback(url):
    with pytest.raises(UserError):
        loadgen.check_loopback(url)


def test_accepts_loopback():
    assert loadgen.check_loopback("http://127.0.0.1:8000/v1/x?a=1") == ("127.0.0.1", 8000, "/v1/x?a=1")
    assert loadgen.check_loopback("http://localhost/")[0] == "localhost"
    assert loadgen.check_loopback("http://[::1]:9/")[1] == 9


def test_cli_refuses_remote_url(capsys):
    assert main(["bench-server", "http://192.168.1.1:8000/"]) == 2
    assert "loopback" in capsys.readouterr().err


def test_poisson_arrivals_are_bounded_and_at_rate():
    t = loadgen.poisson_arrivals(100.0, max_requests=5000, max_seconds=20.0, seed=1)
    assert len(t) <= 5000 and t[-1] < 20.0 and np.all(np.diff(t) >= 0)
    assert 80 < len(t) / t[-1] < 120  # ~100/s
    assert len(loadgen.poisson_arrivals(1000.0, max_requests=50, max_seconds=100.0)) == 50
    assert len(loadgen.poisson_arrivals(10.0, max_requests=1000, max_seconds=1.0)) < 40


def test_sweep_finds_the_knee(server):
    url, seen = server
    body = loadgen.json_body(["a text", "another one"], per_request=2)
    # a p99 limit far above the 20 ms service time: a busy shared machine must not move the knee
    result = loadgen.sweep(url, [5, 10, 200], body, max_requests=60, max_seconds=1.5, pause_s=0.2,
                           max_in_flight=64, timeout_s=10, knee_p99_ms=400)
    points = result["points"]
    assert [p["offered_rps"] for p in points] == [5, 10, 200]
    low = points[0]
    assert low["errors"] == 0 and low["completed"] == low["sent"] > 0
    # at low load a request takes about the service time
    assert SERVICE_S * 1e3 * 0.8 < low["latency"]["p50_ms"] < 250
    # 200/s offered to a 50/s server: the queue grows, so latency explodes and throughput caps
    assert result["knee"]["knee_rps"] == 200
    assert result["knee"]["max_sustained_rps"] == 10
    assert points[2]["achieved_rps"] < 100
    assert seen and all(len(b["texts"]) == 2 for b in seen)
    md = loadgen.markdown(result)
    assert "| 200 |" in md and "Knee: 200" in md


def test_errors_are_counted_not_raised():
    # nothing listens on this port (bound, then closed): every request fails
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    point = loadgen.run_rate(f"http://127.0.0.1:{port}/", 50, loadgen.json_body(["x"]), max_requests=5,
                             max_seconds=1.0, timeout_s=2)
    assert point.sent == 5 and point.completed == 0 and point.errors == 5
    assert loadgen.find_knee([point])["knee_rps"] == 50


def test_closed_loop_reaches_the_capacity_and_counts_its_own_cpu(server):
    url, seen = server
    point = loadgen.run_closed(url, 4, loadgen.json_body(["a"]), max_seconds=1.0, timeout_s=10)
    assert point.errors == 0 and point.completed == point.sent > 10
    # one request at a time, 20 ms each: 4 clients cannot beat ~50/s
    assert 20 < point.achieved_rps < 60
    assert point.latency["p50_ms"] > SERVICE_S * 1e3  # clients queue behind each other
    assert 0 <= point.client_cpu_share < 1


@pytest.mark.parametrize("framing", ["close", "chunked"])
def test_responses_without_content_length_are_read_whole(framing):
    """A body that ends with the connection (and a new connection per request), or comes in chunks."""
    answers: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0" if framing == "close" else "HTTP/1.1"

        def do_POST(self):  # noqa: N802 - http.server API
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            if framing == "chunked":
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n")
            else:
                self.end_headers()
                self.wfile.write(b"hello, world")
            answers.append(b"hello, world")

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        point = loadgen.run_closed(url, 2, loadgen.json_body(["a"]), max_requests=20, max_seconds=5.0, timeout_s=5)

        async def one() -> tuple[int, bytes]:
            conn = loadgen._Connection("127.0.0.1", httpd.server_address[1])
            try:
                return await conn.post(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            finally:
                conn.close()

        assert asyncio.run(one()) == (200, b"hello, world")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert point.errors == 0, point.error_examples
    assert point.completed == 20 and len(answers) == 21


def test_knee_is_the_first_rate_with_p99_over_the_limit():
    def point(rate, p99):
        return loadgen.LoadPoint(offered_rps=rate, scheduled=100, sent=100, completed=100, errors=0, skipped=0,
                                 duration_s=100 / rate, achieved_rps=rate, latency={"p99_ms": p99})

    knee = loadgen.find_knee([point(10, 5.0), point(20, 60.0), point(40, 130.0)])
    assert knee["knee_rps"] == 40 and knee["max_sustained_rps"] == 20 and "100 ms" in knee["reason"]
    assert loadgen.find_knee([point(10, 5.0), point(20, 60.0)], p99_ms=50)["knee_rps"] == 20


def test_v2_body_is_a_bytes_tensor():
    body = json.loads(loadgen.v2_body(["a", "b", "c"], per_request=2)(1))
    assert body == {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["c", "a"]}]}


def test_offline_reference_times_batch1_back_to_back_and_after_idle(tiny_artifact):
    from onnxpress.commands.bench_server import offline_reference

    texts = ["a short text", "another text about markets", "sports news today"] * 20
    ref = offline_reference(str(tiny_artifact), texts, threads=1, max_seconds=1.0, idle_gap_s=0.01)
    assert ref["texts"] == 60 and ref["texts_per_s"] > 0
    assert ref["batch1_p50_ms"] > 0 and ref["batch1_idle_p50_ms"] > 0 and ref["idle_gap_ms"] == 10.0
    md = loadgen.markdown({"url": "u", "points": [], "knee": loadgen.find_knee([]), "offline": ref})
    assert f"{ref['batch1_idle_p50_ms']:.2f} ms after 10 ms idle" in md
    assert "idle" not in loadgen.markdown({"url": "u", "points": [], "knee": loadgen.find_knee([]),
                                           "offline": offline_reference(str(tiny_artifact), texts, threads=1,
                                                                        max_seconds=0.2)})


def test_of_offline_is_against_the_mean_of_the_references_before_and_after():
    """A host whose speed drifts during the load tests moves both sides of the 'of offline' ratio."""
    def ref(rate):
        return {"threads": 2, "texts_per_s": rate, "batch1_p50_ms": 10.0}

    closed = [{"concurrency": 32, "completed": 100, "errors": 0, "achieved_rps": 90.0, "latency": {},
               "client_cpu_share": 0.01}]
    base = {"url": "u", "points": [], "knee": loadgen.find_knee([]), "closed": closed}
    md = loadgen.markdown({**base, "offline": ref(100.0), "offline_after": ref(80.0)})
    assert "After the load tests, offline `predict`" in md and "of their mean, 90 texts/s" in md
    assert "| 32 | 100 | 0 | 90.0 | 90 | 100% |" in md
    assert "| 90% |" in loadgen.markdown({**base, "offline": ref(100.0)})  # one reference: against it alone


def test_bench_server_measures_the_offline_reference_before_and_after_the_load(server, tiny_artifact, texts_csv,
                                                                                tmp_path, capsys):
    url, _ = server
    assert main(["bench-server", url, "--artifact", str(tiny_artifact), "--data", str(texts_csv), "--threads", "1",
                 "--rates", "5", "--duration", "1", "--closed", "2", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "server_results.json").read_text())
    before, after = result["offline"], result["offline_after"]
    assert before["texts_per_s"] > 0 and after["texts_per_s"] > 0 and after["batch1_p50_ms"] > 0
    mean = (before["texts_per_s"] + after["texts_per_s"]) / 2
    closed = result["closed"][0]
    assert f"| {closed['concurrency']} | {closed['completed']} |" in capsys.readouterr().out
    assert f"{closed['achieved_rps'] / mean:.0%} |" in (tmp_path / "server_results.md").read_text()
