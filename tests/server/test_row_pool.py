"""Choosing the classifier batcher's next run from its pool of waiting rows (pure numpy)."""
from __future__ import annotations

import numpy as np
import pytest

from onnxpress.runtime.row_pool import pick_run
from onnxpress.runtime.token_budget import TokenBudget


def test_the_run_holds_the_given_row_and_the_neighbours_that_waste_least():
    lengths = [100, 50, 50, 50, 10]
    batch = pick_run(lengths, 4, TokenBudget(max_batch_tokens=150, max_batch_size=64))
    assert sorted(batch.indices.tolist()) == [2, 3, 4]  # 50 + 50 + 10 padded to 50: 3 rows fit
    assert batch.length == 50


def test_a_smaller_run_beats_padding_short_rows_to_a_long_ones_length():
    batch = pick_run([10, 10, 10, 80], 0, TokenBudget(max_batch_tokens=512, max_batch_size=64))
    assert sorted(batch.indices.tolist()) == [0, 1, 2] and batch.length == 10


def test_a_long_row_takes_neighbours_of_about_its_length():
    batch = pick_run([78, 80, 10, 10], 1, TokenBudget(max_batch_tokens=512, max_batch_size=64))
    assert sorted(batch.indices.tolist()) == [0, 1] and batch.length == 80


def test_the_run_overhead_decides_between_a_padded_pair_and_a_row_alone():
    budget = TokenBudget(max_batch_tokens=512, max_batch_size=64)
    assert pick_run([50, 40], 0, budget, run_overhead_tokens=0).indices.tolist() == [0]  # 50/50 > 90/100
    assert sorted(pick_run([50, 40], 0, budget, run_overhead_tokens=100).indices.tolist()) == [0, 1]  # 90/200 > 50/150


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


def test_the_pick_is_the_least_wasteful_window_by_brute_force():
    rng = np.random.default_rng(1)
    budget = TokenBudget(max_batch_tokens=256, max_batch_size=8)
    for _ in range(200):
        lengths = rng.integers(1, 100, size=int(rng.integers(1, 30)))
        must = rng.choice(len(lengths), size=min(len(lengths), int(rng.integers(1, 4))), replace=False)
        order = np.argsort(-lengths, kind="stable")
        best = -1.0
        for start in range(len(order)):
            for end in range(start + 1, len(order) + 1):
                rows, longest = end - start, int(lengths[order[start]])
                if not set(order[start:end]) & set(must.tolist()) or not budget.fits(rows, longest):
                    continue
                best = max(best, lengths[order[start:end]].sum() / (rows * longest + 16))
        batch = pick_run(lengths, must, budget, run_overhead_tokens=16)
        assert lengths[batch.indices].sum() / (batch.tokens + 16) == pytest.approx(best)


def test_with_a_gpu_budget_the_size_ladder_stays_near_the_best_window():
    """Beyond 64 rows only a ladder of sizes is scored; the pick stays within 0.5% of scoring every size."""
    from onnxpress.runtime.token_budget import GPU_MAX_BATCH_SIZE, GPU_MAX_BATCH_TOKENS

    rng = np.random.default_rng(2)
    budget = TokenBudget(GPU_MAX_BATCH_TOKENS, GPU_MAX_BATCH_SIZE, pad_to_multiple=8)
    for i in range(20):
        low = 2 if i % 2 else 100  # mixed lengths, or nearly equal ones (where big runs win)
        lengths = rng.integers(low, 129, size=int(rng.integers(100, 400)))
        must = rng.choice(len(lengths), size=16, replace=False)
        order = np.argsort(-lengths, kind="stable")
        real = np.concatenate([[0], np.cumsum(lengths[order])])
        wanted = np.concatenate([[0], np.cumsum(np.isin(order, must))])
        best = 0.0
        for start in range(len(order)):
            padded = budget.padded(lengths[order[start]])
            for end in range(start + 1, min(len(order), start + budget.max_batch_size) + 1):
                if budget.fits(end - start, padded) and wanted[end] > wanted[start]:
                    best = max(best, (real[end] - real[start]) / ((end - start) * padded + 16))
        batch = pick_run(lengths, must, budget, run_overhead_tokens=16)
        assert set(batch.indices.tolist()) & set(must.tolist()) and batch.tokens <= budget.max_batch_tokens
        assert lengths[batch.indices].sum() / (batch.tokens + 16) >= 0.995 * best


@pytest.mark.parametrize("length", [1, 7, 8, 700])
def test_a_lone_row_leaves_the_pool_as_the_run_pick_run_would_choose(length):
    """The lone-row shortcut in `RowPool.next_run` (a lone single-text request, the low-load case)
    gives the run and the empty pool that picking would."""
    from types import SimpleNamespace

    from onnxpress.runtime.row_pool import RowPool
    from onnxpress.runtime.text_tokenizer import Encoded

    budget = TokenBudget(max_batch_tokens=512, max_batch_size=64, pad_to_multiple=8)
    pool = RowPool(budget, n_labels=4)

    def encoded(lengths):
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return Encoded(np.arange(offsets[-1], dtype=np.int64) + 5, None, offsets, np.zeros(len(lengths), bool))

    (pending,) = pool.add([SimpleNamespace(texts=["t"])], encoded([length]))
    rows, batch, targets = pool.next_run()
    expected = pick_run([length], 0, budget)
    assert (batch.length, batch.size) == (expected.length, 1) and targets == [(pending, 0)]
    assert rows.lengths.tolist() == [length] and rows.ids.tolist() == list(range(5, 5 + length))
    assert len(pool) == 0
    first, _ = pool.add([SimpleNamespace(texts=["a", "b"]), SimpleNamespace(texts=["c"])], encoded([3, 4, 5]))
    rows, batch, targets = pool.next_run()  # the emptied pool takes rows again, and picks among them
    assert any(owner is first for owner, _ in targets) and len(pool) + batch.size == 3
