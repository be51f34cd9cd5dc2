"""The attention-op probe: every form runs, and the masked ONNX Attention forms equal QAttention's core."""
from __future__ import annotations

import re

from onnxpress.benchmarks.probes import attention_ops

FORMS = ("MultiHeadAttention, key padding mask", "MultiHeadAttention, no mask", "ONNX Attention, bool mask",
         "ONNX Attention, additive mask (0 / -40)", "ONNX Attention, no mask",
         "MatMul + Softmax (plain ops), additive mask")


def test_masked_forms_agree_with_multihead_attention(capsys):
    assert attention_ops.main(["--batch", "3", "--length", "12", "--padded-rows", "2", "--pad", "5",
                               "--rounds", "1", "--seconds", "0.02"]) == 0
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) ms \| max diff (\S+) \|$", capsys.readouterr().out, re.M)
    assert tuple(name for name, _, _ in rows) == FORMS
    for name, ms, diff in rows:
        assert float(ms) > 0
        if "no mask" not in name:  # the unmasked forms attend to padding: nothing to compare
            assert float(diff) < 1e-5, name
