"""Fixtures for the server tests: tiny models built here, and real `onnxpress serve` processes."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")

TRANSLATOR = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_translator"  # read-only
GERMAN = ["Ein Mann fährt Fahrrad.", "Eine Frau liest ein Buch.", "Zwei Hunde spielen im Park.", "Ein Hund."]
TEXTS = [
    "stocks rally as oil prices fall", "team wins the game", "the election government minister talks",
    "new software for the phone", "apple and google report sales profit after the deal",
    "space science research", "coach says the player", "war and peace talks in the first week of the year",
]
READY_LINE = re.compile(r"serving \d+ model\(s\) at (http://\S+)")


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from tiny_classifier import build_artifact, build_checkpoint

    root = tmp_path_factory.mktemp("served")
    return build_artifact(build_checkpoint(root / "ckpt"), root / "clf")


@pytest.fixture(scope="session")
def offline(classifier_dir):
    """The same models loaded in this process: what every served answer must equal."""
    from onnxpress.runtime import Classifier, Translator

    return Classifier.load(classifier_dir, variant="fp32"), Translator.load(TRANSLATOR, variant="fp32")


@dataclass
class Served:
    url: str
    proc: subprocess.Popen
    log: list[str] = field(default_factory=list)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(classifier_dir: Path, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 60.0) -> Served:
    """`onnxpress serve` on 127.0.0.1, any free port; returns once it listens."""
    cmd = [sys.executable, "-m", "onnxpress.cli", "serve", "--name", f"clf={classifier_dir}",
           "--name", f"mt={TRANSLATOR}", "--port", "0", "--variant", "fp32", "--threads", "1", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    served = Served("", proc)
    found = threading.Event()

    def read() -> None:  # keep draining stderr so the server never blocks on a full pipe
        for line in proc.stderr:
            served.log.append(line)
            match = READY_LINE.search(line)
            if match and not found.is_set():
                served.url = match.group(1)
                found.set()
        found.set()

    threading.Thread(target=read, daemon=True).start()
    found.wait(timeout)
    if not served.url:
        served.stop()
        pytest.fail("server did not start:\n" + "".join(served.log[-30:]))
    return served


@pytest.fixture(scope="session")
def server(classifier_dir):
    served = start_server(classifier_dir, "--max-queue-delay-ms", "5")
    yield served
    served.stop()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name):
            head, _, value = line.rpartition(" ")
            got = head[len(name):].strip("{}")
            if head.split("{")[0] == name and ",".join(sorted(got.split(","))) == want:
                return float(value)
    return 0.0
