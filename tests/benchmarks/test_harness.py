"""The measuring core: statistics, interleaving, thread-budget assertion, environment capture."""
from __future__ import annotations

import time

import numpy as np
import pytest

from onnxpress.benchmarks import harness, roofline


def test_percentiles_in_ms():
    stats = harness.percentiles([0.001 * i for i in range(1, 101)])
    assert stats["n"] == 100
    assert stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p90_ms"] == pytest.approx(90.1)
    assert stats["p99_ms"] == pytest.approx(99.01)
    assert stats["min_ms"] == pytest.approx(1.0) and stats["max_ms"] == pytest.approx(100.0)
    assert harness.percentiles([]) == {"n": 0}


def test_repeat_spread_uses_repeats_of_the_same_input_only():
    # inputs of very different cost but perfectly stable repeats: no noise
    assert harness.repeat_spread([1.0, 10.0, 1.0, 10.0], [0, 1, 0, 1]) == 0.0
    # the same input once 1.0 s, once 1.5 s: (1.5-1.0)/1.25 = 40%
    assert harness.repeat_spread([1.0, 1.5], [7, 7]) == pytest.approx(0.4)
    assert harness.repeat_spread([1.0, 2.0], [0, 1]) is None  # nothing repeated


def test_paired_ratio_and_chunk_spread():
    assert harness.paired_ratio([2.0, 4.0, 6.0], [1.0, 2.0, 3.0]) == pytest.approx(2.0)
    # a drifting machine slows both sides of each pair equally: the ratio stays put
    assert harness.paired_ratio([2.0, 20.0], [1.0, 10.0]) == pytest.approx(2.0)
    assert harness.chunk_spread([100.0, 110.0, 90.0]) == pytest.approx(0.2)
    assert harness.chunk_spread([5.0]) is None


def test_thread_budgets_must_match():
    harness.assert_equal_threads({"a": {"compute": 2}, "b": {"compute": 2}}, 2)
    with pytest.raises(harness.HarnessError, match="b=0"):
        harness.assert_equal_threads({"a": {"compute": 2}, "b": {"compute": 0}}, 2)
    with pytest.raises(harness.HarnessError):
        harness.assert_equal_threads({"a": {"compute": 4}}, 2)


def test_run_interleaved_rotates_and_bounds():
    order: list[tuple[str, int]] = []

    def make(name, cost):
        def call(i):
            order.append((name, i))
            time.sleep(cost)
            return [name, i]
        return call

    calls = {"a": make("a", 0.0), "b": make("b", 0.002), "c": make("c", 0.0)}
    res = harness.run_interleaved(calls, n_inputs=2, warmup=1, min_rounds=3, max_rounds=6, time_budget_s=60,
                                  gap_s=0.0)
    timed = order[3:]  # after one warm-up call each
    assert len(timed) == 18 and all(len(r.seconds) == 6 for r in res.values())
    rounds = [timed[i:i + 3] for i in range(0, 18, 3)]
    # every contender once per round, all on the same input, the first one rotating
    for r, calls_in_round in enumerate(rounds):
        assert sorted(n for n, _ in calls_in_round) == ["a", "b", "c"]
        assert {i for _, i in calls_in_round} == {r % 2}
    assert [rd[0][0] for rd in rounds] == ["a", "b", "c", "a", "b", "c"]
    assert np.median(res["b"].seconds) > np.median(res["a"].seconds)
    assert res["a"].keys == [0, 1, 0, 1, 0, 1] and res["a"].outputs[1] == ["a", 1]
    # the time budget stops early, but never before min_rounds
    res = harness.run_interleaved({"s": lambda i: time.sleep(0.01)}, 1, warmup=0, min_rounds=2, max_rounds=1000,
                                  time_budget_s=0.0, gap_s=0.0)
    assert len(res["s"].seconds) == 2


def test_agreement():
    assert harness.agreement({0: ["x", "y"], 1: ["z"]}, {0: ["x", "n"], 1: ["z"], 2: ["q"]}) == pytest.approx(2 / 3)
    assert harness.agreement({}, {0: ["x"]}) is None


