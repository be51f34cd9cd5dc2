"""Padded positions are masked with a finite value that keeps the softmax out of denormal floats."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from onnxpress.export.optimize import ATTENTION_OPS, MASK_FILTER_VALUE

ATTENTION = ATTENTION_OPS + ("QAttention",)  # quantization turns Attention into QAttention


@pytest.mark.parametrize("file_name", ["model.onnx", "model.int8-dynamic.onnx"])
def test_every_attention_node_masks_with_the_finite_value(artifact, file_name):
    out, _ = artifact
    model = onnx.load(str(out / file_name), load_external_data=False)
    attention = [n for n in model.graph.node if n.op_type in ATTENTION]
    assert attention, f"{file_name} has no fused attention"
    values = [a.f for node in attention for a in node.attribute if a.name == "mask_filter_value"]
    assert values == [MASK_FILTER_VALUE] * len(attention)


def test_the_split_int8_attention_masks_with_the_finite_value(artifact):
    """int8's ONNX Attention nodes share one additive mask: 0 for real keys, the finite value for padding."""
    out, _ = artifact
    model = onnx.load(str(out / "model.int8.onnx"), load_external_data=False)
    attention = [n for n in model.graph.node if n.op_type == "Attention" and n.domain in ("", "ai.onnx")]
    assert attention and len({n.input[3] for n in attention}) == 1
    where = next(n for n in model.graph.node if n.op_type == "Where")
    constants = {i.name: float(onnx.numpy_helper.to_array(i)) for i in model.graph.initializer if not i.dims}
    assert (constants[where.input[1]], constants[where.input[2]]) == (0.0, MASK_FILTER_VALUE)


def test_the_manifest_records_the_mask_value(artifact):
    out, _ = artifact
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["variants"]["fp32"]["method"]["fusion"]["mask_filter_value"]
    assert record["value"] == MASK_FILTER_VALUE and record["nodes"] >= 1


@pytest.mark.parametrize("file_name", ["model.onnx", "model.int8.onnx"])
def test_padding_does_not_change_a_rows_logits(artifact, file_name):
    """The same rows alone and padded with up to 40 extra positions (a finite mask still masks)."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    out, _ = artifact
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    ids = [tok.encode(t).ids for t in ["the team wins the cup", "oil prices up after the deal in new york"]]
    session = ort.InferenceSession(str(out / file_name), providers=["CPUExecutionProvider"])

    def logits(row: list[int], width: int) -> np.ndarray:
        padded = np.zeros((1, width), np.int64)
        padded[0, : len(row)] = row
        mask = (np.arange(width) < len(row)).astype(np.int64)[None]
        return session.run(["logits"], {"input_ids": padded, "attention_mask": mask,
                                        "token_type_ids": np.zeros_like(padded)})[0]

    for row in ids:
        alone = logits(row, len(row))
        for extra in (1, 7, 40):
            np.testing.assert_allclose(logits(row, len(row) + extra), alone, atol=1e-5)
