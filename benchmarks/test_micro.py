"""Micro-benchmarks of the runtime's building blocks: tokenization, batching, session run,
end-to-end predict, and one beam-search step. Run: `pytest benchmarks/ --benchmark-json out.json`."""
from __future__ import annotations

import numpy as np
import pytest


def test_tokenize_32(benchmark, classifier, bench_texts):
    enc = benchmark(classifier.encode, bench_texts[:32])
    assert len(enc) == 32


def test_tokenize_1000(benchmark, classifier, bench_texts):
    enc = benchmark(classifier.encode, bench_texts[:1000])
    assert len(enc) == 1000


def test_batch_plan_and_pad_1000(benchmark, classifier, bench_texts):
    enc = classifier.encode(bench_texts[:1000])

    def plan_and_pad():
        return [enc.pad(b.indices, b.length, classifier.tokenizer.pad_id) for b in classifier.budget.plan(enc.lengths)]

    batches = benchmark(plan_and_pad)
    assert sum(ids.shape[0] for ids, _, _ in batches) == 1000


@pytest.mark.parametrize("batch_size", [1, 8, 32])
def test_session_run(benchmark, classifier, bench_texts, batch_size):
    enc = classifier.encode(bench_texts[:batch_size])
    rows = np.arange(batch_size)
    ids, mask, type_ids = enc.pad(rows, int(enc.lengths.max()), classifier.tokenizer.pad_id)
    feeds = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in classifier.engine.input_names:
        feeds["token_type_ids"] = type_ids if type_ids is not None else np.zeros_like(ids)
    out = benchmark(classifier.engine.run, feeds)
    assert out[0].shape[0] == batch_size


@pytest.mark.parametrize("batch_size", [1, 32])
def test_predict_end_to_end(benchmark, classifier, bench_texts, batch_size):
    preds = benchmark(classifier.predict, bench_texts[:batch_size])
    assert len(preds) == batch_size


class RandomStepDecoder:
    """A numpy stand-in for the ONNX decoder step with realistic shapes, so the benchmark
    isolates the search's own per-step work (candidate ranking, reordering, bookkeeping).
    Like the exported step graph, it returns the top-k log-probs and ids, best first."""

    def __init__(self, vocab: int, src_len: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        logits = rng.standard_normal((vocab,)).astype(np.float32)
        self.log_probs = logits - np.log(np.exp(logits).sum())
        self.vocab, self.src_len = vocab, src_len

    def step(self, prev_tokens, hidden, k):
        n, beams = prev_tokens.shape
        lp = self.log_probs[None, None, :] + 0.01 * (prev_tokens[:, :, None] % 7).astype(np.float32)
        ids = np.argpartition(-lp, k - 1, axis=-1)[..., :k]
        top = np.take_along_axis(lp, ids, axis=-1)
        order = np.argsort(-top, axis=-1, kind="stable")
        return (np.take_along_axis(top, order, -1).astype(np.float32), np.take_along_axis(ids, order, -1),
                hidden, np.zeros((n, beams, self.src_len), np.float32))

    def keep(self, sentences):
        pass


@pytest.mark.parametrize("beam_size", [1, 4])
def test_beam_search_steps(benchmark, beam_size):
    from onnxpress.runtime.beam_search import beam_search, greedy_search

    n, vocab, hidden, steps = 16, 8000, 512, 20
    dec = RandomStepDecoder(vocab, src_len=15)
    h = np.zeros((n, hidden), np.float32)
    lengths = np.full(n, steps)
    if beam_size == 1:
        hyps = benchmark(greedy_search, dec, h, lengths, bos_id=1, eos_id=2)
    else:
        hyps = benchmark(beam_search, dec, h, lengths, bos_id=1, eos_id=2, beam_size=beam_size)
    assert len(hyps) == n
    benchmark.extra_info.update({"sentences": n, "vocab": vocab, "max_steps": steps})
