"""`--engine ray` and `--ray-replicas` through the real CLI, each run starting and stopping its own Ray."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

import psutil
import pytest
from test_ray_jobs import assert_same_tables, config, local_score, write_input



@pytest.fixture
def ray_tmpdir():
    """A Ray temp folder of the command's own (short: Ray's socket paths must fit in 107 bytes), so
    its processes can be told from other Rays on this machine by their command lines."""
    path = tempfile.mkdtemp(prefix="oxr", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def processes_of(ray_tmpdir: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        if ray_tmpdir in line:
            found.append(f"{proc.pid} {line[:80]}")
    return found


def assert_no_ray_left(ray_tmpdir: str) -> None:
    deadline = time.monotonic() + 20
    while processes_of(ray_tmpdir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not processes_of(ray_tmpdir), "the command's Ray is still running"


def onnxpress(*argv: str, prelude: str = "", ray_tmpdir: str | None = None) -> subprocess.CompletedProcess:
    code = f"{prelude}import sys; from onnxpress.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, **({"RAY_TMPDIR": ray_tmpdir} if ray_tmpdir else {})}
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300, env=env)


def test_score_engine_ray_equals_local_and_leaves_no_ray_behind(ray_cluster, classifier_artifact, tmp_path,
                                                                ray_tmpdir):
    src = write_input(tmp_path / "in.csv", 120)
    local_score(classifier_artifact, config(tmp_path, src, "local"))
    done = onnxpress("score", str(classifier_artifact), str(src), "--out", str(tmp_path / "ray.parquet"),
                     "--engine", "ray", "--workers", "2", "--threads-per-worker", "1", "--variant", "int8",
                     "--id-column", "id", "--probabilities", "--chunk-rows", "16", "--no-progress",
                     ray_tmpdir=ray_tmpdir)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "120 rows: 108 scored" in done.stderr and "2 actors x 1 threads" in done.stderr
    assert_same_tables(tmp_path / "local.parquet", tmp_path / "ray.parquet")
    assert_same_tables(tmp_path / "local.errors.parquet", tmp_path / "ray.errors.parquet")
    assert_no_ray_left(ray_tmpdir)


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
def test_serve_ray_replicas_answers_and_stops_on_sigterm(classifier_artifact, ray_tmpdir):
    import json
    import re
    import signal
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "onnxpress.cli", "serve", "--name", f"clf={classifier_artifact}",
                             "--ray-replicas", "2", "--threads", "1", "--variant", "fp32", "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "RAY_TMPDIR": ray_tmpdir})
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
    assert_no_ray_left(ray_tmpdir)
