"""A tiny translator must memorize 20 sentence pairs exactly (the training loop, decoding and detokenization all work)."""
from __future__ import annotations

import pytest
import torch

from onnxpress.training.decoding import encode_sources, translate
from onnxpress.training.seq2seq import Seq2Seq, Seq2SeqConfig
from onnxpress.training.translator import collate, sequence_loss
from translator_fixtures import PAIRS, pair_tokenizers, single_thread  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")


def test_tiny_model_overfits_20_pairs_to_exact_reproduction(pair_tokenizers):
    src_tok, tgt_tok = pair_tokenizers
    torch.manual_seed(0)
    cfg = Seq2SeqConfig(src_tok.get_vocab_size(), tgt_tok.get_vocab_size(), emb_dim=32, enc_hidden=32,
                        dec_hidden=48, attn_dim=32, dropout=0.0)
    model = Seq2Seq(cfg)
    sources = encode_sources(src_tok, [s for s, _ in PAIRS], cfg.max_src_len)
    pairs = [(s, tgt_tok.encode(t).ids) for s, (_, t) in zip(sources, PAIRS)]
    src, mask, tgt = collate(pairs, list(range(len(pairs))), cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    model.train()
    for step in range(200):
        logits, _ = model(src, mask, tgt[:, :-1])
        loss, nll, n = sequence_loss(logits, tgt[:, 1:], cfg.pad_id, 0.0)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if loss.item() < 0.02:
            break
    model.eval()
    sentences = [s for s, _ in PAIRS]
    greedy = [t.text for t in translate(model, src_tok, tgt_tok, sentences, beam_size=1)]
    beam = [t.text for t in translate(model, src_tok, tgt_tok, sentences, beam_size=3)]
    expected = [t for _, t in PAIRS]
    assert greedy == expected, f"stopped at step {step} with loss {loss.item():.4f}"
    assert beam == expected
