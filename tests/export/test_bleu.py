"""The one BLEU helper (training/bleu.py) that export gates on and benchmarks compare with."""
from __future__ import annotations

import pytest

pytest.importorskip("sacrebleu")

from onnxpress.training.bleu import bleu_score, corpus_bleu  # noqa: E402

REFS = ["A man rides a bike .", "Two dogs play in the park ."]


def test_bleu_score_and_report_agree():
    hyps = ["A man rides a bike .", "Two dogs run in a park ."]
    score = bleu_score(hyps, REFS)
    assert 0 < score < 100 and corpus_bleu(hyps, REFS)["bleu"] == round(score, 2)
    assert bleu_score(REFS, REFS) == pytest.approx(100.0)


def test_lengths_must_match():
    with pytest.raises(ValueError, match="1 hypotheses but 2 references"):
        bleu_score(["x"], REFS)
