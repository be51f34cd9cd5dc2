"""Fixtures for runtime tests; the builders live in runtime_fixtures.py."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tiny_classifier import WORDS
from runtime_fixtures import write_artifact


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory) -> Path:
    return write_artifact(tmp_path_factory.mktemp("clf"))


@pytest.fixture(scope="session")
def artifact_no_tt(tmp_path_factory) -> Path:
    return write_artifact(tmp_path_factory.mktemp("clf_no_tt"), with_token_type_ids=False)


@pytest.fixture
def artifact_copy(artifact_dir, tmp_path) -> Path:
    """A private copy a test may damage."""
    dest = tmp_path / "clf"
    shutil.copytree(artifact_dir, dest)
    return dest


@pytest.fixture(scope="session")
def texts() -> list[str]:
    import random

    rng = random.Random(0)
    out = []
    for i in range(120):
        n = rng.choice([1, 2, 3, 5, 8, 13, 21, 40])  # 40 words > MAX_LENGTH: truncated
        out.append(" ".join(rng.choice(WORDS + ["zebra"]) for _ in range(n)))
    return out


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
