"""The Optimum peer quantizes with the configuration Optimum documents for the CPU at hand."""
from __future__ import annotations

import platform

import pytest

from onnxpress.benchmarks.contenders.optimum_peer import OptimumORT, recommended_qconfig
from onnxpress.runtime.int8_gemm import read_cpuinfo


@pytest.mark.parametrize(("machine", "flags", "qconfig"), [
    ("x86_64", {"avx2", "fma"}, "avx2"),
    ("x86_64", {"avx2", "avx512f", "avx512bw"}, "avx512"),
    ("x86_64", {"avx2", "avx512f", "avx512bw", "avx512_vnni"}, "avx512_vnni"),
    ("x86_64", {"avx2", "avx_vnni"}, "avx512_vnni"),
    ("x86_64", {"avx512_vnni", "amx_int8"}, "avx512_vnni"),
    ("aarch64", {"asimd"}, "arm64"),
])
def test_recommended_configuration_follows_the_cpu(machine, flags, qconfig):
    assert recommended_qconfig(machine, flags) == qconfig


def test_each_configuration_has_its_own_cache_folder(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    peer = OptimumORT(tmp_path, 128, tmp_path / "cache", quantize=True, key="k")
    here = recommended_qconfig(platform.machine(), read_cpuinfo()[1] or set())
    assert peer.qconfig == here and here in peer.stack
    assert peer.model_dir.name == f"int8-{here}"
