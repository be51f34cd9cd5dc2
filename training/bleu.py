"""Corpus BLEU with sacrebleu on detokenized text (default 13a tokenization, case-sensitive)."""
from __future__ import annotations

from collections.abc import Sequence


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """{"bleu": score, "signature": sacrebleu's signature, "brevity_penalty": bp} for one reference each."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    metric = sacrebleu.BLEU()
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return {
        "bleu": round(result.score, 2),
        "signature": str(metric.get_signature()),
        "brevity_penalty": round(result.bp, 4),
        "sys_len": result.sys_len,
        "ref_len": result.ref_len,
    }
