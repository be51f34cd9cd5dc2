"""GRU encoder-decoder with additive (Bahdanau) attention.

The model splits into the two pieces inference needs, both traceable by `torch.onnx.export`
(no data-dependent Python control flow):

- `encode(src_ids [B,S], src_mask [B,S]) -> (states [B,S,2He], keys [B,S,A], hidden [B,Hd])`:
  a bidirectional GRU over the source, the attention keys `U h_j` (computed once per
  sentence, not once per step) and the decoder's initial state.
- `decode_step(prev [B], hidden [B,Hd], states, keys, src_mask) -> (log_probs [B,V], hidden, attn [B,S])`:
  one decoder step: attention `softmax_j(v^T tanh(W s_{t-1} + U h_j))` with padding masked,
  context `c_t = sum_j a_tj h_j`, a GRU cell on [embedding; context], and a projection to the vocabulary.

`forward` is the teacher-forced training pass; it runs the same step function and applies the
output projection to all steps at once. The decoder's GRU cell is written from two `nn.Linear`s
(`GRUCellLinear`) so that exported graphs are plain MatMul/Gemm + elementwise ops, which
ONNX Runtime's dynamic int8 quantizer covers.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import Tensor, nn

NEG_INF = -1e9  # finite "minus infinity" for masked attention energies (also safe after fp16 conversion)


@dataclass
class Seq2SeqConfig:
    """Model hyperparameters and the token conventions inference must follow."""

    src_vocab_size: int
    tgt_vocab_size: int
    emb_dim: int = 256
    enc_hidden: int = 256  # per direction; encoder states are 2 * enc_hidden wide
    dec_hidden: int = 512
    attn_dim: int = 256
    dropout: float = 0.3
    tie_embeddings: bool = True  # output projection shares the target embedding matrix
    pad_id: int = 0
    unk_id: int = 1
    bos_id: int = 2
    eos_id: int = 3
    max_src_len: int = 128  # longer sources are truncated (keeping their final </s>)
    max_tgt_len: int = 128  # hard cap on generated tokens
    src_appends_eos: bool = True  # the source tokenizer's post-processor appends </s>

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Seq2SeqConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Seq2SeqConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


class GRUCellLinear(nn.Module):
    """A GRU cell (PyTorch's equations and gate order r, z, n) built from two Linear layers."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.ih = nn.Linear(input_size, 3 * hidden_size)
        self.hh = nn.Linear(hidden_size, 3 * hidden_size)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        return self.step(self.ih(x), h)

    def step(self, x_proj: Tensor, h: Tensor) -> Tensor:
        """The cell given the input already projected by `self.ih` (lets training batch that matmul)."""
        xr, xz, xn = x_proj.chunk(3, dim=-1)
        hr, hz, hn = self.hh(h).chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return n + z * (h - n)  # == (1 - z) * n + z * h


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of `x` [B,S,...] within its length; padding stays where it is."""
    steps = torch.arange(x.size(1), device=x.device).unsqueeze(0)  # [1,S]
    last = (lengths - 1).unsqueeze(1)  # [B,1]
    index = torch.where(steps <= last, last - steps, steps)  # [B,S]
    index = index.view(index.size(0), index.size(1), *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


class Encoder(nn.Module):
    """Embedding + bidirectional GRU that ignores right padding.

    The backward direction runs a forward GRU over each sentence reversed within its own
    length, so no state at a real position has seen a pad token (no packed sequences needed,
    which keeps the module exportable with dynamic shapes).
    """

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.src_vocab_size, cfg.emb_dim, padding_idx=cfg.pad_id)
        self.fwd = nn.GRU(cfg.emb_dim, cfg.enc_hidden, batch_first=True)
        self.bwd = nn.GRU(cfg.emb_dim, cfg.enc_hidden, batch_first=True)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, src_ids: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Returns states [B,S,2He] (zero at padding) and the final states [B,2He] of both directions."""
        mask = src_mask.to(torch.bool)
        lengths = mask.sum(1).clamp(min=1)
        emb = self.dropout(self.embed(src_ids))
        fwd, _ = self.fwd(emb)
        bwd_rev, _ = self.bwd(reverse_padded(emb, lengths))
        bwd = reverse_padded(bwd_rev, lengths)
        states = torch.cat([fwd, bwd], dim=-1) * mask.unsqueeze(-1).to(emb.dtype)
        last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, fwd.size(-1))
        final = torch.cat([fwd.gather(1, last).squeeze(1), bwd[:, 0]], dim=-1)
        return states, final


class AdditiveAttention(nn.Module):
    """Bahdanau attention: a_tj = softmax_j(v^T tanh(W s_{t-1} + U h_j)), padding masked to 0."""

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int):
        super().__init__()
        self.W = nn.Linear(query_dim, attn_dim, bias=False)
        self.U = nn.Linear(key_dim, attn_dim)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def keys(self, states: Tensor) -> Tensor:
        return self.U(states)

    def forward(self, query: Tensor, keys: Tensor, src_mask: Tensor) -> Tensor:
        energy = self.v(torch.tanh(keys + self.W(query).unsqueeze(1))).squeeze(-1)  # [B,S]
        energy = energy.masked_fill(~src_mask.to(torch.bool), NEG_INF)
        return torch.softmax(energy, dim=-1)


