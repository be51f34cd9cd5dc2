"""Reference decoding in PyTorch: batched greedy search and length-normalized beam search.

Both loop over `Seq2Seq.decode_step` (the same step the ONNX exporter exports) and return,
per sentence, the generated token ids (without </s>) and the attention matrix
[output tokens incl. </s>, source tokens incl. </s>]. A max-length guard caps every output
at `min(max_tgt_len, len_a * source length + len_b)` tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from onnxpress.training.seq2seq import Seq2Seq


@dataclass
class Hypothesis:
    tokens: list[int]  # generated ids, </s> excluded
    attention: np.ndarray  # [len(tokens) + 1 (the </s> step, if produced), source length]
    score: float  # sum of token log-probabilities (beam search: before length normalization)


def max_output_lengths(src_mask: Tensor, max_tgt_len: int, len_a: float = 2.0, len_b: int = 10) -> Tensor:
    return (src_mask.sum(1).float() * len_a + len_b).clamp(max=max_tgt_len).long()


@torch.no_grad()
def greedy_decode(
    model: Seq2Seq, src_ids: Tensor, src_mask: Tensor, max_len: int | None = None, len_a: float = 2.0, len_b: int = 10
) -> list[Hypothesis]:
    """Greedy search for a batch of right-padded sources."""
    cfg = model.cfg
    limits = max_output_lengths(src_mask, max_len or cfg.max_tgt_len, len_a, len_b)
    states, keys, hidden = model.encode(src_ids, src_mask)
    batch = src_ids.size(0)
    prev = torch.full((batch,), cfg.bos_id, dtype=torch.long, device=src_ids.device)
    done = torch.zeros(batch, dtype=torch.bool, device=src_ids.device)
    steps_tokens, steps_attn, steps_scores = [], [], []
    for t in range(int(limits.max())):
        log_probs, hidden, attn = model.decode_step(prev, hidden, states, keys, src_mask)
        score, prev = log_probs.max(-1)
        prev = prev.masked_fill(done, cfg.pad_id)
        steps_tokens.append(prev)
        steps_attn.append(attn)
        steps_scores.append(score.masked_fill(done, 0.0))
        done = done | (prev == cfg.eos_id) | (t + 1 >= limits)
        if bool(done.all()):
            break
    tokens = torch.stack(steps_tokens, 1).tolist()
    attn_all = torch.stack(steps_attn, 1).cpu().numpy()
    scores = torch.stack(steps_scores, 1).sum(1).tolist()
    src_lens = src_mask.sum(1).tolist()
    out = []
    for i in range(batch):
        seq = tokens[i]
        n = seq.index(cfg.eos_id) + 1 if cfg.eos_id in seq else min(len(seq), int(limits[i]))
        toks = [x for x in seq[:n] if x != cfg.eos_id]
        out.append(Hypothesis(toks, attn_all[i, :n, : int(src_lens[i])], scores[i]))
    return out


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src_ids: Tensor,
    src_mask: Tensor,
    beam_size: int = 5,
    length_penalty: float = 1.0,
    max_len: int | None = None,
    len_a: float = 2.0,
    len_b: int = 10,
) -> list[Hypothesis]:
    """Beam search for a batch; the best hypothesis per sentence by score / length**length_penalty.

    A sentence stops when `beam_size` hypotheses have ended with </s> (an </s> counts only if
    it ranks within the top `beam_size` candidates of its step, so beam size 1 is greedy search);
    beams still open at the length limit are finished there.
    """
    cfg = model.cfg
    k = beam_size
    batch, src_len = src_ids.shape
    device = src_ids.device
    limits = max_output_lengths(src_mask, max_len or cfg.max_tgt_len, len_a, len_b).tolist()
    states, keys, hidden = model.encode(src_ids, src_mask)
    # Every sentence starts with k beams; all but the first are disabled by a -inf score.
    expand = torch.arange(batch, device=device).repeat_interleave(k)
    states, keys, hidden, mask = states[expand], keys[expand], hidden[expand], src_mask[expand]
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    prev = torch.full((batch * k,), cfg.bos_id, dtype=torch.long, device=device)
    history = torch.zeros(batch * k, 0, dtype=torch.long, device=device)
    attn_hist = torch.zeros(batch * k, 0, src_len, device=device)
    finished: list[list[tuple[float, float, list[int], np.ndarray]]] = [[] for _ in range(batch)]
    active = [True] * batch
    vocab = model.cfg.tgt_vocab_size
    for t in range(max(limits)):
        log_probs, hidden, attn = model.decode_step(prev, hidden, states, keys, mask)
        attn_hist = torch.cat([attn_hist, attn.unsqueeze(1)], 1)
        cand = (scores.unsqueeze(-1) + log_probs.view(batch, k, vocab)).view(batch, k * vocab)
        top_scores, top_idx = cand.topk(2 * k, dim=-1)
        top_scores_l, top_idx_l = top_scores.tolist(), top_idx.tolist()
        new_scores = torch.full((batch, k), float("-inf"), device=device)
        origin = torch.arange(batch * k, device=device).view(batch, k).clone()  # default: keep row
        next_tok = torch.full((batch, k), cfg.pad_id, dtype=torch.long, device=device)
        for b in range(batch):
            if not active[b]:
                continue
            last_step = t + 1 >= limits[b]
            slot = 0
            for rank, (s, idx) in enumerate(zip(top_scores_l[b], top_idx_l[b])):
                if s == float("-inf"):
                    break
                beam, tok = divmod(idx, vocab)
                row = b * k + beam
                if tok == cfg.eos_id or last_step:
                    if tok == cfg.eos_id and rank >= k:
                        continue  # an </s> outside the top k does not finish a hypothesis
                    toks = history[row].tolist() + ([] if tok == cfg.eos_id else [tok])
                    length = t + 1
                    finished[b].append((s / length**length_penalty, s, toks, attn_hist[row].cpu().numpy()))
                    if len(finished[b]) >= k:
                        break
                    continue
                if slot < k:
                    new_scores[b, slot] = s
                    origin[b, slot] = row
                    next_tok[b, slot] = tok
                    slot += 1
                if slot >= k and rank + 1 >= k:
                    break
            if len(finished[b]) >= k or last_step or slot == 0:
                active[b] = False
                new_scores[b] = float("-inf")
        if not any(active):
            break
        flat_origin = origin.view(-1)
        scores = new_scores
        prev = next_tok.view(-1)
        hidden = hidden[flat_origin]
        history = torch.cat([history[flat_origin], prev.unsqueeze(1)], 1)
        attn_hist = attn_hist[flat_origin]
    src_lens = src_mask.sum(1).tolist()
    out = []
    for b in range(batch):
        if not finished[b]:  # cannot happen with a finite model; keeps the contract anyway
            out.append(Hypothesis([], np.zeros((0, int(src_lens[b])), dtype=np.float32), 0.0))
            continue
        norm, raw, toks, attn_m = max(finished[b], key=lambda h: h[0])
        out.append(Hypothesis(toks, attn_m[:, : int(src_lens[b])], raw))
    return out


def decode(model: Seq2Seq, src_ids: Tensor, src_mask: Tensor, beam_size: int = 1, **kwargs) -> list[Hypothesis]:
    """Greedy search for beam_size 1, beam search otherwise."""
    if beam_size <= 1:
        return greedy_decode(model, src_ids, src_mask, **{k: v for k, v in kwargs.items() if k != "length_penalty"})
    return beam_search(model, src_ids, src_mask, beam_size=beam_size, **kwargs)


@dataclass
class Translation:
    text: str  # detokenized output
    source_tokens: list[str]  # subword pieces the encoder saw (incl. </s>)
    output_tokens: list[str]  # generated pieces (</s> appended if it was generated)
    attention: np.ndarray  # [len(output_tokens), len(source_tokens)]


def encode_sources(src_tok, sentences: list[str], max_src_len: int) -> list[list[int]]:
    """Source ids with </s>; longer ones are cut to `max_src_len`, keeping the final </s>."""
    ids = [e.ids for e in src_tok.encode_batch(list(sentences))]
    return [x if len(x) <= max_src_len else x[: max_src_len - 1] + x[-1:] for x in ids]


def pad_batch(seqs: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return ids, ids != pad_id


def translate(
    model: Seq2Seq, src_tok, tgt_tok, sentences: list[str], beam_size: int = 5, batch_size: int = 64,
    length_penalty: float = 1.0, progress: bool = False,
) -> list[Translation]:
    """Translate raw sentences (in order); an empty or blank sentence translates to ""."""
    from tqdm import tqdm

    cfg = model.cfg
    results: list[Translation | None] = [None] * len(sentences)
    todo = [i for i, s in enumerate(sentences) if s.strip()]
    for i in range(len(sentences)):
        if not sentences[i].strip():
            results[i] = Translation("", [], [], np.zeros((0, 0), dtype=np.float32))
    ids = encode_sources(src_tok, [sentences[i] for i in todo], cfg.max_src_len)
    order = sorted(range(len(todo)), key=lambda j: len(ids[j]))
    model.eval()
    eos_piece = tgt_tok.id_to_token(cfg.eos_id)
    bar = tqdm(total=len(order), desc=f"translate (beam {beam_size})", unit="sent", disable=not progress)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        src_ids, src_mask = pad_batch([ids[j] for j in chunk], cfg.pad_id)
        hyps = decode(model, src_ids, src_mask, beam_size=beam_size, length_penalty=length_penalty)
        for j, hyp in zip(chunk, hyps):
            pieces = [tgt_tok.id_to_token(t) for t in hyp.tokens]
            if hyp.attention.shape[0] > len(hyp.tokens):
                pieces.append(eos_piece)
            results[todo[j]] = Translation(
                tgt_tok.decode(hyp.tokens, skip_special_tokens=True),
                [src_tok.id_to_token(t) for t in ids[j]],
                pieces,
                hyp.attention,
            )
        bar.update(len(chunk))
    bar.close()
    return results  # type: ignore[return-value]
