"""KServe v2 bodies: JSON and Triton's binary tensor data, checked against tritonclient's own encoder."""
from __future__ import annotations

import json

import numpy as np
import pytest

from onnxpress.runtime.server.codec import Tensor, decode_request, encode_response, join_bytes, split_bytes
from onnxpress.runtime.server.errors import InvalidInput

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.http import _utils as triton_utils  # noqa: E402
from tritonclient.http._infer_result import InferResult  # noqa: E402


def _triton_body(texts, binary):
    inp = httpclient.InferInput("text", [len(texts)], "BYTES")
    inp.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=object), binary_data=binary)
    return triton_utils._get_inference_request([inp], "7", None, 0, False, False, 0, None, None)


@pytest.mark.parametrize("binary", [True, False])
def test_decodes_what_tritonclient_sends(binary):
    texts = ["ein Mann", "", "Zwei Hunde spielen im Park."]
    body, header_length = _triton_body(texts, binary)
    assert (header_length is not None) == binary
    req = decode_request(body, None if header_length is None else str(header_length))
    assert [b.decode() for b in req.inputs["text"].data] == texts
    assert req.id == "7" and req.binary("label")  # no outputs named: all binary


def test_tritonclient_reads_binary_and_json_outputs():
    req = decode_request(json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]}],
                                     "outputs": [{"name": "label", "parameters": {"binary_data": True}},
                                                 {"name": "probabilities"}]}).encode(), None)
    probs = np.array([[0.25, 0.75], [0.5, 0.5]], np.float32)
    outputs = [Tensor("label", "BYTES", [2], [b"x", "ü".encode()]), Tensor("probabilities", "FP32", [2, 2], probs)]
    body, header_length = encode_response("clf", req, outputs)
    result = InferResult.from_response_body(body, header_length=header_length)
    assert result.as_numpy("label").tolist() == [b"x", "ü".encode()]
    np.testing.assert_array_equal(result.as_numpy("probabilities"), probs)
    body, header_length = encode_response("clf", decode_request(b'{"inputs": [{"name": "text", "datatype": "BYTES", '
                                                                b'"shape": [1], "data": ["a"]}]}', None), outputs)
    assert header_length is None and json.loads(body)["outputs"][1]["data"] == [0.25, 0.75, 0.5, 0.5]


def test_bytes_elements_round_trip():
    items = [b"", b"abc", "ü".encode() * 1000]
    assert split_bytes(join_bytes(items), "t") == items


@pytest.mark.parametrize("body, header, says", [
    (b"{", None, "not valid JSON"),
    (b"[]", None, "JSON object"),
    (b'{"inputs": []}', None, "non-empty 'inputs'"),
    (b'{"inputs": [{"name": "text", "datatype": "STRING", "shape": [1], "data": ["a"]}]}', None, "datatype"),
    (b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a"]}]}', None, "2 elements"),
    (b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1], "data": ["a"]}]}', None, "shape"),
    (b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [1]}]}', None, "strings"),
    (b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1]}]}', None, "neither"),
    (b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": "a"}]}', None, "must be a JSON array"),
    ((b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], '
      b'"parameters": {"binary_data_size": -5}}]}', b"\x01\x00\x00\x00a"), "split", "must be a byte count"),
    ((b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], '
      b'"parameters": {"binary_data_size": "5"}}]}', b"\x01\x00\x00\x00a"), "split", "must be a byte count"),
    ((b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], '
      b'"parameters": {"binary_data_size": 9}}]}', b"\x01\x00\x00\x00a"), "split", "does not fit the 5 bytes"),
    ((b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], '
      b'"parameters": {"binary_data_size": 5}}]}', b"\x09\x00\x00\x00a"), "split", "runs past"),
    ((b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}', b"xx"), "split",
     "belong to no"),
    (b'{}', "99", "outside"),
    (b'{}', " 2", "byte count"),
    (b'{}', "+2", "byte count"),
    (b'{}', "1_0", "byte count"),
    (b'{}', "-1", "byte count"),
])
def test_malformed_bodies_say_what_is_wrong(body, header, says):
    if header == "split":  # a JSON header followed by binary data
        header, body = str(len(body[0])), body[0] + body[1]
    with pytest.raises(InvalidInput, match=says):
        decode_request(body, header)
