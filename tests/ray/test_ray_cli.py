"""`--engine ray` and `--ray-replicas` through the real CLI, each run starting and stopping its own Ray."""
from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest
from test_ray_jobs import assert_same_tables, config, local_score, write_input

RAY_DAEMONS = ("raylet", "gcs_server")


def daemons() -> set[int]:
    return {p.pid for p in psutil.process_iter(["name"]) if (p.info["name"] or "") in RAY_DAEMONS}


def onnxpress(*argv: str, prelude: str = "") -> subprocess.CompletedProcess:
    code = f"{prelude}import sys; from onnxpress.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)


def test_score_engine_ray_equals_local_and_leaves_no_ray_behind(ray_cluster, classifier_artifact, tmp_path):
    src = write_input(tmp_path / "in.csv", 120)
    local_score(classifier_artifact, config(tmp_path, src, "local"))
    before = daemons()
    done = onnxpress("score", str(classifier_artifact), str(src), "--out", str(tmp_path / "ray.parquet"),
                     "--engine", "ray", "--workers", "2", "--threads-per-worker", "1", "--variant", "int8",
                     "--id-column", "id", "--probabilities", "--chunk-rows", "16", "--no-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "120 rows: 108 scored" in done.stderr and "2 actors x 1 threads" in done.stderr
    assert_same_tables(tmp_path / "local.parquet", tmp_path / "ray.parquet")
    assert_same_tables(tmp_path / "local.errors.parquet", tmp_path / "ray.errors.parquet")
    deadline = time.monotonic() + 20
    while daemons() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not daemons() - before, "the command's Ray is still running"


@pytest.mark.parametrize("argv", [
    ["score", "ART", "IN", "--out", "OUT.parquet", "--engine", "ray"],
    ["translate", "ART", "--input", "IN", "--output", "OUT.en", "--engine", "ray"],
    ["serve", "ART", "--ray-replicas", "2"],
])
def test_without_ray_the_flags_end_with_one_line(argv, classifier_artifact, tmp_path):
    src = write_input(tmp_path / "in.csv", 3)
    argv = [{"ART": str(classifier_artifact), "IN": str(src)}.get(a, a) for a in argv]
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    done = onnxpress(*argv, prelude="import sys; sys.modules['ray'] = None; ")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ['onnxpress: error: the Ray engine needs Ray: pip install "onnxpress[ray]"']


@pytest.mark.slow
def test_serve_ray_replicas_answers_and_stops_on_sigterm(classifier_artifact):
    import json
    import re
    import signal
    import urllib.request

    before = daemons()
    proc = subprocess.Popen([sys.executable, "-m", "onnxpress.cli", "serve", "--name", f"clf={classifier_artifact}",
                             "--ray-replicas", "2", "--threads", "1", "--variant", "fp32", "--port", "0"],
                            stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in proc.stderr:
            match = re.search(r"serving 1 model\(s\) at (http://\S+) \(Ray Serve, 2 replica", line)
            if match:
                url = match.group(1)
                break
        assert url, "no serving line"
        body = json.dumps({"texts": ["team wins the game"]}).encode()
        req = urllib.request.Request(url + "/v1/classify", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert json.loads(resp.read())["results"][0]["label"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 20
    while daemons() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not daemons() - before, "the command's Ray is still running"
