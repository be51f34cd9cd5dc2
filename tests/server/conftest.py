"""Fixtures for the server tests: tiny models built here, and a real `onnxpress serve` process."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")

from server_fixtures import TRANSLATOR, start_server  # noqa: E402


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


@pytest.fixture(scope="session")
def server(classifier_dir):
    served = start_server(classifier_dir, "--max-queue-delay-ms", "5")
    yield served
    served.stop()
