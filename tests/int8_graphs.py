"""A one-GEMM int8 graph whose every adjacent pair of products overflows int16 (the VPMADDUBSW case)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

M, K, N = 8, 64, 16


def clipping_gemm(path: Path) -> Path:
    """Y = A (uint8, all 255) x B (int8, all 127): every adjacent pair of products sums to 64,770,
    twice what VPMADDUBSW's int16 holds."""
    a = helper.make_tensor_value_info("A", TensorProto.UINT8, [M, K])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [M, N])
    inits = [numpy_helper.from_array(np.full((K, N), 127, np.int8), "B"),
             numpy_helper.from_array(np.array(1.0, np.float32), "a_scale"),
             numpy_helper.from_array(np.ones(N, np.float32), "b_scale")]
    node = helper.make_node("MatMulIntegerToFloat", ["A", "B", "a_scale", "b_scale"], ["Y"], domain="com.microsoft")
    graph = helper.make_graph([node], "clip", [a], [y], initializer=inits)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=9)
    onnx.save(model, str(path))
    return path
