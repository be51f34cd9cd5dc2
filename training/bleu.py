"""Corpus BLEU with sacrebleu on detokenized text (default 13a tokenization, case-sensitive).

The one BLEU of the project: training reports it, export gates on it, benchmarks compare with it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _score(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[Any, Any]:
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    metric = sacrebleu.BLEU()
    return metric, metric.corpus_score(list(hypotheses), [list(references)])


def bleu_score(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0..100, unrounded) of `hypotheses` against one reference each."""
    return float(_score(hypotheses, references)[1].score)


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """{"bleu": score, "signature": sacrebleu's signature, "brevity_penalty": bp} for one reference each."""
    metric, result = _score(hypotheses, references)
    return {
        "bleu": round(result.score, 2),
        "signature": str(metric.get_signature()),
        "brevity_penalty": round(result.bp, 4),
        "sys_len": result.sys_len,
        "ref_len": result.ref_len,
    }
