import numpy as np
import pytest

from onnxpress.runtime.token_budget import TokenBudget, bucket_batch_size, padding_ratio
from onnxpress.runtime.text_tokenizer import Encoded


def _check_plan(lengths, budget):
    batches = budget.plan(lengths)
    seen = np.concatenate([b.indices for b in batches]) if batches else np.array([], dtype=np.int64)
    assert sorted(seen.tolist()) == list(range(len(lengths))), "every row exactly once"
    for b in batches:
        assert b.length >= max(lengths[i] for i in b.indices)
        assert b.length % budget.pad_to_multiple == 0
        assert b.size <= budget.max_batch_size
        assert b.size == 1 or b.tokens <= budget.max_batch_tokens
    return batches


@pytest.mark.parametrize("tokens,size,multiple", [(64, 8, 1), (256, 64, 1), (100, 3, 8), (1, 64, 1)])
def test_plan_invariants(tokens, size, multiple):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=500).tolist()
    _check_plan(lengths, TokenBudget(tokens, size, multiple))


def test_plan_longest_first_and_little_padding():
    rng = np.random.default_rng(1)
    lengths = rng.integers(5, 128, size=2000)
    budget = TokenBudget(2048, 64)
    batches = _check_plan(lengths.tolist(), budget)
    assert [b.length for b in batches] == sorted((b.length for b in batches), reverse=True)
    assert padding_ratio(batches, lengths) < 0.02
    # the naive alternative (input order, batch 8, pad to longest) pads far more
    naive = sum(8 * lengths[i:i + 8].max() for i in range(0, len(lengths), 8))
    assert naive > 1.3 * sum(b.tokens for b in batches)


def test_row_longer_than_budget_runs_alone():
    batches = _check_plan([10, 500, 10], TokenBudget(100, 8))
    assert [b.size for b in batches] == [1, 2] and batches[0].indices.tolist() == [1]


def test_empty_plan_and_bad_budget():
    assert TokenBudget().plan([]) == []
    with pytest.raises(ValueError):
        TokenBudget(0, 1)


def test_fits_matches_plan():
    budget = TokenBudget(64, 4)
    assert budget.fits(1, 1000)
    assert budget.fits(4, 16) and not budget.fits(5, 8) and not budget.fits(3, 22)


def test_bucket_batch_size():
    assert [bucket_batch_size(n, 64) for n in (1, 2, 3, 5, 33, 64)] == [1, 2, 4, 8, 64, 64]


def _encoded(rows):
    lengths = np.array([len(r) for r in rows])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = np.array([t for r in rows for t in r], dtype=np.int64)
    return Encoded(ids=flat, type_ids=flat * 0 + 1, offsets=offsets, truncated=np.zeros(len(rows), bool))


def test_pad_and_take_match_naive():
    rows = [[5, 6, 7], [8], [9, 10, 11, 12, 13], [], [14, 15]]
    enc = _encoded(rows)
    pick = np.array([2, 0, 4, 3])
    ids, mask, tt = enc.pad(pick, 6, pad_id=0, batch_size=8)
    assert ids.shape == mask.shape == tt.shape == (8, 6)
    for r, i in enumerate(pick):
        n = len(rows[i])
        assert ids[r, :n].tolist() == rows[i] and (ids[r, n:] == 0).all()
        assert mask[r, :n].all() and (mask[r, max(n, 1):] == 0).all()
        assert (tt[r, :n] == 1).all() and (tt[r, n:] == 0).all()
    assert mask[3, 0] == 1, "an empty row keeps one attended token"
    assert (mask[4:, 0] == 1).all() and (mask[4:, 1:] == 0).all(), "filler rows: one token"
    sub = enc.take(pick)
    assert [sub.ids[sub.offsets[k]:sub.offsets[k + 1]].tolist() for k in range(4)] == [rows[i] for i in pick]


def test_concat_keeps_rows_in_order():
    a, b = _encoded([[1, 2], [3]]), _encoded([[4, 5, 6]])
    both = Encoded.concat([a, b])
    assert len(both) == 3 and both.lengths.tolist() == [2, 1, 3] and both.ids.tolist() == [1, 2, 3, 4, 5, 6]
    assert len(Encoded.concat([])) == 0