class Seq2Seq(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.cfg = cfg
        enc_out = 2 * cfg.enc_hidden
        self.encoder = Encoder(cfg)
        self.init_hidden = nn.Linear(enc_out, cfg.dec_hidden)
        self.attention = AdditiveAttention(cfg.dec_hidden, enc_out, cfg.attn_dim)
        self.tgt_embed = nn.Embedding(cfg.tgt_vocab_size, cfg.emb_dim, padding_idx=cfg.pad_id)
        self.cell = GRUCellLinear(cfg.emb_dim + enc_out, cfg.dec_hidden)
        # "deep output": tanh(L [s_t; c_t; y_{t-1}]) then a projection to the vocabulary
        self.pre_output = nn.Linear(cfg.dec_hidden + enc_out + cfg.emb_dim, cfg.emb_dim)
        self.out = nn.Linear(cfg.emb_dim, cfg.tgt_vocab_size)
        if cfg.tie_embeddings:
            self.out.weight = self.tgt_embed.weight
        self.dropout = nn.Dropout(cfg.dropout)
        # N(0, 1) embeddings (PyTorch's default) make tied output logits huge at the start.
        for emb in (self.encoder.embed, self.tgt_embed):
            nn.init.normal_(emb.weight, std=cfg.emb_dim**-0.5)
            with torch.no_grad():
                emb.weight[cfg.pad_id].zero_()

    # -- inference pieces ------------------------------------------------------------------

    def encode(self, src_ids: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(encoder states [B,S,2He], attention keys U·h [B,S,A], initial decoder hidden [B,Hd])."""
        states, final = self.encoder(src_ids, src_mask)
        keys = self.attention.keys(states)
        hidden = torch.tanh(self.init_hidden(final))
        return states, keys, hidden

    def _attend(self, hidden: Tensor, states: Tensor, keys: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor]:
        attn = self.attention(hidden, keys, src_mask)  # [B,S]
        context = torch.bmm(attn.unsqueeze(1), states).squeeze(1)  # [B,2He]
        return attn, context

    def _logits(self, hidden: Tensor, context: Tensor, emb: Tensor) -> Tensor:
        pre = torch.tanh(self.pre_output(torch.cat([hidden, context, emb], dim=-1)))
        return self.out(self.dropout(pre))

    def decode_step(
        self, prev_tokens: Tensor, hidden: Tensor, states: Tensor, keys: Tensor, src_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One step: (log-probabilities [B,V], new hidden [B,Hd], attention over the source [B,S])."""
        emb = self.dropout(self.tgt_embed(prev_tokens))
        attn, context = self._attend(hidden, states, keys, src_mask)
        hidden = self.cell(torch.cat([emb, context], dim=-1), hidden)
        logits = self._logits(hidden, context, emb)
        return torch.log_softmax(logits, dim=-1), hidden, attn

    # -- training --------------------------------------------------------------------------

    def forward(
        self, src_ids: Tensor, src_mask: Tensor, tgt_in: Tensor, teacher_forcing: float = 1.0
    ) -> tuple[Tensor, Tensor]:
        """Logits [B,T,V] for target inputs `tgt_in` [B,T] (starting with <s>) and attention [B,T,S].

        With `teacher_forcing` < 1 each step feeds the model's own previous argmax instead of the
        gold token with probability 1 - teacher_forcing (per sentence, per step).
        """
        states, keys, hidden = self.encode(src_ids, src_mask)
        emb_all = self.dropout(self.tgt_embed(tgt_in))  # [B,T,E]
        steps = tgt_in.size(1)
        if teacher_forcing >= 1.0:
            # The input half of the GRU matmul does not depend on the recurrence: do it once.
            enc_out = states.size(-1)
            w_emb, w_ctx = self.cell.ih.weight.split([emb_all.size(-1), enc_out], dim=1)
            emb_proj = nn.functional.linear(emb_all, w_emb, self.cell.ih.bias)  # [B,T,3Hd]
            hiddens, contexts, attns = [], [], []
            for t in range(steps):
                attn, context = self._attend(hidden, states, keys, src_mask)
                hidden = self.cell.step(emb_proj[:, t] + nn.functional.linear(context, w_ctx), hidden)
                hiddens.append(hidden)
                contexts.append(context)
                attns.append(attn)
            logits = self._logits(torch.stack(hiddens, 1), torch.stack(contexts, 1), emb_all)
            return logits, torch.stack(attns, 1)
        logits_steps, attns = [], []
        prev = tgt_in[:, 0]
        for t in range(steps):
            emb = self.dropout(self.tgt_embed(prev)) if t else emb_all[:, 0]
            attn, context = self._attend(hidden, states, keys, src_mask)
            hidden = self.cell(torch.cat([emb, context], dim=-1), hidden)
            logits = self._logits(hidden, context, emb)
            logits_steps.append(logits)
            attns.append(attn)
            if t + 1 < steps:
                use_gold = torch.rand(prev.size(0), device=prev.device) < teacher_forcing
                prev = torch.where(use_gold, tgt_in[:, t + 1], logits.argmax(-1))
        return torch.stack(logits_steps, 1), torch.stack(attns, 1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
