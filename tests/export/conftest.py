"""Fixtures for export tests; the builders live in export_fixtures.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from export_fixtures import make_checkpoint, synthetic_texts


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A trained tiny mean-pooling classifier checkpoint (standard save_pretrained dir)."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "clf")


@pytest.fixture(scope="session")
def eval_data() -> tuple[list[str], list[int]]:
    return synthetic_texts(300, seed=7)


@pytest.fixture(scope="session")
def calibration_texts() -> list[str]:
    return synthetic_texts(64, seed=11)[0]
