"""KServe v2 / Triton inference bodies: JSON tensors and Triton's binary tensor data extension.

A binary request is a JSON header followed by raw tensor bytes; the header's length is in the
`Inference-Header-Content-Length` HTTP header and each binary input says its size in
`parameters.binary_data_size`. BYTES elements travel as a 4-byte little-endian length followed by
the bytes. Responses use the same layout for the outputs asked for in binary (per output
`parameters.binary_data`, or for all outputs `parameters.binary_data_output`, which `tritonclient`
sets when it names no outputs).
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onnxpress.runtime.server.errors import InvalidInput
from onnxpress.runtime.server.inputs import parse_json

HEADER_LENGTH = "Inference-Header-Content-Length"
NUMPY_DTYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}


@dataclass
class Tensor:
    """One named tensor: numbers as a numpy array, BYTES as a flat list of bytes."""

    name: str
    datatype: str
    shape: list[int]
    data: Any

    @property
    def count(self) -> int:
        return math.prod(self.shape)


@dataclass
class InferRequest:
    id: str | None
    inputs: dict[str, Tensor]
    outputs: dict[str, bool | None] | None  # requested output -> binary? (None: not said)
    parameters: dict[str, Any] = field(default_factory=dict)

    def binary(self, output: str) -> bool:
        asked = (self.outputs or {}).get(output)
        return self.parameters.get("binary_data_output") is True if asked is None else asked


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return value


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def split_bytes(raw: bytes, what: str) -> list[bytes]:
    """Elements of a binary BYTES tensor (length-prefixed)."""
    items, pos = [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise InvalidInput(f"{what}: truncated BYTES element length at byte {pos}")
        (n,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + n > len(raw):
            raise InvalidInput(f"{what}: BYTES element of {n} bytes runs past the end of its data")
        items.append(raw[pos : pos + n])
        pos += n
    return items


def join_bytes(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def _input(spec: Any, index: int, binary: memoryview, pos: int) -> tuple[Tensor, int]:
    spec = _object(spec, f"inputs[{index}]")
    name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
    what = f"input {name!r}" if isinstance(name, str) else f"inputs[{index}]"
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{what} needs a string 'name'")
    if datatype != "BYTES" and datatype not in NUMPY_DTYPES:
        raise InvalidInput(f"{what} has an unknown datatype {datatype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise InvalidInput(f"{what} needs a 'shape' of non-negative integers")
    params = _object(spec.get("parameters") or {}, f"{what} parameters")
    size = params.get("binary_data_size")
    tensor = Tensor(name, datatype, shape, None)
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInput(f"{what}: binary_data_size must be a byte count (got {size!r})")
        if pos + size > len(binary):
            raise InvalidInput(f"{what}: binary_data_size {size} does not fit the {len(binary) - pos} bytes of "
                               f"binary data left after the JSON header and the inputs before it")
        raw = bytes(binary[pos : pos + size])
        pos += size
        if datatype == "BYTES":
            tensor.data = split_bytes(raw, what)
        else:
            dtype = np.dtype(NUMPY_DTYPES[datatype]).newbyteorder("<")
            if size % dtype.itemsize:
                raise InvalidInput(f"{what}: {size} bytes is not a whole number of {datatype}")
            tensor.data = np.frombuffer(raw, dtype=dtype)
    elif "data" in spec:
        if not isinstance(spec["data"], list):
            raise InvalidInput(f"{what}: 'data' must be a JSON array (got {type(spec['data']).__name__})")
        values = _flatten(spec["data"])
        if datatype == "BYTES":
            if not all(isinstance(v, str) for v in values):
                raise InvalidInput(f"{what}: BYTES data must be strings")
            tensor.data = [v.encode("utf-8", "surrogatepass") for v in values]
        else:
            try:
                tensor.data = np.asarray(values, dtype=NUMPY_DTYPES[datatype])
            except (TypeError, ValueError, OverflowError):
                raise InvalidInput(f"{what}: data is not {datatype}") from None
    else:
        raise InvalidInput(f"{what} has neither 'data' nor parameters.binary_data_size")
    if len(tensor.data) != tensor.count:
        raise InvalidInput(f"{what}: shape {shape} holds {tensor.count} elements but {len(tensor.data)} were sent")
    return tensor, pos


def decode_request(body: bytes, header_length: str | None) -> InferRequest:
    """Parse a v2 infer body (JSON, or JSON header + binary tensors); InvalidInput says what is wrong."""
    if header_length is None:
        split = len(body)
    else:
        if not (header_length.isascii() and header_length.isdigit()):
            raise InvalidInput(f"{HEADER_LENGTH} must be a byte count (got {header_length!r})")
        split = int(header_length)
        if split > len(body):
            raise InvalidInput(f"{HEADER_LENGTH} {split} is outside the {len(body)}-byte body")
    header = _object(parse_json(memoryview(body)[:split], "the JSON header"), "the request")
    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("the request needs a non-empty 'inputs' list")
    binary, pos, inputs = memoryview(body)[split:], 0, {}
    for i, spec in enumerate(raw_inputs):
        tensor, pos = _input(spec, i, binary, pos)
        if tensor.name in inputs:
            raise InvalidInput(f"input {tensor.name!r} is given twice")
        inputs[tensor.name] = tensor
    if pos != len(binary):
        raise InvalidInput(f"{len(binary) - pos} bytes of binary data belong to no input")
    outputs = None
    if "outputs" in header:
        if not isinstance(header["outputs"], list):
            raise InvalidInput("'outputs' must be a list")
        outputs = {}
        for i, spec in enumerate(header["outputs"]):
            spec = _object(spec, f"outputs[{i}]")
            if not isinstance(spec.get("name"), str):
                raise InvalidInput(f"outputs[{i}] needs a string 'name'")
            asked = _object(spec.get("parameters") or {}, f"outputs[{i}] parameters").get("binary_data")
            outputs[spec["name"]] = _flag(asked, f"outputs[{i}].parameters.binary_data")
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    parameters = _object(header.get("parameters") or {}, "parameters")
    _flag(parameters.get("binary_data_output"), "parameters.binary_data_output")
    return InferRequest(request_id, inputs, outputs, parameters)


def _flag(value: Any, what: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(f"{what} must be true or false (got {value!r})")
    return value


def encode_response(model: str, request: InferRequest, outputs: list[Tensor]) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary outputs follow it."""
    described, blobs = [], []
    for tensor in outputs:
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
        if request.binary(tensor.name):
            blob = (join_bytes(tensor.data) if tensor.datatype == "BYTES"
                    else np.ascontiguousarray(tensor.data, dtype=np.dtype(NUMPY_DTYPES[tensor.datatype])
                                              .newbyteorder("<")).tobytes())
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif tensor.datatype == "BYTES":
            entry["data"] = [b.decode("utf-8") for b in tensor.data]
        else:
            entry["data"] = np.asarray(tensor.data).ravel().tolist()
        described.append(entry)
    header: dict[str, Any] = {"model_name": model, "model_version": "1", "outputs": described}
    if request.id is not None:
        header["id"] = request.id
    text = json.dumps(header).encode()
    if not blobs:
        return text, None
    return text + b"".join(blobs), len(text)
