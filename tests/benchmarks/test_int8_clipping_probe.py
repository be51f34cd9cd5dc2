"""The int8 clipping probe: it counts overflowing pairs right and runs every variant of an artifact."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
from int8_graphs import K, M, clipping_gemm  # noqa: E402

from onnxpress.benchmarks.probes import int8_clipping  # noqa: E402
from onnxpress.training import ag_news, multi30k  # noqa: E402
from onnxpress.training.data_root import find_dataset  # noqa: E402


def needs(data) -> pytest.MarkDecorator:
    return pytest.mark.skipif(find_dataset(None, data.SUBDIR, data.MARKER) is None, reason=f"no {data.SUBDIR} data")


def test_pair_overflow_counts_the_pairs_past_int16(tmp_path):
    path = str(clipping_gemm(tmp_path / "gemm.onnx"))
    assert int8_clipping.pair_overflow(path, [{"A": np.full((M, K), 255, np.uint8)}]) == {"": 1.0}
    assert int8_clipping.pair_overflow(path, [{"A": np.full((M, K), 128, np.uint8)}]) == {"": 0.0}  # 32,512 fits
    half = np.full((M, K), 128, np.uint8)
    half[: M // 2] = 255
    assert int8_clipping.pair_overflow(path, [{"A": half}]) == {"": 0.5}


@needs(ag_news)
def test_the_probe_runs_fp32_and_both_int8_kernels(tiny_artifact, capsys):
    int8_clipping.main([str(tiny_artifact), "--rows", "24", "--threads", "1"])
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["variant"] for r in rows] == ["fp32", "int8", "int8-clipping"]
    assert rows[0]["unlike_fp32"] == 0 and rows[0]["max_dp_vs_fp32"] == 0.0
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["texts_per_s"] > 0 for r in rows)
    assert "this CPU clips u8 x s8 pair sums: " in out


@needs(multi30k)
def test_the_probe_runs_a_translator_and_counts_its_decoder_matmuls(tmp_path, capsys):
    pytest.importorskip("sacrebleu")
    from toy_translator import build_toy_artifact

    _, artifact = build_toy_artifact(tmp_path, variants=("fp32", "int8"))
    int8_clipping.main([str(artifact), "--rows", "8"])
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["variant"] for r in rows] == ["fp32", "int8", "int8-clipping"]
    assert rows[0]["equal_to_fp32_beam1"] == rows[0]["equal_to_fp32_beam4"] == 1.0
    shares = [float(line.split()[0]) for line in out.split("per int8 matmul:")[1].splitlines() if line.strip()]
    assert shares and all(0.0 <= s <= 1.0 for s in shares)
