"""A real `onnxpress serve` process driven by an unmodified `tritonclient.http`, with its defaults."""
from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

from server_fixtures import GERMAN, TEXTS

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def client(server):
    c = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    yield c
    c.close()


def _texts_input(texts, binary=True):
    inp = httpclient.InferInput("text", [len(texts)], "BYTES")
    inp.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=object), binary_data=binary)
    return inp


def test_health_and_metadata(client, offline):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("clf") and client.is_model_ready("mt")
    assert not client.is_model_ready("nope")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("clf")
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [o["name"] for o in meta["outputs"]] == ["label", "score", "probabilities"]
    assert meta["parameters"]["labels"] == offline[0].labels
    for name in ("../clf", "clf$", "x" * 500):
        with pytest.raises(InferenceServerException, match="404"):
            client.get_model_metadata(name)


@pytest.mark.parametrize("binary", [True, False])
def test_classifier_infer_equals_offline_predict(client, offline, binary):
    clf, _ = offline
    outputs = None if binary else [httpclient.InferRequestedOutput(n, binary_data=False)
                                   for n in ("label", "score", "probabilities")]
    result = client.infer("clf", [_texts_input(TEXTS, binary)], outputs=outputs)
    predictions = clf.predict(TEXTS)
    assert [_text(b) for b in result.as_numpy("label")] == [p.label for p in predictions]
    np.testing.assert_allclose(result.as_numpy("score"), [p.score for p in predictions], atol=1e-5)
    np.testing.assert_allclose(result.as_numpy("probabilities"), clf.predict_proba(TEXTS), atol=1e-5)


def test_translator_infer_equals_offline_translate(client, offline):
    _, tr = offline
    result = client.infer("mt", [_texts_input(GERMAN)], parameters={"beam_size": 2},
                          outputs=[httpclient.InferRequestedOutput("translation"),
                                   httpclient.InferRequestedOutput("attention")])
    want = tr.translate(GERMAN, beam_size=2, return_attention=True)
    assert [b.decode() for b in result.as_numpy("translation")] == [t.text for t in want]
    attention = result.as_numpy("attention")
    assert attention.shape[0] == len(GERMAN)
    first = want[0].attention
    np.testing.assert_allclose(attention[0, : first.shape[0], : first.shape[1]], first, atol=1e-5)
    assert result.as_numpy("score") is None  # only the outputs asked for


def test_v2_errors_are_json_with_the_right_status(client, server):
    with pytest.raises(InferenceServerException, match="must be BYTES"):
        inp = httpclient.InferInput("text", [1], "INT32")
        inp.set_data_from_numpy(np.array([1], np.int32))
        client.infer("clf", [inp])
    with pytest.raises(InferenceServerException, match="beam_size"):
        client.infer("mt", [_texts_input(GERMAN[:1])], parameters={"beam_size": -1})
    req = urllib.request.Request(server.url + "/v2/models/clf/infer", data=b'{"inputs": 3}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 400 and "inputs" in json.loads(info.value.read())["error"]


def test_a_request_past_its_deadline_gets_504_and_the_server_stays_healthy(client, server, offline):
    body = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [64],
                                   "data": [GERMAN[0]] * 64}], "parameters": {"timeout": 1}}).encode()
    req = urllib.request.Request(server.url + "/v2/models/mt/infer", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 504 and "deadline" in json.loads(info.value.read())["error"]
    assert client.is_server_ready()
    result = client.infer("clf", [_texts_input(TEXTS[:1])])
    assert result.as_numpy("label")[0].decode() == offline[0].predict(TEXTS[:1])[0].label


def _text(item) -> str:
    """A BYTES element as tritonclient returns it: bytes from binary outputs, str from JSON ones."""
    return item.decode() if isinstance(item, bytes) else str(item)
