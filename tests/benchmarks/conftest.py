"""Fixtures for the harness tests: the tiny real classifier from `tests/tiny_classifier.py`."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from tiny_classifier import build_artifact, build_checkpoint, write_texts_csv  # noqa: E402


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("bench_ckpt"))


@pytest.fixture(scope="session")
def tiny_artifact(tiny_checkpoint, tmp_path_factory) -> Path:
    return build_artifact(tiny_checkpoint, tmp_path_factory.mktemp("bench_art"))


@pytest.fixture(scope="session")
def texts_csv(tmp_path_factory) -> Path:
    return write_texts_csv(tmp_path_factory.mktemp("bench_data") / "texts.csv")
