"""The numpy search algorithms on a small numpy decoder whose answers can be enumerated."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from onnxpress.runtime.beam_search import beam_search, greedy_search

BOS, EOS = 0, 1


class TableDecoder:
    """A deterministic step decoder: next-token log-probs depend on the previous token, the
    hidden state and the sentence's own source vector, so sentences differ and beams matter."""

    def __init__(self, sources: np.ndarray, vocab: int = 6, hidden: int = 5, seed: int = 0, eos_bias: float = 0.0):
        rng = np.random.default_rng(seed)
        self.src = sources  # [N, S] floats: the "encoder states"
        self.emb = rng.normal(size=(vocab, hidden))
        self.w = rng.normal(size=(hidden, hidden)) * 0.7
        self.out = rng.normal(size=(hidden, vocab)) * 1.5
        self.bias = np.zeros(vocab)
        self.bias[EOS] = eos_bias
        self.batch_sizes: list[int] = []

    def step(self, prev, hidden, k):
        log_probs, new, attn = self.full_step(prev, hidden)
        k = min(k, log_probs.shape[-1])
        ids = np.argsort(-log_probs, axis=-1, kind="stable")[..., :k]
        return np.take_along_axis(log_probs, ids, axis=-1), ids.astype(np.int64), new, attn

    def full_step(self, prev, hidden):
        self.batch_sizes.append(prev.shape[0])
        assert prev.shape == hidden.shape[:2] and prev.dtype == np.int64
        ctx = self.src.mean(axis=1)[:, None, None]  # [N,1,1], shared by the beams of a sentence
        new = np.tanh(hidden @ self.w + self.emb[prev] + ctx)
        logits = new @ self.out + self.bias
        logits[..., BOS] = -1e9
        log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
            - logits.max(-1, keepdims=True)
        attn = np.exp(self.src[:, None, :] * new[..., :1])
        attn /= attn.sum(-1, keepdims=True)
        return log_probs.astype(np.float32), new.astype(np.float32), attn.astype(np.float32)

    def keep(self, sentences):
        self.src = self.src[sentences]


def _setup(n=5, seed=0, eos_bias=0.0):
    rng = np.random.default_rng(seed + 100)
    sources = rng.normal(size=(n, 4))
    hidden = rng.normal(size=(n, 5)).astype(np.float32)
    return sources, hidden, (lambda: TableDecoder(sources.copy(), seed=seed, eos_bias=eos_bias))


def _sequence_log_prob(make, sources_row, hidden_row, tokens, finished):
    dec = make()
    dec.src = sources_row[None]
    prev = np.array([[BOS]], dtype=np.int64)
    h = hidden_row[None, None]
    total = 0.0
    for tok in list(tokens) + ([EOS] if finished else []):
        lp, h, _ = dec.full_step(prev, h)
        total += float(lp[0, 0, tok])
        prev = np.array([[tok]], dtype=np.int64)
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_one_equals_greedy(seed):
    sources, hidden, make = _setup(seed=seed)
    max_len = np.full(len(hidden), 8)
    greedy = greedy_search(make(), hidden, max_len, BOS, EOS, return_attention=True)
    beam = beam_search(make(), hidden, max_len, BOS, EOS, beam_size=1, return_attention=True)
    for g, b in zip(greedy, beam):
        assert g.tokens == b.tokens
        assert g.finished == b.finished
        assert g.score == pytest.approx(b.score, abs=1e-5)
        np.testing.assert_allclose(g.attention, b.attention, atol=1e-6)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_batch_equals_one_by_one(search):
    sources, hidden, make = _setup(n=6, seed=3)
    max_len = np.array([3, 9, 5, 9, 2, 7])

    def run(dec, h, ml):
        if search == "greedy":
            return greedy_search(dec, h, ml, BOS, EOS, return_attention=True)
        return beam_search(dec, h, ml, BOS, EOS, beam_size=3, return_attention=True)

    batch = run(make(), hidden, max_len)
    for i in range(len(hidden)):
        dec = make()
        dec.src = sources[i:i + 1].copy()
        (alone,) = run(dec, hidden[i:i + 1], max_len[i:i + 1])
        assert alone.tokens == batch[i].tokens
        assert alone.score == pytest.approx(batch[i].score, abs=1e-5)
        np.testing.assert_allclose(alone.attention, batch[i].attention, atol=1e-6)


