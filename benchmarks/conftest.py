"""Fixtures of the pytest-benchmark micro-suites (`pytest benchmarks/ --benchmark-json out.json`).

The model is `$ONNXPRESS_BENCH_ARTIFACT`, else `artifacts/clf` if it exists, else a tiny random
BERT built on the spot (numbers then say nothing about MiniLM; they still compare code paths).
Threads: `$ONNXPRESS_BENCH_THREADS`, else every usable CPU. Not part of `make test`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))  # the tiny model builders live with the tests (tiny_classifier.py)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def bench_threads() -> int:
    if os.environ.get("ONNXPRESS_BENCH_THREADS"):
        return int(os.environ["ONNXPRESS_BENCH_THREADS"])
    return len(os.sched_getaffinity(0))


@pytest.fixture(scope="session")
def bench_artifact(tmp_path_factory) -> Path:
    explicit = os.environ.get("ONNXPRESS_BENCH_ARTIFACT")
    if explicit:
        return Path(explicit)
    default = TESTS.parent / "artifacts" / "clf"
    if (default / "manifest.json").is_file():
        return default
    from tiny_classifier import build_artifact, build_checkpoint

    ckpt = build_checkpoint(tmp_path_factory.mktemp("ckpt"))
    return build_artifact(ckpt, tmp_path_factory.mktemp("art"))


@pytest.fixture(scope="session")
def bench_texts() -> list[str]:
    from onnxpress.errors import UserError

    try:
        from onnxpress.benchmarks.texts import load_texts

        return load_texts("ag_news").texts[:2000]
    except UserError:
        import random

        from tiny_classifier import WORDS

        rng = random.Random(0)
        return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 60))) for _ in range(2000)]


@pytest.fixture(scope="session", params=["fp32", "int8"])
def classifier(request, bench_artifact):
    from onnxpress.runtime import Classifier
    from onnxpress.runtime.artifact import Artifact

    manifest = Artifact.open(bench_artifact).manifest
    variant = manifest.variants.get(request.param)
    if variant is None or not variant.servable or "cpu" not in variant.devices:
        pytest.skip(f"no servable cpu variant {request.param}")
    return Classifier.load(bench_artifact, variant=request.param, device="cpu", threads=bench_threads())
