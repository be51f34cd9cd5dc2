"""Token-budget, length-bucketed batch planning (pure numpy; no ONNX Runtime here).

Texts are sorted by token length and packed greedily into batches whose padded size
(`batch_size * padded_length`) stays under `max_batch_tokens` and whose row count stays
under `max_batch_size`. Sorting makes neighbours nearly the same length, so almost no pad
token is computed. Batches are emitted longest first: the largest tensor shapes come
first, so allocator pools reach their peak once and are reused afterwards.

The same budget serves `Classifier.predict` and the translator (whole lists, planned here) and
the dynamic batcher, whose pool picks each run under it (`onnxpress.runtime.row_pool`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# CPU defaults: measured per budget on 2 cores; figures and commands in benchmarks/README.md
# ("Runtime session settings").
DEFAULT_MAX_BATCH_TOKENS = 512
DEFAULT_MAX_BATCH_SIZE = 64
# GPUs are compute-bound much later than 2 CPU cores: bigger batches by default (not measured here).
GPU_MAX_BATCH_TOKENS = 16384
GPU_MAX_BATCH_SIZE = 256


def round_up(n: int | np.ndarray, multiple: int) -> int | np.ndarray:
    """`n` rounded up to a multiple of `multiple` (an int, or elementwise for an array)."""
    return n if multiple <= 1 else -(-n // multiple) * multiple


def bucket_batch_size(n: int, max_batch_size: int) -> int:
    """Smallest power of two >= n (capped): the batch dimension of a fixed-shape bucket."""
    size = 1
    while size < n:
        size *= 2
    return min(size, max(max_batch_size, n))


@dataclass(frozen=True)
class Batch:
    """Rows `indices` (positions in the caller's list) padded to `length` tokens."""

    indices: np.ndarray
    length: int

    @property
    def size(self) -> int:
        return len(self.indices)

    @property
    def tokens(self) -> int:
        """Tokens computed, padding included."""
        return self.size * self.length


@dataclass(frozen=True)
class TokenBudget:
    """Limits for one model run: padded tokens and rows.

    `pad_to_multiple` rounds the padded length up (e.g. 8 or 16 for GPU shape buckets,
    so a CUDA graph per bucket can be reused); 1 means pad only to the longest row.
    """

    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    pad_to_multiple: int = 1

    def __post_init__(self) -> None:
        if self.max_batch_tokens < 1 or self.max_batch_size < 1 or self.pad_to_multiple < 1:
            raise ValueError("max_batch_tokens, max_batch_size and pad_to_multiple must be >= 1")

    def padded(self, length: int) -> int:
        return round_up(max(int(length), 1), self.pad_to_multiple)

    def padded_each(self, lengths: np.ndarray) -> np.ndarray:
        """`padded` of every length in `lengths`."""
        return round_up(np.maximum(lengths, 1), self.pad_to_multiple)

    def most_rows(self, padded: int | np.ndarray) -> int | np.ndarray:
        """The most rows a run of rows padded to `padded` tokens may hold (at least one); elementwise
        for an array."""
        return np.maximum(1, np.minimum(self.max_batch_size, self.max_batch_tokens // padded))

    def fits(self, rows: int, longest: int) -> bool:
        """Would a batch of `rows` rows whose longest row has `longest` tokens fit?

        A single row always fits (a text longer than the budget still runs, alone).
        """
        return rows <= 1 or (rows <= self.max_batch_size and rows * self.padded(longest) <= self.max_batch_tokens)

    def plan(self, lengths: Sequence[int] | np.ndarray) -> list[Batch]:
        """Partition positions 0..n-1 into batches, longest rows first."""
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.size == 0:
            return []
        # stable descending order: ties keep input order (deterministic plans)
        order = np.argsort(-lengths, kind="stable")
        batches: list[Batch] = []
        start = 0
        n = len(order)
        while start < n:
            longest = int(lengths[order[start]])  # descending: the first row is the longest
            padded = self.padded(longest)
            rows = min(int(self.most_rows(padded)), n - start)
            batches.append(Batch(indices=order[start : start + rows], length=padded))
            start += rows
        return batches


def padding_ratio(batches: Sequence[Batch], lengths: Sequence[int] | np.ndarray) -> float:
    """Share of computed tokens that are padding (0.0 = none)."""
    total = sum(b.tokens for b in batches)
    real = int(np.asarray(lengths).sum())
    return 0.0 if total == 0 else 1.0 - real / total
