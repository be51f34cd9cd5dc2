"""The default CPU variant answers a text the same way whatever shares its batch (issue 15).

The tiny trained checkpoint is exported with the default variants; its default int8 build
must give every one of 64 texts the same label, and probabilities within 1e-4, when scored
batched, one at a time, and shuffled into batches with long texts. The dynamic int8 build,
whose activation scale spans the whole padded batch, is the counter-example the check catches.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))  # the trained tiny checkpoint's builder
from export_fixtures import MAX_LENGTH, make_checkpoint, options, synthetic_texts  # noqa: E402
from onnxpress.benchmarks.invariance import batch_invariance, compare  # noqa: E402
from onnxpress.runtime import Classifier  # noqa: E402

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    from onnxpress.export.classifier import export_classifier

    root = tmp_path_factory.mktemp("invariance")
    checkpoint = make_checkpoint(root / "ckpt")
    eval_texts, eval_labels = synthetic_texts(200, seed=7)
    out = root / "art"
    export_classifier(checkpoint, out, eval_texts=eval_texts, eval_labels=eval_labels,
                      calibration_texts=synthetic_texts(64, seed=11)[0],
                      options=options(variants=["fp32", "int8", "int8-dynamic"]))
    return out


def texts_64() -> list[str]:
    return synthetic_texts(64, seed=3)[0]


def long_texts(n: int) -> list[str]:
    """Texts past max_length: every batch they join is padded to the full length."""
    words = synthetic_texts(n * 8, seed=5)[0]
    return [" ".join(words[i * 8:(i + 1) * 8]) for i in range(n)]


def shuffled_with_long(clf: Classifier, texts: list[str], seed: int = 0) -> np.ndarray:
    """Probabilities of `texts` after shuffling them among long texts, in `texts` order."""
    mixed = [(i, t) for i, t in enumerate(texts)] + [(-1, t) for t in long_texts(32)]
    random.Random(seed).shuffle(mixed)
    probs = clf.predict_proba([t for _, t in mixed])
    out = np.empty((len(texts), probs.shape[1]), np.float32)
    for row, (i, _) in enumerate(mixed):
        if i >= 0:
            out[i] = probs[row]
    return out


def load(path: Path, variant: str) -> Classifier:
    # one planned batch can hold all 96 texts at full length: neighbours really share a run
    return Classifier.load(path, variant=variant, device="cpu", threads=1, max_batch_tokens=96 * MAX_LENGTH,
                           max_batch_size=96)


def test_default_cpu_variant_is_static_int8(exported):
    clf = Classifier.load(exported, device="cpu", threads=1)
    spec = clf.artifact.manifest.variants[clf.variant]
    assert clf.variant == "int8" and spec.precision == "int8"
    assert spec.method["kind"] == "static"


def test_default_variant_is_batch_invariant(exported):
    clf = load(exported, "auto")
    texts = texts_64()
    one_batch = clf.predict_proba(texts)
    for other in (np.concatenate([clf.predict_proba([t]) for t in texts]), shuffled_with_long(clf, texts)):
        result = compare(one_batch, other)
        assert result["label_flips"] == 0
        assert result["max_abs_dprob"] <= TOLERANCE, result
    assert batch_invariance(clf.predict_proba, texts)["max_abs_dprob"] <= TOLERANCE


def test_dynamic_int8_is_not_batch_invariant(exported):
    """The check can fail: run-time activation scales make a text depend on its neighbours."""
    clf = load(exported, "int8-dynamic")
    texts = texts_64()
    assert compare(clf.predict_proba(texts), shuffled_with_long(clf, texts))["max_abs_dprob"] > TOLERANCE