def test_length_bound_and_attention_shape():
    sources, hidden, make = _setup(n=4, seed=5, eos_bias=-50.0)  # EOS never wins: every sentence hits its bound
    max_len = np.array([1, 2, 4, 6])
    for hyps in (greedy_search(make(), hidden, max_len, BOS, EOS, return_attention=True),
                 beam_search(make(), hidden, max_len, BOS, EOS, beam_size=2, return_attention=True)):
        for hyp, bound in zip(hyps, max_len):
            assert len(hyp.tokens) == bound and not hyp.finished
            assert hyp.attention.shape == (bound, sources.shape[1])
            np.testing.assert_allclose(hyp.attention.sum(1), 1.0, atol=1e-5)


def test_finished_sentences_leave_the_batch():
    sources, hidden, make = _setup(n=5, seed=7)
    dec = make()
    max_len = np.array([1, 2, 3, 4, 12])
    greedy_search(dec, hidden, max_len, BOS, EOS)
    sizes = dec.batch_sizes
    assert sizes[0] == 5 and sizes == sorted(sizes, reverse=True)
    assert sizes[-1] == 1 and len(sizes) <= 12
    dec = make()
    beam_search(dec, hidden, max_len, BOS, EOS, beam_size=3)
    assert dec.batch_sizes[0] == 5 and dec.batch_sizes == sorted(dec.batch_sizes, reverse=True)
    assert dec.batch_sizes[-1] == 1


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_finds_the_exhaustive_best(length_penalty):
    """With a beam wider than the number of live prefixes, beam search is exhaustive."""
    sources, hidden, make = _setup(n=3, seed=11)
    vocab, bound = 6, 3
    hyps = beam_search(make(), hidden, np.full(3, bound), BOS, EOS, beam_size=64, length_penalty=length_penalty)
    words = [t for t in range(vocab) if t not in (BOS, EOS)]
    for i, hyp in enumerate(hyps):
        best = -np.inf
        for length in range(0, bound + 1):
            for seq in itertools.product(words, repeat=length):
                finished = length < bound
                for fin in ([True, False] if length == bound else [finished]):
                    n = length + int(fin)
                    if n == 0 or n > bound:
                        continue
                    lp = _sequence_log_prob(make, sources[i], hidden[i], seq, fin)
                    best = max(best, lp / (n ** length_penalty))
        assert hyp.score == pytest.approx(best, abs=1e-4)
        own = _sequence_log_prob(make, sources[i], hidden[i], hyp.tokens, hyp.finished)
        assert hyp.log_prob == pytest.approx(own, abs=1e-4)


def test_beam_improves_on_greedy_overall():
    """Beam search is not better on every sentence (pruning, stopping at K closed hypotheses), but is overall."""
    gain = []
    for seed in range(6):
        sources, hidden, make = _setup(n=8, seed=seed)
        max_len = np.full(8, 6)
        greedy = greedy_search(make(), hidden, max_len, BOS, EOS, length_penalty=0.0)
        beam = beam_search(make(), hidden, max_len, BOS, EOS, beam_size=4, length_penalty=0.0)
        gain += [b.score - g.score for g, b in zip(greedy, beam)]
    assert sum(gain) > 0 and sum(g > 1e-6 for g in gain) > sum(g < -1e-6 for g in gain)


class FullVocabDecoder(TableDecoder):
    """Answers every step with the whole vocabulary ranked, whatever `k` the search asks for."""

    def step(self, prev, hidden, k):
        return super().step(prev, hidden, self.out.shape[1])


@pytest.mark.parametrize("beam,eos_bias", [(2, 0.0), (3, 1.5), (4, 0.0), (4, 2.5), (5, -1.0)])
def test_beam_reads_k_plus_one_per_beam_as_if_all(beam, eos_bias):
    """Asking K + 1 continuations per beam gives the search over the full vocabulary exactly."""
    rng = np.random.default_rng(beam)
    sources, hidden = rng.normal(size=(8, 4)), rng.normal(size=(8, 5)).astype(np.float32)
    max_len = np.array([1, 2, 3, 5, 7, 9, 9, 9])
    asked: list[int] = []

    class Counting(TableDecoder):
        def step(self, prev, h, k):
            asked.append(k)
            return super().step(prev, h, k)

    narrow = beam_search(Counting(sources.copy(), vocab=14, seed=beam, eos_bias=eos_bias), hidden, max_len,
                         BOS, EOS, beam_size=beam, return_attention=True)
    full = beam_search(FullVocabDecoder(sources.copy(), vocab=14, seed=beam, eos_bias=eos_bias), hidden, max_len,
                       BOS, EOS, beam_size=beam, return_attention=True)
    assert set(asked) == {beam + 1}
    for a, b in zip(narrow, full):
        assert (a.tokens, a.finished) == (b.tokens, b.finished)
        assert a.score == b.score and a.log_prob == b.log_prob
        np.testing.assert_array_equal(a.attention, b.attention)
