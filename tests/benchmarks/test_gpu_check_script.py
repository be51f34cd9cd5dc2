"""`benchmarks/gpu_check.sh --dry-run` on a CPU machine: walks every step, lists the GPU rows it would run."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("gpu_check")
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin",
                                                                        "PYTHON": sys.executable,
                                                                        "HOME": str(out)}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_lists_tensorrt_and_torch_fp16_rows_with_batches_up_to_256(dry_run):
    trt = next(line for line in dry_run.splitlines() if line.startswith("rows classifier --device tensorrt"))
    assert "(tensorrt int8)" in trt and "(tensorrt fp16)" in trt and "PyTorch CUDA autocast fp16" in trt
    assert "1,2,4,8,16,32,64,128,256" in trt
    assert re.search(r"rows translator --device cuda .*\(cuda fp16\)", dry_run)
    assert re.search(r"rows translator --device tensorrt ", dry_run)
    assert "skipped:" not in dry_run and "no torch-fp16" not in dry_run


def test_runs_nothing_that_needs_a_gpu(dry_run):
    commands = [line for line in dry_run.splitlines() if line.startswith("would run:") and " bench " in line]
    assert len(commands) == 4 and all("--device" in c for c in commands)
    assert not any(line.startswith("+ ") for line in dry_run.splitlines())
    assert "dry run: nothing above marked 'would run' was executed" in dry_run
