"""Helpers for file-job tests: texts, reading outputs back, running the CLI in a child process."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from runtime_fixtures import WORDS

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
LEGACY_TRANSLATOR = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_translator"
NOBODY = 65534


def texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 30))) for _ in range(n)]


def read_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    import pyarrow.csv as pacsv

    return pacsv.read_csv(path).to_pylist()


def cli(*args: Any, unprivileged: bool = False, python: tuple[str, ...] = ("-m", "onnxpress"),
        preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    """`onnxpress ARGS` in a child process; stdout/stderr captured as text.

    `unprivileged`: as user nobody when the tests run as root, so that file permissions apply.
    """
    prefix: list[str] = []
    if unprivileged and os.getuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot test file permissions")
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return subprocess.run([*prefix, sys.executable, *python, *map(str, args)], env=ENV, capture_output=True,
                          text=True, preexec_fn=preexec, timeout=300)


def one_line_error(res: subprocess.CompletedProcess, message: str) -> None:
    """The CLI failed with exit 2 and one line naming `message`, no traceback."""
    lines = [line for line in res.stderr.strip().splitlines() if ":onnxruntime:" not in line]  # ORT's own log
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and len(lines) == 1 and message in lines[0], res.stderr


class Stop(Exception):
    """Raised by `DiesAfter`: stands for a run that dies."""


class DiesAfter:
    """The classifier, failing after `n` chunks: an interrupted run."""

    def __init__(self, clf: Any, n: int):
        self.clf, self.n = clf, n
        self.artifact, self.variant, self.labels = clf.artifact, clf.variant, clf.labels

    def classify(self, batch: list[str]) -> Any:
        if self.n == 0:
            raise Stop()
        self.n -= 1
        return self.clf.classify(batch)
