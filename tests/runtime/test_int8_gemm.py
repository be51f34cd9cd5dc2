"""Exact int8 GEMMs on CPUs whose u8 x s8 kernel clips pair sums (runtime/int8_gemm.py)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
from int8_graphs import K, M, N, clipping_gemm  # noqa: E402

from onnxpress.runtime.engine import Engine, EngineConfig  # noqa: E402
from onnxpress.runtime.int8_gemm import (  # noqa: E402
    PRECISE_INT8_ENTRY,
    precise_int8_entries,
    read_cpuinfo,
    saturating_cpu,
    u8s8_saturates,
)


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


def test_int8_gemms_are_exact_on_this_cpu(tmp_path):
    """The runtime's sessions give the exact integer product here, whatever the CPU."""
    engine = Engine(clipping_gemm(tmp_path / "gemm.onnx"), EngineConfig(threads=1))
    (y,) = engine.run({"A": np.full((M, K), 255, np.uint8)})
    assert np.array_equal(y, np.full((M, N), 255 * 127 * K, np.float32))
    if saturating_cpu():  # what ONNX Runtime received
        assert engine.options.get_session_config_entry(PRECISE_INT8_ENTRY) == "1"


@pytest.mark.skipif(not saturating_cpu(), reason="this CPU has VNNI/AMX: its int8 kernel never clips")
def test_without_the_entry_this_cpu_clips(tmp_path):
    """What the entry prevents, shown on this CPU: the fast kernel loses half of every product."""
    engine = Engine(clipping_gemm(tmp_path / "gemm.onnx"),
                    EngineConfig(threads=1, session_config={PRECISE_INT8_ENTRY: "0"}))
    (y,) = engine.run({"A": np.full((M, K), 255, np.uint8)})
    assert (y < 255 * 127 * K).all()
