"""The gates: whether a validated variant may be served, and if not, why (one line for the manifest)."""
from __future__ import annotations

from typing import Any


def gate(
    metrics: dict[str, Any],
    reference_accuracy: float,
    max_accuracy_drop: float,
    min_agreement: float = 0.0,
) -> tuple[bool, str | None]:
    """Classifier: accept a variant unless it loses more than `max_accuracy_drop` points (or agrees too little).

    Returns (passed, reason). Drops are in percentage points against the PyTorch checkpoint;
    `metrics` gains `accuracy_drop_points`.
    """
    drop = (reference_accuracy - metrics["accuracy"]) * 100.0
    metrics["accuracy_drop_points"] = round(drop, 4)
    if drop > max_accuracy_drop:
        return False, f"accuracy drop {drop:.2f} points > {max_accuracy_drop:g} allowed"
    if metrics["argmax_agreement"] < min_agreement:
        return False, f"argmax agreement {metrics['argmax_agreement']:.4f} < {min_agreement:g} required"
    return True, None


def gate_reasons(variant: str, bleu_score: float, reference_bleu: float, greedy_parity: float,
                 max_bleu_drop: float, min_greedy_parity: float) -> list[str]:
    """Translator: why a variant must not be served (empty: it passes). fp32 must also match PyTorch's greedy tokens."""
    reasons = []
    drop = reference_bleu - bleu_score
    if drop > max_bleu_drop:
        reasons.append(f"BLEU {bleu_score:.2f} is {drop:.2f} below PyTorch's {reference_bleu:.2f} "
                       f"(max drop {max_bleu_drop})")
    if variant == "fp32" and greedy_parity < min_greedy_parity:
        reasons.append(f"fp32 greedy tokens match PyTorch on {greedy_parity:.1%} of sentences "
                       f"(needs {min_greedy_parity:.0%})")
    return reasons
