"""Fixtures for file-job tests: the tiny classifier artifact of the runtime tests, built once."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))  # runtime_fixtures: shared builders

from runtime_fixtures import write_artifact  # noqa: E402


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory) -> Path:
    return write_artifact(tmp_path_factory.mktemp("clf"))


@pytest.fixture(scope="session")
def clf(artifact_dir):
    from onnxpress.runtime import Classifier

    return Classifier.load(artifact_dir, variant="fp32", threads=1)
