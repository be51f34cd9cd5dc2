"""The server app as a Ray Serve deployment with 2 replicas, driven by an unmodified tritonclient.http."""
from __future__ import annotations

import json
import urllib.request
from collections import Counter

import numpy as np
import pytest
from conftest import TRANSLATOR

httpclient = pytest.importorskip("tritonclient.http")
pytest.importorskip("fastapi")

from onnxpress.runtime import Classifier, Translator  # noqa: E402
from onnxpress.runtime.server.ray_serve import REPLICA_HEADER, ReplicaPlan, start  # noqa: E402
from onnxpress.runtime.server.settings import ServerSettings  # noqa: E402

TEXTS = ["stocks rally as oil prices fall", "team wins the game", "new software for the phone",
         "space science research", "war and peace talks in the first week of the year"]
GERMAN = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Park."]


@pytest.fixture(scope="module")
def served(ray_cluster, classifier_artifact):
    from ray import serve

    plan = ReplicaPlan(models=[("clf", str(classifier_artifact)), ("mt", str(TRANSLATOR))],
                       settings=ServerSettings(host="127.0.0.1", port=0),
                       load_options={"variant": "fp32", "device": "cpu", "threads": 1}, replicas=2)
    url = start(plan)
    yield url
    serve.shutdown()


def texts_input(texts):
    inp = httpclient.InferInput("text", [len(texts)], "BYTES")
    inp.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=object))
    return inp


def test_two_replicas_answer_tritonclient_like_the_local_models(served, classifier_artifact):
    client = httpclient.InferenceServerClient(served.removeprefix("http://"))
    try:
        assert client.is_server_ready() and client.is_model_ready("clf")
        clf = Classifier.load(classifier_artifact, variant="fp32", device="cpu", threads=1)
        result = client.infer("clf", [texts_input(TEXTS)])
        assert [b.decode() for b in result.as_numpy("label")] == [p.label for p in clf.predict(TEXTS)]
        np.testing.assert_allclose(result.as_numpy("probabilities"), clf.predict_proba(TEXTS), atol=1e-5)
        tr = Translator.load(TRANSLATOR, variant="fp32", device="cpu", threads=1)
        result = client.infer("mt", [texts_input(GERMAN)], parameters={"beam_size": 2})
        assert [b.decode() for b in result.as_numpy("translation")] == [t.text for t in tr.translate(GERMAN, 2)]
    finally:
        client.close()


def test_requests_are_spread_over_both_replicas(served):
    answered_by: Counter[str] = Counter()
    body = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [TEXTS[0]]}]})
    for _ in range(40):
        req = urllib.request.Request(served + "/v2/models/clf/infer", data=body.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
            answered_by[resp.headers[REPLICA_HEADER]] += 1
    assert len(answered_by) == 2, answered_by
    assert min(answered_by.values()) >= 5, answered_by
    # each replica's own metrics count what it answered (scraping reaches whichever replica Serve picks)
    counts: dict[str, float] = {}
    for _ in range(40):
        with urllib.request.urlopen(served + "/metrics", timeout=30) as resp:
            text = resp.read().decode()
            replica = resp.headers[REPLICA_HEADER]
        counts[replica] = sum(float(line.split()[-1]) for line in text.splitlines()
                              if line.startswith('nv_inference_request_success_total{model="clf"}'))
        if len(counts) == 2:
            break
    assert counts.keys() == answered_by.keys()
    assert all(counts[r] >= answered_by[r] for r in counts), (counts, answered_by)
