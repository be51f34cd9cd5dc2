"""Fixtures for export tests; the builders live in export_fixtures.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from export_fixtures import make_checkpoint, options, synthetic_texts


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


@pytest.fixture(scope="session")
def artifact(tiny_checkpoint, eval_data, calibration_texts, tmp_path_factory):
    """(artifact dir, ExportResult) with every variant, exported once per session."""
    from onnxpress.export.classifier import VARIANTS, export_classifier

    out = tmp_path_factory.mktemp("art") / "clf"
    result = export_classifier(tiny_checkpoint, out, eval_texts=eval_data[0], eval_labels=eval_data[1],
                               calibration_texts=calibration_texts, options=options(variants=list(VARIANTS)))
    return out, result
