"""Batched greedy and beam search in numpy over a step-wise attention decoder.

The algorithms know nothing about ONNX Runtime: they drive any object with the
`StepDecoder` protocol, which holds the encoder output for the sentences still being
decoded. The decoder has a beam axis, so the encoder states of a sentence are shared by
all its beams (never repeated per beam); a sentence that is finished leaves the batch
through `StepDecoder.keep`, which shrinks every per-sentence array once.

Scores follow the PyTorch reference decoder (`onnxpress.training.decoding`): a hypothesis
is ranked by its summed log-probability divided by `len ** length_penalty`, where `len`
counts the generated tokens including the end-of-sentence token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from onnxpress.errors import UserError

# Decoder rows are sentences x beams, so time and memory grow with the beam and a typo could exhaust
# the machine (figures: benchmarks/README.md, "Translator", "Beam size bound").
MAX_BEAM_SIZE = 64


def check_beam_size(beam: object, most: int = MAX_BEAM_SIZE) -> int:
    """`beam` as an int from 1 to `most`, or a `UserError` that says so."""
    if isinstance(beam, bool) or not isinstance(beam, (int, np.integer)) or not 1 <= beam <= most:
        raise UserError(f"beam_size must be an integer from 1 to {most} (got {beam!r})")
    return int(beam)


class StepDecoder(Protocol):
    """One decoding step for a batch of sentences x beams, plus batch shrinking."""

    def step(self, prev_tokens: np.ndarray, hidden: np.ndarray, k: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """prev_tokens int64 [N, K], hidden [N, K, H] -> (top-k log-probs [N, K, k], their token
        ids [N, K, k] (best first; lower id first on ties), new_hidden [N, K, H], attention [N, K, S])."""
        ...

    def keep(self, sentences: np.ndarray) -> None:
        """Keep only these sentences (indices into the current batch), in this order."""
        ...


@dataclass
class Hypothesis:
    """One decoded sentence: generated ids without BOS/EOS, and per-token attention."""

    tokens: list[int]
    score: float  # length-normalized log-probability, what the search ranks by
    log_prob: float  # summed log-probability of tokens (+ EOS when it was produced)
    finished: bool  # False when the length bound stopped it before EOS
    # [len(tokens) + finished, S] over the padded source: one row per generated token, EOS included
    attention: np.ndarray | None = None


def _normalize(log_prob: np.ndarray | float, length: np.ndarray | int, length_penalty: float):
    if length_penalty == 0.0:
        return log_prob
    return log_prob / np.power(np.maximum(length, 1), length_penalty)


def greedy_search(
    decoder: StepDecoder,
    hidden: np.ndarray,
    max_lengths: np.ndarray,
    bos_id: int,
    eos_id: int,
    return_attention: bool = False,
    length_penalty: float = 1.0,
) -> list[Hypothesis]:
    """Argmax decoding of `len(hidden)` sentences at once.

    hidden: initial decoder state [N, H]. max_lengths: [N] bound on generated tokens
    (EOS included). A sentence leaves the batch as soon as it emits EOS or hits its bound.
    """
    n = hidden.shape[0]
    max_lengths = np.asarray(max_lengths, dtype=np.int64)
    active = np.arange(n)  # original index of each row still decoding
    prev = np.full((n, 1), bos_id, dtype=np.int64)
    state = hidden[:, None, :]
    log_prob = np.zeros(n, dtype=np.float32)
    generated = np.zeros((n, max(int(max_lengths.max(initial=0)), 1)), dtype=np.int64)  # [sentence, step]
    attn_rows: list[list[np.ndarray]] = [[] for _ in range(n)]
    results: list[Hypothesis | None] = [None] * n
    step = 0
    while len(active):
        step += 1
        top_lp, top_ids, state, attention = decoder.step(prev, state, 1)
        best = top_ids[:, 0, 0]
        log_prob[active] += top_lp[:, 0, 0]
        generated[active, step - 1] = best
        if return_attention:
            for row, orig in enumerate(active):
                attn_rows[orig].append(attention[row, 0])
        is_eos = best == eos_id
        done = is_eos | (step >= max_lengths[active])
        if done.any():
            for row in np.flatnonzero(done):
                orig = active[row]
                # every step before this one produced a token other than EOS
                results[orig] = Hypothesis(
                    tokens=generated[orig, : step - int(is_eos[row])].tolist(),
                    score=float(_normalize(log_prob[orig], step, length_penalty)),
                    log_prob=float(log_prob[orig]),
                    finished=bool(is_eos[row]),
                    attention=_stack(attn_rows[orig], attention.shape[-1]) if return_attention else None,
                )
            keep = np.flatnonzero(~done)
            active = active[keep]
            if not len(active):
                break
            decoder.keep(keep)
            state = state[keep]
            best = best[keep]
        prev = best[:, None].astype(np.int64)
    return results  # type: ignore[return-value]


def _stack(rows: list[np.ndarray], src_len: int) -> np.ndarray:
    if not rows:
        return np.zeros((0, src_len), dtype=np.float32)
    return np.stack(rows).astype(np.float32, copy=False)


def beam_search(
    decoder: StepDecoder,
    hidden: np.ndarray,
    max_lengths: np.ndarray,
    bos_id: int,
    eos_id: int,
    beam_size: int,
    return_attention: bool = False,
    length_penalty: float = 1.0,
) -> list[Hypothesis]:
    """Beam search over `len(hidden)` sentences at once, `beam_size` live beams each.

    Each step ranks the top 2K (beam, token) continuations per sentence. An EOS among the
    top K closes a hypothesis; the best K non-EOS continuations stay live, so the beam stays
    full. A sentence is done once it holds K closed hypotheses or reaches its length bound
    (there the candidates close in rank order until K are closed), and it leaves the batch
    at once. The best closed hypothesis by normalized score wins (the earliest closed among
    equals). These are the rules of `onnxpress.training.decoding.beam_search`.
    """
    k = int(beam_size)
    if k < 1:
        raise ValueError("beam_size must be >= 1")
    n = hidden.shape[0]
    max_lengths = np.asarray(max_lengths, dtype=np.int64)
    active = np.arange(n)
    prev = np.full((n, 1), bos_id, dtype=np.int64)
    state = hidden[:, None, :]  # one beam until the first expansion
    beam_lp = np.zeros((n, 1), dtype=np.float32)  # float32 sums, as the PyTorch reference
    history = np.zeros((n, 1, 0), dtype=np.int64)  # generated tokens per live beam
    attn_hist: np.ndarray | None = None  # [N, K, t, S], rows of the steps before this one
    finished: list[list[tuple[float, float, list[int], np.ndarray | None, bool]]] = [[] for _ in range(n)]
    step = 0
    while len(active):
        step += 1
        # K + 1 per beam suffice: the ranking is read only up to the K-th non-EOS candidate, and
        # a beam has at most one EOS, so no beam places more than K + 1 candidates before it
        top_lp, top_ids, new_state, attention = decoder.step(prev, state, k + 1)
        n_act, beams, width_b = top_lp.shape
        flat = (beam_lp[:, :, None] + top_lp).reshape(n_act, beams * width_b)
        flat_ids = top_ids.reshape(n_act, beams * width_b)
        width = min(2 * k, flat.shape[1])
        # stable: equal scores keep (beam, rank) order, i.e. lower beam then lower token id first,
        # the order of a topk over the flat [beam * V] scores
        order = np.argsort(-flat, axis=1, kind="stable")[:, :width]
        top_scores = np.take_along_axis(flat, order, axis=1)
        cand_beam = order // width_b
        cand_tok = np.take_along_axis(flat_ids, order, axis=1)
        is_eos = cand_tok == eos_id
        at_limit = step >= max_lengths[active]

        def close(row: int, pos: int, with_token: bool) -> None:
            orig, b = active[row], cand_beam[row, pos]
            lp = float(top_scores[row, pos])
            toks = history[row, b].tolist() + ([int(cand_tok[row, pos])] if with_token else [])
            attn = None
            if return_attention:
                now = attention[row, b][None]
                attn = now if attn_hist is None else np.concatenate([attn_hist[row, b], now])
            finished[orig].append((float(_normalize(lp, step, length_penalty)), lp, toks, attn, not with_token))

        # an EOS ranked within the top K closes a hypothesis (so beam size 1 is greedy search)
        eos_rows, eos_pos = np.nonzero(is_eos[:, :k] & ~at_limit[:, None])
        for row, pos in zip(eos_rows, eos_pos):  # row-major: rank order within a sentence
            if len(finished[active[row]]) < k:
                close(row, pos, with_token=False)
        # at the length bound, candidates close in rank order (EOS only within the top K) until K are closed
        for row in np.flatnonzero(at_limit):
            for pos in range(width):
                if len(finished[active[row]]) >= k:
                    break
                if is_eos[row, pos] and pos >= k:
                    continue
                close(row, pos, with_token=not is_eos[row, pos])

        n_done = np.fromiter((len(finished[o]) for o in active), dtype=np.int64, count=n_act)
        done = (n_done >= k) | at_limit
        keep = np.flatnonzero(~done)
        active = active[keep]
        if not len(active):
            break
        # the best K non-EOS continuations stay live (there are at least K among 2K)
        live = np.argsort(is_eos[keep], axis=1, kind="stable")[:, :k]
        live_beam = np.take_along_axis(cand_beam[keep], live, axis=1)
        live_tok = np.take_along_axis(cand_tok[keep], live, axis=1)
        beam_lp = np.take_along_axis(top_scores[keep], live, axis=1)
        rows = keep[:, None]
        history = np.concatenate([history[rows, live_beam], live_tok[:, :, None]], axis=2)
        if return_attention:
            now = attention[rows, live_beam][:, :, None, :]
            attn_hist = now if attn_hist is None else np.concatenate([attn_hist[rows, live_beam], now], axis=2)
        state = new_state[rows, live_beam]
        prev = live_tok.astype(np.int64)
        if len(keep) < n_act:
            decoder.keep(keep)  # finished sentences leave the batch

    results = []
    for hyps in finished:
        # max() keeps the first of equal scores: the earlier-closed hypothesis
        score, lp, toks, attn, fin = max(hyps, key=lambda h: h[0])
        results.append(
            Hypothesis(
                tokens=toks,
                score=score,
                log_prob=lp,
                finished=fin,
                attention=None if attn is None else np.asarray(attn, dtype=np.float32),
            )
        )
    return results