def test_cpu_info_parses_model_and_flags(tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512f avx512_vnni sse\n\n"
                    "processor\t: 1\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512f avx512_vnni sse\n")
    info = harness.cpu_info(str(fake))
    assert info["model"] == "Test CPU 9000"
    assert info["flags"] == ["avx2", "avx512_vnni", "avx512f"]
    assert "amx_int8" in info["flags_missing"] and info["all_flags_count"] == 5


def test_capture_environment_records_versions_and_machine():
    env = harness.capture_environment()
    assert env["cpu"]["logical_cpus"] >= 1 and env["cpu"]["model"]
    assert "numpy" in env["versions"] and "onnxpress" in env["versions"]
    assert env["date_utc"].endswith("Z")


def test_spread_warning(capsys):
    assert harness.warn_spread("x", 0.1) is None
    assert harness.warn_spread("x", None) is None
    msg = harness.warn_spread("cell", 0.6)
    assert "60%" in msg and "cell" in msg and "60%" in capsys.readouterr().err


def test_roofline_gemm_and_model_ops():
    res = roofline.measure_gemm(64, 32, 48, "int8", threads=1, min_runs=3, time_budget_s=0.01)
    assert res["gops"] > 0 and res["runs"] >= 3
    res = roofline.measure_roof(1, [(64, 32, 48)], time_budget_s=0.01)
    assert res["int8"]["gops"] > 0 and res["fp32"]["gops"] > 0
    dims = {"hidden": 384, "layers": 6, "intermediate": 1536}
    # MiniLM-L6 at 128 tokens: 6 x (128 x (8 x 384^2 + 4 x 384 x 1536) + 4 x 128^2 x 384) = 2.87 GOPs (2 x 10.6 M layer weights per token + attention)
    assert roofline.encoder_ops(dims, 1, 128) == pytest.approx(2.869e9, rel=0.001)
    assert roofline.encoder_ops(dims, 4, 64) == pytest.approx(4 * roofline.encoder_ops(dims, 1, 64))
    assert roofline.encoder_config({"hidden_size": 8, "num_hidden_layers": 2, "intermediate_size": 16}) == {
        "hidden": 8, "layers": 2, "intermediate": 16}
    assert roofline.encoder_config({"d_model": 8}) is None


def test_fit_inputs_keeps_repeats_within_budget():
    calls = {"a": lambda i: time.sleep(0.02), "b": lambda i: time.sleep(0.02)}
    # a round costs ~40 ms; 0.2 s affords ~5 rounds -> 2 distinct inputs, each timed at least twice
    res = harness.run_interleaved(calls, n_inputs=32, warmup=1, min_rounds=3, max_rounds=100, time_budget_s=0.2,
                                  gap_s=0.0, fit_inputs=True)
    keys = res["a"].keys
    assert set(keys) <= {0, 1, 2} and len(keys) >= 3
    assert harness.repeat_spread(res["a"].seconds, keys) is not None
    # without fitting, the first inputs of 32 are never repeated in that budget
    res = harness.run_interleaved(calls, n_inputs=32, warmup=1, min_rounds=3, max_rounds=100, time_budget_s=0.2,
                                  gap_s=0.0)
    assert harness.repeat_spread(res["a"].seconds, res["a"].keys) is None


def test_synthetic_texts_have_the_requested_length(tiny_artifact):
    from onnxpress.benchmarks.texts import SharedTokenizer, sample_batches, synthetic_texts

    tok = tiny_artifact / "tokenizer.json"
    texts = synthetic_texts(tok, 24, 10, seed=3)
    shared = SharedTokenizer(tok, 32, ["input_ids", "attention_mask", "token_type_ids"])
    assert list(shared.lengths(texts)) == [24] * 10
    batch = shared.batch(texts[:4])
    assert batch.feeds["input_ids"].shape == (4, 24) and batch.real_tokens == 96
    batches = sample_batches(texts, 4, 5, seed=0)
    assert len(batches) == 5 and all(len(b) == 4 for b in batches)
