"""Batch invariance: does a text get the same answer whatever shares its batch?

The same texts are scored in batches of 64 (input order, padded to each batch's longest) and
one at a time; the report is the largest probability difference and the number of changed
labels. Dynamic int8 fails this (its activation scale spans the whole padded batch); fp32 and
statically quantized graphs pass it.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

Proba = Callable[[Sequence[str]], np.ndarray]


def batch_invariance(proba: Proba, texts: Sequence[str], batch_size: int = 64) -> dict[str, Any]:
    """Max |p_batched - p_alone| over all texts and labels, and how many argmax labels differ."""
    texts = list(texts)
    batched = np.concatenate([proba(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)])
    alone = np.concatenate([proba([t]) for t in texts])
    return compare(batched, alone, batch_size)


def compare(a: np.ndarray, b: np.ndarray, batch_size: int | None = None) -> dict[str, Any]:
    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return {"texts": int(len(a)), "batch_size": batch_size, "max_abs_dprob": float(diff.max()) if diff.size else 0.0,
            "label_flips": int((np.argmax(a, axis=1) != np.argmax(b, axis=1)).sum())}
