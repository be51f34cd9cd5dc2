"""The Optimum peer quantizes with the configuration Optimum documents for the CPU at hand."""
from __future__ import annotations

import pytest

from onnxpress.benchmarks.contenders.optimum_peer import OptimumORT, recommended_qconfig
from onnxpress.runtime.int8_gemm import read_cpuinfo


@pytest.mark.parametrize(("flags", "qconfig"), [
    ({"avx2", "fma"}, "avx2"),
    ({"avx2", "avx512f", "avx512bw"}, "avx512"),
    ({"avx2", "avx512f", "avx512bw", "avx512_vnni"}, "avx512_vnni"),
    ({"avx512_vnni", "amx_int8"}, "avx512_vnni"),
])
def test_recommended_configuration_follows_the_cpu(flags, qconfig):
    assert recommended_qconfig(flags) == qconfig


def test_each_configuration_has_its_own_cache_folder(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    peer = OptimumORT(tmp_path, 128, tmp_path / "cache", quantize=True, key="k")
    here = recommended_qconfig(read_cpuinfo()[1] or set())
    assert peer.qconfig == here and here in peer.stack
    assert peer.model_dir.name == f"int8-{here}"
