"""The harness end to end on a tiny model: two contenders, every section, well-formed outputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from onnxpress.benchmarks.report import write_all
from onnxpress.benchmarks.bench_config import BenchConfig
from onnxpress.benchmarks.classifier_bench import run_classifier_bench
from onnxpress.errors import UserError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_config(artifact: Path, out: Path, data: Path, **kw) -> BenchConfig:
    base = dict(artifact=artifact, out=out, against=["torch"], variants=["fp32"], batch_sizes=[1, 4],
                data=str(data), threads=1, latency_budget_s=2.0, throughput_texts=40, throughput_rounds=2,
                invariance_texts=40,
                cold_start=True, cold_start_runs=1, cold_start_workload=8, roofline=True,
                roofline_budget_s=0.05, gap_s=0.0, progress=False)
    base.update(kw)
    return BenchConfig(**base)


@pytest.fixture(scope="module")
def bench_run(tiny_artifact, texts_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_out")
    results = run_classifier_bench(small_config(tiny_artifact, out, texts_csv))
    return results, write_all(results, out)


def test_results_json_is_complete(bench_run):
    results, paths = bench_run
    loaded = json.loads(paths["json"].read_text())
    assert loaded["schema"] == "onnxpress-bench/1"
    names = [c["name"] for c in loaded["contenders"]]
    assert names == ["torch-eager-fp32", "onnxpress-fp32"]
    assert loaded["reference"] == "torch-eager-fp32"
    env = loaded["environment"]
    assert env["cpu"]["model"] and env["versions"]["onnxruntime-gpu"] or env["versions"].get("onnxruntime")
    assert "torch" in env["versions"]
    # the exact session options of the ORT contender are recorded
    session = next(c for c in loaded["contenders"] if c["name"] == "onnxpress-fp32")["session"]
    assert session["intra_op_num_threads"] == 1 and session["providers"] == ["CPUExecutionProvider"]


def test_threads_asserted_and_labels_identical(bench_run):
    results, _ = bench_run
    checks = results["checks"]
    assert checks["threads_equal"] is True
    assert {v["compute"] for v in checks["threads_after"].values()} == {1}
    # and read back inside every fresh-process throughput run
    assert set(checks["threads_isolated_runs"]) == {"torch-eager-fp32", "onnxpress-fp32"}
    assert {v["compute"] for v in checks["threads_isolated_runs"].values()} == {1}
    # the checkpoint's HF tokenizer and the artifact's tokenizer produce the same ids
    assert checks["tokenization_identical"]["torch-eager-fp32"] == 1.0


def test_latency_cells(bench_run):
    results, _ = bench_run
    cells = results["latency"]
    assert {(c["mode"], c["batch_size"]) for c in cells} == {(m, b) for m in ("e2e", "model") for b in (1, 4)}
    for c in cells:
        assert c["n"] >= 3 and c["n"] == len(c["samples_ms"])
        assert 0 < c["p50_ms"] <= c["p90_ms"] <= c["p99_ms"] <= c["max_ms"]
        assert c["texts_per_s"] > 0 and c["tokens_per_s"] > 0
        # same model exported: every contender predicts exactly what the reference predicts
        assert c["agreement_with_reference"] == 1.0
        if c["mode"] == "model":
            assert c["achieved_gops"] > 0 and 0 < c["roof_fraction"]
    ref = [c for c in cells if c["contender"] == "torch-eager-fp32"]
    assert all(c["x_vs_reference"] == pytest.approx(1.0) for c in ref)


def test_throughput_accuracy_agreement_and_invariance(bench_run):
    results, _ = bench_run
    tp = results["throughput"]
    assert tp["texts"] == 40 and tp["rounds"] == 2
    rows = {r["contender"]: r for r in tp["contenders"]}
    assert rows["torch-eager-fp32"]["accuracy"] == pytest.approx(rows["onnxpress-fp32"]["accuracy"])
    assert rows["onnxpress-fp32"]["agreement_with_reference"] == 1.0
    assert all(r["texts_per_s"] > 0 and len(r["round_texts_per_s"]) == 2 for r in rows.values())
    # each process scored the texts once before the timed pass, timed apart
    assert tp["first_pass"] and all(r["first_pass_texts_per_s"] > 0 for r in rows.values())
    # fp32 in both stacks: a text's probabilities do not depend on what shares its batch
    for r in rows.values():
        assert r["invariance"]["texts"] == 40 and r["invariance"]["label_flips"] == 0
        assert r["invariance"]["max_abs_dprob"] < 1e-5
    # each run is its own process: the torch-free runtime's peak is not torch's
    assert rows["onnxpress-fp32"]["peak_rss_mib"] < 0.7 * rows["torch-eager-fp32"]["peak_rss_mib"]
    assert tp["headline"]["onnxpress"] == "onnxpress-fp32" and tp["headline"]["best_peer"] == "torch-eager-fp32"
    assert tp["headline"]["x_vs_seed"] == pytest.approx(tp["headline"]["x_vs_best_peer"])


def test_cold_start_in_fresh_processes(bench_run):
    results, _ = bench_run
    rows = {r["contender"]: r for r in results["cold_start"]["contenders"]}
    assert set(rows) == {"torch-eager-fp32", "onnxpress-fp32"}
    for r in rows.values():
        assert "errors" not in r, r
        assert 0 < r["import_s"] + r["load_s"] < r["cold_start_s"]
        assert r["peak_rss_mib"] >= r["rss_after_first_mib"] > 10
    # each child reports its own peak (not the parent's, which Linux carries over fork+exec
    # in ru_maxrss): the torch-free runtime is far smaller than a process that imports torch
    assert rows["onnxpress-fp32"]["peak_rss_mib"] < 0.7 * rows["torch-eager-fp32"]["peak_rss_mib"]
    # the onnxpress runtime is torch-free; the PyTorch contender obviously is not
    assert rows["onnxpress-fp32"]["torch_imported"] is False
    assert rows["torch-eager-fp32"]["torch_imported"] is True


def test_markdown_and_plots(bench_run):
    results, paths = bench_run
    md = paths["markdown"].read_text()
    assert "## Throughput" in md and "## Cold start" in md and "## Latency, end to end" in md
    assert "## Roofline" in md and "| onnxpress-fp32 |" in md and "## Summary" in md
    assert results["environment"]["date_utc"] in md
    for key in ("latency_vs_batch", "throughput_vs_batch", "latency_distribution"):
        data = paths[key].read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_missing_checkpoint_is_a_user_error(tiny_artifact, texts_csv, tmp_path):
    import shutil

    from onnxpress.runtime.artifact import Artifact

    art = tmp_path / "art"
    shutil.copytree(tiny_artifact, art)
    manifest = Artifact.open(art).manifest
    manifest.extra = {"pad_token_id": 0}
    manifest.save(art)
    with pytest.raises(UserError, match="--checkpoint"):
        run_classifier_bench(small_config(art, tmp_path / "out", texts_csv))
    with pytest.raises(UserError, match="no variant"):
        run_classifier_bench(small_config(art, tmp_path / "out", texts_csv, against=[], variants=["fp16"]))


def test_cli_user_errors(tiny_artifact, tmp_path, capsys):
    from onnxpress.cli import main

    assert main(["bench", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "artifact directory not found" in capsys.readouterr().err
    assert main(["bench", str(tiny_artifact), "--against", "tensorflow", "--out", str(tmp_path / "o")]) == 2
    assert "unknown --against" in capsys.readouterr().err
    assert main(["bench", str(tiny_artifact), "--modes", "fast", "--out", str(tmp_path / "o")]) == 2
    assert "unknown mode" in capsys.readouterr().err
    assert main(["bench", str(tiny_artifact), "--data", str(tmp_path / "missing.txt"), "--against", "",
                 "--out", str(tmp_path / "o")]) == 2
    assert "--data" in capsys.readouterr().err


def test_throughput_time_budget_keeps_the_race_fair(tiny_artifact, texts_csv, tmp_path):
    cfg = small_config(tiny_artifact, tmp_path / "out", texts_csv, modes=[], cold_start=False, roofline=False,
                       throughput_texts=40, throughput_rounds=3, throughput_budget_s=1e-9, invariance_texts=8,
                       first_pass=False)
    results = run_classifier_bench(cfg)
    tp = results["throughput"]
    assert not tp["first_pass"] and all(r["first_pass_texts_per_s"] is None for r in tp["contenders"])
    # the first round always completes; then the spent budget stops it, for everyone at once
    assert tp["rounds"] == 1 and tp["texts"] == 40
    assert all(len(r["round_texts_per_s"]) == 1 for r in tp["contenders"])
    assert any("time budget" in w for w in results["warnings"])
    assert results["latency"] == [] and results["cold_start"] is None
    md = write_all(results, tmp_path / "out")["markdown"].read_text()
    assert "first 40 of 64 texts, 1 fresh-process round(s)" in md
    assert "of each process's first pass" in md


def test_missing_peer_is_reported_as_skipped(tiny_artifact, tiny_checkpoint, texts_csv, tmp_path, monkeypatch):
    from onnxpress.benchmarks import classifier_bench

    cfg = small_config(tiny_artifact, tmp_path / "out", texts_csv, modes=[], cold_start=False, roofline=False,
                       against=["torch", "ctranslate2"], checkpoint=tiny_checkpoint, throughput_rounds=1)
    # a machine without the optional package: the peer's module cannot be found
    monkeypatch.setitem(classifier_bench.PEER_MODULES, "ctranslate2-int8", ("ctranslate2_not_installed",))
    results = run_classifier_bench(cfg)
    assert results["skipped"] == {"ctranslate2-int8": "not installed: ctranslate2_not_installed"}
    assert [c["name"] for c in results["contenders"]] == ["torch-eager-fp32", "onnxpress-fp32"]
    md = write_all(results, tmp_path / "out")["markdown"].read_text()
    assert "| ctranslate2-int8 | skipped: not installed: ctranslate2_not_installed |" in md


def test_rewritten_checkpoint_is_refused(tiny_checkpoint, tmp_path):
    import shutil

    from onnxpress.benchmarks.contenders import TorchEager, from_spec

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    contender = TorchEager(ckpt, max_length=32)
    spec = contender.spec
    with open(ckpt / "config.json", "a") as fh:  # someone overwrites the run directory mid-benchmark
        fh.write("\n")
    with pytest.raises(UserError, match="rewritten"):
        from_spec(spec).load(1)
