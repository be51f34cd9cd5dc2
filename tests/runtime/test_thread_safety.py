"""8 threads sharing one Classifier / Translator get exactly the results of sequential calls."""
from __future__ import annotations

import random
import threading
from pathlib import Path

import numpy as np
import pytest

from runtime_fixtures import WORDS
from onnxpress.runtime import Classifier, Translator
from onnxpress.runtime.engine import Engine
from onnxpress.runtime.token_budget import TokenBudget

THREADS = 8
LEGACY_TRANSLATOR = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_translator"
GERMAN = ["Ein", "Mann", "fährt", "Fahrrad", "Zwei", "Hunde", "spielen", "im", "Park", "Frau", "liest", "Kinder"]


def requests(words: list[str], n: int, seed: int) -> list[list[str]]:
    """n request lists of varied sizes, texts of varied lengths (1 to 60 words)."""
    rng = random.Random(seed)
    return [[" ".join(rng.choice(words) for _ in range(rng.randint(1, 60))) for _ in range(rng.randint(1, 12))]
            for _ in range(n)]


def run_concurrently(fn, jobs: list) -> list:
    """fn(job) for every job, from THREADS threads started together; errors re-raised."""
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(k: int) -> None:
        start.wait()
        try:
            for i in range(k, len(jobs), THREADS):
                results[i] = fn(jobs[i])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("variant,io_binding", [("fp32", None), ("int8", None), ("fp32", True)])
def test_classifier_from_8_threads_equals_sequential(artifact_dir, variant, io_binding):
    clf = Classifier.open(artifact_dir, variant, "cpu", threads=1, io_binding=io_binding,
                          max_batch_tokens=128, max_batch_size=8)
    jobs = requests(WORDS, 48, seed=1)
    expected = [clf.predict_proba(texts) for texts in jobs]
    got = run_concurrently(clf.predict_proba, jobs)
    for want, have in zip(expected, got):
        np.testing.assert_array_equal(have, want)


def test_fixed_shape_classifier_from_8_threads_equals_sequential(artifact_dir):
    base = Classifier.open(artifact_dir, "fp32", "cpu", threads=1)
    fixed = Classifier(base.artifact, "fp32", Engine(base.engine.model_path, base.engine.config),
                       base.tokenizer, TokenBudget(128, 8, pad_to_multiple=16), fixed_shapes=True)
    jobs = requests(WORDS, 48, seed=2)
    expected = [fixed.predict_proba(texts) for texts in jobs]
    got = run_concurrently(fixed.predict_proba, jobs)
    for want, have in zip(expected, got):
        np.testing.assert_array_equal(have, want)


@pytest.mark.parametrize("beam,io_binding", [(1, None), (3, None), (3, True)])
def test_translator_from_8_threads_equals_sequential(beam, io_binding):
    tr = Translator.open(LEGACY_TRANSLATOR, "fp32", "cpu", threads=1, io_binding=io_binding, max_batch_size=4)
    jobs = [[" ".join(t.split()[:12]) for t in texts] for texts in requests(GERMAN, 24, seed=3)]

    def translate(texts):
        return [(r.token_ids, r.score) for r in tr.translate(texts, beam_size=beam)]

    expected = [translate(texts) for texts in jobs]
    assert run_concurrently(translate, jobs) == expected
