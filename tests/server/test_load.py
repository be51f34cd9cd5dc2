"""Concurrency, backpressure and graceful shutdown on real server processes."""
from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from server_fixtures import GERMAN, TEXTS, Client, metric, start_server

CLIENTS = 32
LOAD_SECONDS = 3.0


def _check_classified(body, text, clf) -> None:
    want = clf.predict_proba([text])[0]
    got = body["results"][0]["probabilities"]
    np.testing.assert_allclose([got[label] for label in clf.labels], want, atol=1e-5)


def _single_text_load(url: str, clf) -> tuple[str, str, list[int]]:
    """32 clients sending single texts back to back for LOAD_SECONDS, each answer checked against
    offline `predict_proba`; returns /metrics before and after, and the answers per client."""
    expected = {t: clf.predict_proba([t])[0] for t in TEXTS}
    client = Client(url)
    before = client.request("GET", "/metrics")[2].decode()
    stop = time.monotonic() + LOAD_SECONDS
    failures: list[str] = []
    counts = [0] * CLIENTS

    def worker(k: int) -> None:
        i = k
        while time.monotonic() < stop:
            text = TEXTS[i % len(TEXTS)]
            i += 1
            status, body = client.json("POST", "/v1/classify", {"texts": [text]})
            if status != 200:
                failures.append(f"{status}: {body}")
                continue
            got = body["results"][0]["probabilities"]
            if not np.allclose([got[lab] for lab in clf.labels], expected[text], atol=1e-5):
                failures.append(f"wrong result for {text!r}")
            counts[k] += 1

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(worker, range(CLIENTS)))
    after = client.request("GET", "/metrics")[2].decode()
    assert not failures, failures[:3]
    assert all(counts), "every client got answers"
    return before, after, counts


def test_32_concurrent_single_text_clients(server, offline):
    clf, _ = offline
    before, after, counts = _single_text_load(server.url, clf)
    texts = metric(after, "nv_inference_count_total", model="clf") - metric(before, "nv_inference_count_total",
                                                                            model="clf")
    runs = (metric(after, "nv_inference_exec_count_total", model="clf")
            - metric(before, "nv_inference_exec_count_total", model="clf"))
    assert texts == sum(counts)
    assert texts / runs > 1, f"mean executed batch size {texts / runs:.2f}"
    assert metric(after, "nv_inference_batch_size_count", model="clf") >= runs


def test_two_runs_at_a_time_answer_every_client_correctly(classifier_dir, offline):
    """`--workers 2`: the batcher computes two runs at once, one thread each."""
    clf, _ = offline
    served = start_server(classifier_dir, "--threads", "2", "--workers", "2")
    try:
        _, after, counts = _single_text_load(served.url, clf)
        assert metric(after, "nv_inference_count_total", model="clf") == sum(counts)
    finally:
        assert served.stop() == 0


def test_tiny_queue_answers_503_and_completes_every_accepted_request(classifier_dir, offline):
    _, tr = offline
    served = start_server(classifier_dir, "--max-queue-size", "1", "--max-queue-delay-ms", "0")
    try:
        client = Client(served.url)
        want = {s: t.text for s, t in zip(GERMAN, tr.translate(GERMAN, beam_size=8))}
        results: list[tuple[int, object, dict]] = []

        def send(i: int) -> None:
            text = GERMAN[i % len(GERMAN)]
            status, headers, payload = client.request("POST", "/v1/translate",
                                                      {"texts": [text] * 16, "beam_size": 8})
            results.append((status, (text, payload), headers))

        with ThreadPoolExecutor(24) as pool:
            list(pool.map(send, range(48)))
        statuses = [r[0] for r in results]
        assert set(statuses) <= {200, 503} and statuses.count(503) > 0 and statuses.count(200) > 0
        for status, (text, payload), headers in results:
            if status == 200:
                assert [t["text"] for t in json.loads(payload)["translations"]] == [want[text]] * 16
            else:
                assert headers["retry-after"] == "1" and "overloaded" in json.loads(payload)["error"]
        assert client.request("GET", "/v2/health/ready")[0] == 200
        text = client.request("GET", "/metrics")[2].decode()
        assert metric(text, "nv_inference_request_failure_total", model="mt", code="503") == statuses.count(503)
    finally:
        served.stop()


