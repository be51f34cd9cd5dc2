"""The attention seq2seq model: GRU cell, masking, padding invariance, greedy vs beam, exportability."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from onnxpress.training.decoding import beam_search, greedy_decode
from onnxpress.training.seq2seq import GRUCellLinear, Seq2Seq, reverse_padded
from translator_fixtures import random_batch, single_thread, tiny_config, tiny_model  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")


def test_linear_gru_cell_matches_torch_gru_cell():
    torch.manual_seed(0)
    ref = torch.nn.GRUCell(7, 5)
    cell = GRUCellLinear(7, 5)
    with torch.no_grad():
        cell.ih.weight.copy_(ref.weight_ih)
        cell.ih.bias.copy_(ref.bias_ih)
        cell.hh.weight.copy_(ref.weight_hh)
        cell.hh.bias.copy_(ref.bias_hh)
    x, h = torch.randn(3, 7), torch.randn(3, 5)
    torch.testing.assert_close(cell(x, h), ref(x, h))


def test_reverse_padded_reverses_within_length_only():
    x = torch.arange(10).view(2, 5)
    out = reverse_padded(x, torch.tensor([3, 5]))
    assert out.tolist() == [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]]


def test_attention_rows_sum_to_one_and_are_zero_on_padding(tiny_model):
    src, mask = random_batch([7, 4, 2])
    states, keys, hidden = tiny_model.encode(src, mask)
    prev = torch.full((3,), tiny_model.cfg.bos_id)
    for _ in range(3):
        log_probs, hidden, attn = tiny_model.decode_step(prev, hidden, states, keys, mask)
        torch.testing.assert_close(attn.sum(-1), torch.ones(3))
        assert torch.all(attn[~mask] == 0)
        assert torch.all(attn[mask] > 0)
        torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3))
        prev = log_probs.argmax(-1)
    # the teacher-forced training pass masks the same way
    tgt = torch.randint(4, 40, (3, 6))
    logits, attn_all = tiny_model(src, mask, tgt)
    assert logits.shape == (3, 6, tiny_model.cfg.tgt_vocab_size)
    torch.testing.assert_close(attn_all.sum(-1), torch.ones(3, 6))
    assert torch.all(attn_all.masked_select(~mask.unsqueeze(1).expand_as(attn_all)) == 0)


def test_padding_does_not_leak_into_encoder_or_decoder(tiny_model):
    src, mask = random_batch([9, 4])
    alone, alone_mask = src[1:, :4], mask[1:, :4]
    states, keys, hidden = tiny_model.encode(src, mask)
    states1, keys1, hidden1 = tiny_model.encode(alone, alone_mask)
    torch.testing.assert_close(states[1, :4], states1[0])
    torch.testing.assert_close(hidden[1], hidden1[0])
    assert torch.all(states[1, 4:] == 0)
    prev = torch.tensor([2, 2])
    lp, h, attn = tiny_model.decode_step(prev, hidden, states, keys, mask)
    lp1, h1, attn1 = tiny_model.decode_step(prev[:1], hidden1, states1, keys1, alone_mask)
    torch.testing.assert_close(lp[1], lp1[0])
    torch.testing.assert_close(attn[1, :4], attn1[0])


def test_training_pass_equals_step_by_step_decoding(tiny_model):
    src, mask = random_batch([6, 3])
    tgt = torch.randint(4, 40, (2, 5))
    logits, attn_all = tiny_model(src, mask, tgt)
    states, keys, hidden = tiny_model.encode(src, mask)
    for t in range(5):
        lp, hidden, attn = tiny_model.decode_step(tgt[:, t], hidden, states, keys, mask)
        torch.testing.assert_close(lp, torch.log_softmax(logits[:, t], -1), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(attn, attn_all[:, t])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_size_one_equals_greedy(seed):
    torch.manual_seed(seed)
    model = Seq2Seq(tiny_config(max_tgt_len=12)).eval()
    src, mask = random_batch([8, 5, 3, 6], seed=seed)
    greedy = greedy_decode(model, src, mask)
    beam = beam_search(model, src, mask, beam_size=1)
    for g, b in zip(greedy, beam):
        assert g.tokens == b.tokens
        np.testing.assert_allclose(g.attention, b.attention, atol=1e-6)
        assert g.score == pytest.approx(b.score, abs=1e-4)


def test_decoding_returns_attention_per_sentence_and_respects_max_length(tiny_model):
    src, mask = random_batch([8, 3])
    for hyps in (greedy_decode(tiny_model, src, mask, max_len=5), beam_search(tiny_model, src, mask, beam_size=3, max_len=5)):
        for hyp, n_src in zip(hyps, (8, 3)):
            assert len(hyp.tokens) <= 5
            assert hyp.attention.shape[1] == n_src
            assert hyp.attention.shape[0] in (len(hyp.tokens), len(hyp.tokens) + 1)
            np.testing.assert_allclose(hyp.attention.sum(1), 1.0, atol=1e-5)


def test_encode_and_decode_step_export_to_onnx_and_match(tiny_model):
    """The pieces issue 6 exports trace with dynamic batch and source length and agree with PyTorch."""
    ort = pytest.importorskip("onnxruntime")

    class Step(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, prev, hidden, states, keys, mask):
            return self.m.decode_step(prev, hidden, states, keys, mask)

    class Enc(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids, mask):
            return self.m.encode(ids, mask)

    src, mask = random_batch([6, 4])
    states, keys, hidden = tiny_model.encode(src, mask)
    prev = torch.tensor([2, 2])
    enc_buf, step_buf = io.BytesIO(), io.BytesIO()
    torch.onnx.export(Enc(tiny_model), (src, mask), enc_buf, input_names=["ids", "mask"],
                      output_names=["states", "keys", "hidden"], dynamo=False, opset_version=17,
                      dynamic_axes={"ids": {0: "b", 1: "s"}, "mask": {0: "b", 1: "s"}})
    torch.onnx.export(Step(tiny_model), (prev, hidden, states, keys, mask), step_buf,
                      input_names=["prev", "hidden", "states", "keys", "mask"],
                      output_names=["log_probs", "new_hidden", "attn"], dynamo=False, opset_version=17,
                      dynamic_axes={"prev": {0: "b"}, "hidden": {0: "b"}, "states": {0: "b", 1: "s"},
                                    "keys": {0: "b", 1: "s"}, "mask": {0: "b", 1: "s"}})
    enc = ort.InferenceSession(enc_buf.getvalue(), providers=["CPUExecutionProvider"])
    step = ort.InferenceSession(step_buf.getvalue(), providers=["CPUExecutionProvider"])
    # a different batch and source length than the traced one
    src2, mask2 = random_batch([9, 2, 5], seed=3)
    ref = tiny_model.encode(src2, mask2)
    got = enc.run(None, {"ids": src2.numpy(), "mask": mask2.numpy()})
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r.detach().numpy(), atol=1e-5)
    prev2 = torch.tensor([2, 5, 7])
    ref_step = tiny_model.decode_step(prev2, ref[2], ref[0], ref[1], mask2)
    got_step = step.run(None, {"prev": prev2.numpy(), "hidden": got[2], "states": got[0], "keys": got[1],
                               "mask": mask2.numpy()})
    for r, g in zip(ref_step, got_step):
        np.testing.assert_allclose(g, r.detach().numpy(), atol=1e-5)


def test_teacher_forcing_zero_feeds_own_predictions_like_greedy(tiny_model):
    src, mask = random_batch([7, 5])
    tgt_in = torch.full((2, 6), tiny_model.cfg.bos_id)
    tgt_in[:, 1:] = torch.randint(4, 40, (2, 5))  # gold tokens that must be ignored
    logits, _ = tiny_model(src, mask, tgt_in, teacher_forcing=0.0)
    greedy = greedy_decode(tiny_model, src, mask, max_len=6)
    assert max(len(h.tokens) for h in greedy) >= 3  # the comparison below is not vacuous
    for row, hyp in zip(logits.argmax(-1).tolist(), greedy):
        n = len(hyp.tokens)
        assert row[:n] == hyp.tokens
    mixed, _ = tiny_model(src, mask, tgt_in, teacher_forcing=0.5)
    assert mixed.shape == logits.shape
