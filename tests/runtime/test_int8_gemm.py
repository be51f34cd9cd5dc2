"""Exact int8 GEMMs on CPUs whose u8 x s8 kernel clips pair sums (runtime/int8_gemm.py)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxpress.runtime.engine import Engine, EngineConfig
from onnxpress.runtime.int8_gemm import (
    PRECISE_INT8_ENTRY,
    precise_int8_entries,
    read_cpuinfo,
    saturating_cpu,
    u8s8_saturates,
)

M, K, N = 8, 64, 16


def test_cpuinfo_gives_the_model_and_the_first_cpus_flags(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx avx2\n\n"
                    "processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx avx2 avx512_vnni\n")
    assert read_cpuinfo(path) == ("AMD EPYC", {"fpu", "avx", "avx2"})
    assert read_cpuinfo(tmp_path / "absent") == (None, None)


@pytest.mark.parametrize(("machine", "flags", "saturates"), [
    ("x86_64", {"avx2", "fma"}, True),                       # AVX2 only: VPMADDUBSW
    ("x86_64", {"avx2", "avx512f", "avx512bw"}, True),       # AVX-512 without VNNI
    ("x86_64", {"avx2", "avx512f", "avx512_vnni"}, False),
    ("x86_64", {"avx2", "avx_vnni"}, False),
    ("x86_64", {"avx512_vnni", "amx_int8"}, False),
    ("AMD64", None, True),                                   # flags unknown: stay exact
    ("aarch64", {"asimd"}, False),
    ("arm64", None, False),
])
def test_which_cpus_clip(machine, flags, saturates):
    assert u8s8_saturates(machine, flags) is saturates


def test_the_entry_is_set_only_where_the_kernel_clips():
    assert precise_int8_entries(True) == {PRECISE_INT8_ENTRY: "1"}
    assert precise_int8_entries(False) == {}


def clipping_gemm(path):
    """Y = A (uint8, all 255) x B (int8, all 127): every adjacent pair of products sums to 64,770,
    twice what VPMADDUBSW's int16 holds."""
    a = helper.make_tensor_value_info("A", TensorProto.UINT8, [M, K])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [M, N])
    inits = [numpy_helper.from_array(np.full((K, N), 127, np.int8), "B"),
             numpy_helper.from_array(np.array(1.0, np.float32), "a_scale"),
             numpy_helper.from_array(np.ones(N, np.float32), "b_scale")]
    node = helper.make_node("MatMulIntegerToFloat", ["A", "B", "a_scale", "b_scale"], ["Y"], domain="com.microsoft")
    graph = helper.make_graph([node], "clip", [a], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
                              ir_version=9)
    onnx.save(model, str(path))
    return path


def test_int8_gemms_are_exact_on_this_cpu(tmp_path):
    """The runtime's sessions give the exact integer product here, whatever the CPU."""
    engine = Engine(clipping_gemm(tmp_path / "gemm.onnx"), EngineConfig(threads=1))
    (y,) = engine.run({"A": np.full((M, K), 255, np.uint8)})
    assert np.array_equal(y, np.full((M, N), 255 * 127 * K, np.float32))
    assert engine.describe()["session_config"] == precise_int8_entries()


@pytest.mark.skipif(not saturating_cpu(), reason="this CPU has VNNI/AMX: its int8 kernel never clips")
def test_without_the_entry_this_cpu_clips(tmp_path):
    """What the entry prevents, shown on this CPU: the fast kernel loses half of every product."""
    engine = Engine(clipping_gemm(tmp_path / "gemm.onnx"),
                    EngineConfig(threads=1, session_config={PRECISE_INT8_ENTRY: "0"}))
    (y,) = engine.run({"A": np.full((M, K), 255, np.uint8)})
    assert (y < 255 * 127 * K).all()
