"""Artifacts exported before a change must keep loading and predicting identically.

`tests/fixtures/legacy_*` were exported by commit b7557b3 (manifest format_version 1), with
the outputs that commit's runtime gave (`*.expected.json`). If one of these tests fails, the
change broke compatibility with artifacts users already have.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CLF_EXPECTED = json.loads((FIXTURES / "legacy_classifier.expected.json").read_text())
MT_EXPECTED = json.loads((FIXTURES / "legacy_translator.expected.json").read_text())


@pytest.mark.parametrize("variant", sorted(CLF_EXPECTED["variants"]))
def test_legacy_classifier_predicts_as_before(variant):
    from onnxpress.runtime import Classifier

    clf = Classifier.load(FIXTURES / "legacy_classifier", variant=variant, device="cpu", threads=1)
    want = CLF_EXPECTED["variants"][variant]
    texts = CLF_EXPECTED["texts"]
    assert clf.labels == CLF_EXPECTED["labels"]
    np.testing.assert_allclose(clf.predict_proba(texts), np.asarray(want["probs"]), atol=1e-5)
    assert [p.label for p in clf.predict(texts)] == want["labels"]


@pytest.mark.parametrize("variant", sorted(MT_EXPECTED["variants"]))
@pytest.mark.parametrize("beam", [1, 3])
def test_legacy_translator_translates_as_before(variant, beam):
    from onnxpress.runtime import Translator

    tr = Translator.load(FIXTURES / "legacy_translator", variant=variant, device="cpu", threads=1)
    want = MT_EXPECTED["variants"][variant][f"beam{beam}"]
    got = tr.translate(MT_EXPECTED["texts"], beam_size=beam, return_attention=True)
    assert [r.text for r in got] == [w["text"] for w in want]
    assert [list(r.tokens) for r in got] == [w["tokens"] for w in want]
    np.testing.assert_allclose([r.score for r in got], [w["score"] for w in want], atol=1e-4)
    for r, w in zip(got, want):
        if not w["attention"]:  # an empty source: no attention rows then or now
            assert r.attention.size == 0
            continue
        np.testing.assert_allclose(r.attention, np.asarray(w["attention"]), atol=1e-4)
