"""Parallel batches: the thread split rule, the pool, and translations identical to the sequential path."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from onnxpress.errors import UserError
from onnxpress.runtime.parallel_runs import PARALLEL_MAX_PARAMETERS, ParallelRuns, split_threads

SOURCES = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Park.", "Ein Hund trinkt Kaffee im Park.",
           "Eine Frau liest.", "Drei Kinder essen einen Apfel auf einer Bank.", "Ein Mann.",
           "Ein Kind isst einen Apfel.", "Ein alter Mann sitzt auf einer Bank.", "Zwei Männer spielen Karten."]


def test_split_threads_rule():
    small, large = PARALLEL_MAX_PARAMETERS, PARALLEL_MAX_PARAMETERS + 1
    assert split_threads(2, small) == (2, 1)  # small model: one batch per thread
    assert split_threads(2, large) == (1, 2)  # large model: every thread intra-op
    assert split_threads(None, large) == (1, None)  # one batch keeps ORT's own default
    assert split_threads(4, small, workers=2) == (2, 2)
    assert split_threads(2, small, workers=1) == (1, 2)
    assert split_threads(1, small) == (1, 1)
    for bad in ({"threads": 0, "parameters": small}, {"threads": 2, "parameters": small, "workers": "many"},
                {"threads": 2, "parameters": small, "workers": 0}):
        with pytest.raises(UserError):
            split_threads(**bad)


def test_map_runs_items_at_once_and_keeps_their_order():
    barrier = threading.Barrier(2, timeout=10)  # breaks (raises) unless two calls run at the same time

    def job(i: int) -> int:
        barrier.wait()
        return i * i

    runs = ParallelRuns(2)
    try:
        assert runs.map(job, [3, 1, 2, 5]) == [9, 1, 4, 25]
    finally:
        runs.close()


def test_map_raises_the_failure_of_any_item():
    def job(i: int) -> int:
        if i == 2:
            raise ValueError("batch 2 failed")
        return i

    runs = ParallelRuns(2)
    try:
        with pytest.raises(ValueError, match="batch 2 failed"):
            runs.map(job, [0, 1, 2, 3])
    finally:
        runs.close()
    assert ParallelRuns(1).map(str, [1, 2]) == ["1", "2"]
    with pytest.raises(UserError):
        ParallelRuns(0)


@pytest.fixture(scope="module")
def toy_artifact(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from onnxpress.export.translator import ExportOptions, build_artifact
    from toy_translator import GERMAN, build_toy_translator

    root = tmp_path_factory.mktemp("parallel_translator")
    build_artifact(build_toy_translator(root / "ckpt"), root / "art",
                   ExportOptions(variants=("fp32", "int8"), progress=False), calibration=GERMAN)
    return root / "art"


@pytest.mark.parametrize("variant", ["fp32", "int8"])
@pytest.mark.parametrize("beam", [1, 3])
def test_parallel_batches_translate_exactly_as_sequential(toy_artifact, variant, beam):
    from onnxpress.runtime.translator import Translator

    # max_batch_size 2: five batches, so two workers really decode batches side by side
    sequential = Translator.load(toy_artifact, variant=variant, device="cpu", threads=1, workers=1,
                                 max_batch_size=2)
    parallel = Translator.load(toy_artifact, variant=variant, device="cpu", threads=2, workers=2,
                               max_batch_size=2)
    assert sequential.describe()["parallel_batches"] == 1
    assert parallel.describe()["parallel_batches"] == 2
    assert parallel.describe()["intra_op_num_threads"] == 1
    texts = SOURCES * 3
    want = sequential.translate(texts, beam_size=beam, return_attention=True)
    got = parallel.translate(texts, beam_size=beam, return_attention=True)
    for a, b in zip(want, got, strict=True):
        assert (a.text, a.tokens, a.token_ids, a.score, a.finished) == (b.text, b.tokens, b.token_ids, b.score,
                                                                         b.finished)
        np.testing.assert_array_equal(a.attention, b.attention)


def test_auto_workers_use_every_thread_on_a_small_model(toy_artifact):
    from onnxpress.runtime.translator import Translator

    tr = Translator.load(toy_artifact, variant="fp32", device="cpu", threads=2)
    assert (tr.describe()["parallel_batches"], tr.describe()["intra_op_num_threads"]) == (2, 1)
    with pytest.raises(UserError, match="workers"):
        Translator.load(toy_artifact, variant="fp32", device="cpu", threads=2, workers="lots")