def test_sigterm_under_load_turns_unready_and_loses_no_accepted_request(classifier_dir, offline):
    clf, _ = offline
    served = start_server(classifier_dir, "--shutdown-grace", "1.0")
    client = Client(served.url)
    outcomes: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(k: int) -> None:
        i = k
        while not stop.is_set():
            text = TEXTS[i % len(TEXTS)]
            i += 1
            try:
                status, body = client.json("POST", "/v1/classify", {"texts": [text] * 8})
            except ConnectionRefusedError:
                outcome = "refused"  # the listener is closed: never accepted
            except Exception as exc:  # noqa: BLE001 - a reset mid-request would be a lost request
                outcome = f"lost: {type(exc).__name__}: {exc}"
            else:
                if status == 200:
                    _check_classified({"results": body["results"][:1]}, text, clf)
                    outcome = "ok"
                elif status == 503 and "shutting down" in body["error"]:
                    outcome = "503"
                else:
                    outcome = f"bad: {status} {body}"
            with lock:
                outcomes.append(outcome)
            if outcome in ("503", "refused"):
                return  # as a load balancer would: no more requests to a server that is going away

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    served.proc.terminate()
    probe = Client(served.url)
    seen_unready = False
    deadline = time.monotonic() + 0.9
    while time.monotonic() < deadline and not seen_unready:
        try:
            seen_unready = probe.request("GET", "/v2/health/ready")[0] == 503
        except OSError:
            break
        time.sleep(0.05)
    assert served.proc.wait(30) == 0
    stop.set()
    for t in threads:
        t.join(30)
    assert seen_unready, "readiness did not turn false during the grace period"
    bad = [o for o in outcomes if o not in ("ok", "503", "refused")]
    assert not bad, bad[:3]
    assert outcomes.count("ok") > 0 and outcomes.count("503") > 0


def test_a_second_sigterm_exits_at_once(classifier_dir):
    """While queued translations drain (seconds of work), a second SIGTERM stops the server at once."""
    served = start_server(classifier_dir)
    long_texts = {"texts": [" ".join(GERMAN * 40)] * 256, "beam_size": 16}  # ~0.5 s each, one at a time
    dropped: list[bool] = []
    clients = [threading.Thread(target=lambda: dropped.append(_dropped(Client(served.url, timeout=60), long_texts)))
               for _ in range(16)]
    for t in clients:
        t.start()
    time.sleep(1.0)
    served.proc.terminate()
    time.sleep(0.5)
    assert served.proc.poll() is None  # still draining
    start = time.monotonic()
    served.proc.terminate()
    assert served.proc.wait(30) in (0, -signal.SIGTERM)
    assert time.monotonic() - start < 3
    for t in clients:
        t.join(60)
    assert any(dropped)  # requests were still in flight: the exit did not wait for them


def test_ctrl_c_twice_exits_130_without_a_traceback(classifier_dir):
    """Ctrl-C in a terminal, then again while draining: a quick exit with 130 and one line, no traceback."""
    served = start_server(classifier_dir)
    client = threading.Thread(target=lambda: _dropped(Client(served.url, timeout=60),
                                                      {"texts": [" ".join(GERMAN * 40)] * 256, "beam_size": 16}))
    client.start()
    time.sleep(1.0)
    served.proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    served.proc.send_signal(signal.SIGINT)
    assert served.proc.wait(30) == -signal.SIGINT  # ended by the signal: a shell shows 130
    client.join(60)
    time.sleep(0.2)  # the stderr reader's last lines
    log = "".join(served.log)
    assert "SIGINT again: exiting without waiting" in log
    assert "Traceback" not in log and "Error" not in log, log[-2000:]


def _dropped(client: Client, body: dict) -> bool:
    try:
        return client.request("POST", "/v1/translate", body)[0] != 200
    except OSError:
        return True
