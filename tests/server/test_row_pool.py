"""Choosing the classifier batcher's next run from its pool of waiting rows (pure numpy)."""
from __future__ import annotations

import numpy as np

from onnxpress.runtime.row_pool import pick_run
from onnxpress.runtime.token_budget import TokenBudget


def test_the_run_holds_the_given_row_and_the_neighbours_that_fill_the_budget_best():
    lengths = [100, 50, 50, 50, 10]
    batch = pick_run(lengths, 4, TokenBudget(max_batch_tokens=150, max_batch_size=64))
    assert sorted(batch.indices.tolist()) == [2, 3, 4]  # 50 + 50 + 10 padded to 50: 3 rows fit
    assert batch.length == 50


def test_a_long_row_takes_shorter_neighbours_not_longer_ones():
    lengths = [10, 10, 10, 80, 120]
    batch = pick_run(lengths, 3, TokenBudget(max_batch_tokens=160, max_batch_size=64))
    assert 3 in batch.indices and batch.length == 80 and batch.size == 2


def test_a_row_over_the_budget_runs_alone():
    batch = pick_run([5, 700, 6], 1, TokenBudget(max_batch_tokens=512, max_batch_size=64))
    assert batch.indices.tolist() == [1] and batch.tokens == 700


def test_every_pick_fits_the_budget_and_includes_its_row():
    rng = np.random.default_rng(0)
    budget = TokenBudget(max_batch_tokens=512, max_batch_size=12, pad_to_multiple=8)
    for _ in range(200):
        lengths = rng.integers(1, 130, size=int(rng.integers(1, 60)))
        must = int(rng.integers(0, len(lengths)))
        batch = pick_run(lengths, must, budget)
        assert must in batch.indices
        assert len(set(batch.indices.tolist())) == batch.size <= budget.max_batch_size
        assert batch.length == budget.padded(lengths[batch.indices].max())
        assert batch.size == 1 or batch.tokens <= budget.max_batch_tokens


def test_any_row_of_the_oldest_request_may_anchor_the_run():
    lengths = [50, 50, 50, 10, 10]  # the oldest request holds rows 2 (50 tokens) and 4 (10 tokens)
    batch = pick_run(lengths, [2, 4], TokenBudget(max_batch_tokens=150, max_batch_size=64))
    assert sorted(batch.indices.tolist()) == [0, 1, 2]
