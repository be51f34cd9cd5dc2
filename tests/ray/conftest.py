"""One local Ray for all tests here (starting one costs seconds), shut down and checked at the end."""
from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from onnxpress.runtime.jobs.ray.session import LOOPBACK_ENV

os.environ.setdefault(LOOPBACK_ENV, "0")  # before `import ray`: the tests' Rays listen on loopback only
ray = pytest.importorskip("ray")

TRANSLATOR = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_translator"  # read-only


def ray_processes() -> list[psutil.Process]:
    """Processes Ray started under this test process (raylet, GCS, workers, ...)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "ray" in " ".join(proc.cmdline()).lower():
                found.append(proc)
        except psutil.NoSuchProcess:
            pass
    return found


@pytest.fixture(scope="session")
def ray_cluster():
    """A local 2-CPU Ray without dashboard; afterwards no Ray process may be left running."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()
    deadline = time.monotonic() + 20
    while ray_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [f"{p.pid} {p.name()}" for p in ray_processes()]
    assert not left, f"Ray left processes behind: {left}"


@pytest.fixture(scope="session")
def classifier_artifact(tmp_path_factory) -> Path:
    from tiny_classifier import build_artifact, build_checkpoint

    root = tmp_path_factory.mktemp("ray_clf")
    return build_artifact(build_checkpoint(root / "ckpt"), root / "clf")
