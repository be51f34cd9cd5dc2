"""Batches and losses for translator training: encoded pairs, length-bucketed batches, padding, NLL."""
from __future__ import annotations

import random

import torch
from torch import Tensor

from onnxpress.training.decoding import encode_sources
from onnxpress.training.seq2seq import Seq2Seq, Seq2SeqConfig


def encode_pairs(src_tok, tgt_tok, corpus, cfg: Seq2SeqConfig, max_len: int | None) -> list[tuple[list[int], list[int]]]:
    """(source ids, target ids) per sentence pair; pairs longer than `max_len` on either side dropped."""
    src = encode_sources(src_tok, corpus.source, cfg.max_src_len)
    tgt = [e.ids for e in tgt_tok.encode_batch(corpus.target)]
    pairs = list(zip(src, tgt))
    if max_len is not None:
        pairs = [p for p in pairs if len(p[0]) <= max_len and len(p[1]) <= max_len]
    return pairs


def make_batches(pairs: list[tuple[list[int], list[int]]], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Index batches of similar length (sorted with a little noise), in shuffled order."""
    order = sorted(range(len(pairs)), key=lambda i: (len(pairs[i][0]) + rng.random() * 2, len(pairs[i][1])))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(pairs, idx: list[int], cfg: Seq2SeqConfig) -> tuple[Tensor, Tensor, Tensor]:
    """(src_ids [B,S], src_mask [B,S], tgt [B,T+2] = <s> y </s> padded)."""
    src = [pairs[i][0] for i in idx]
    tgt = [[cfg.bos_id] + pairs[i][1] + [cfg.eos_id] for i in idx]
    s_w, t_w = max(map(len, src)), max(map(len, tgt))
    src_ids = torch.full((len(idx), s_w), cfg.pad_id, dtype=torch.long)
    tgt_ids = torch.full((len(idx), t_w), cfg.pad_id, dtype=torch.long)
    for row, (s, t) in enumerate(zip(src, tgt)):
        src_ids[row, : len(s)] = torch.tensor(s)
        tgt_ids[row, : len(t)] = torch.tensor(t)
    return src_ids, src_ids != cfg.pad_id, tgt_ids


def sequence_loss(logits: Tensor, target: Tensor, pad_id: int, smoothing: float) -> tuple[Tensor, Tensor, int]:
    """(label-smoothed loss to optimize, summed NLL, number of target tokens); padding ignored."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    keep = target != pad_id
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    n = int(keep.sum())
    nll_sum = (nll * keep).sum()
    if smoothing > 0:
        smooth_sum = (-logp.mean(-1) * keep).sum()
        loss = ((1 - smoothing) * nll_sum + smoothing * smooth_sum) / max(n, 1)
    else:
        loss = nll_sum / max(n, 1)
    return loss, nll_sum.detach(), n


@torch.no_grad()
def evaluate_loss(model: Seq2Seq, pairs, batch_size: int) -> float:
    """Mean per-token NLL (no smoothing, no dropout) over `pairs`; exp of it is the perplexity."""
    model.eval()
    total, tokens = 0.0, 0
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]))
    for start in range(0, len(order), batch_size):
        src, mask, tgt = collate(pairs, order[start : start + batch_size], model.cfg)
        logits, _ = model(src, mask, tgt[:, :-1])
        _, nll, n = sequence_loss(logits, tgt[:, 1:], model.cfg.pad_id, 0.0)
        total += float(nll)
        tokens += n
    return total / max(tokens, 1)
