"""Graph fusion with ONNX Runtime's transformer optimizer, checked by counting fused nodes.

Fusions need exact subgraph matches, so a different exporter or model can silently lose
them; `fuse_transformer` therefore reports what fused against what a BERT-style encoder
of that depth should give, and the exporter records it in the manifest.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import onnx

FUSED_OPS = (
    "Attention",
    "MultiHeadAttention",
    "EmbedLayerNormalization",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "BiasGelu",
    "FastGelu",
    "Gelu",
    "LayerNormalization",
)
ATTENTION_OPS = ("Attention", "MultiHeadAttention")
# What a fused attention adds to the scores of padded positions. The fusion keeps the value of the
# exported BERT graph, float32's minimum, whose softmax leaves denormal floats: a CPU run with one
# padded token was 12% slower (figures: docs/serving.md, "Performance"). exp(-40) is 4e-18, so
# padding still adds nothing a float32 sum can hold, and a padded key stays out of the denormal
# range unless it scores 47 below the row's best.
MASK_FILTER_VALUE = -40.0


def count_ops(model: str | Path | onnx.ModelProto) -> Counter:
    """op_type -> number of nodes in the main graph."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    return Counter(node.op_type for node in model.graph.node)


def expected_bert_fusions(num_layers: int) -> dict[str, int]:
    """Fused-node counts of a post-LN BERT encoder with `num_layers` layers, as we fuse it.

    Residual adds stay Add + LayerNormalization rather than SkipLayerNormalization: ORT's CPU
    SkipLayerNormalization kernel is several times slower than the two ops it replaces (see
    runtime/engine.py); the CUDA provider fuses them again when a session loads.
    """
    return {
        "Attention": num_layers,
        "EmbedLayerNormalization": 1,
        "LayerNormalization": 2 * num_layers,
        "BiasGelu": num_layers,
    }


def fuse_transformer(
    src: str | Path,
    dst: str | Path,
    *,
    num_heads: int,
    hidden_size: int,
    num_layers: int,
    model_type: str = "bert",
    raw_attention_mask: bool = True,
) -> dict[str, Any]:
    """Fuse `src` into `dst`; returns the method record, fused counts and any missing fusions.

    `raw_attention_mask=True` keeps the 2-D attention mask in the fused Attention nodes, so
    the graph stays correct for any padding side; ORT's BERT default (a 1-D mask index)
    would silently assume right padding.
    """
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions(model_type)
    options.use_raw_attention_mask(raw_attention_mask)
    options.enable_skip_layer_norm = False  # see expected_bert_fusions
    options.enable_bias_skip_layer_norm = False
    fused = optimizer.optimize_model(
        str(src),
        model_type=model_type,
        num_heads=num_heads,
        hidden_size=hidden_size,
        optimization_options=options,
        opt_level=0,  # python fusions only; ORT re-applies its own graph optimizations at load
        use_gpu=False,
    )
    masked = set_mask_filter_value(fused.model)
    fused.save_model_to_file(str(dst))
    counts = count_ops(fused.model)
    expected = expected_bert_fusions(num_layers)
    missing = {op: n - counts.get(op, 0) for op, n in expected.items() if counts.get(op, 0) < n}
    return {
        "optimizer": "onnxruntime.transformers.optimizer.optimize_model",
        "model_type": model_type,
        "num_heads": num_heads,
        "hidden_size": hidden_size,
        "attention_mask": "raw 2-D" if raw_attention_mask else "1-D mask index (right padding)",
        "mask_filter_value": {"value": MASK_FILTER_VALUE, "nodes": masked},
        "fused_nodes": {op: counts[op] for op in FUSED_OPS if counts.get(op)},
        "expected_fused_nodes": expected,
        "missing_fusions": missing,
        "total_nodes": sum(counts.values()),
    }


def set_mask_filter_value(model: onnx.ModelProto, value: float = MASK_FILTER_VALUE) -> int:
    """Set `mask_filter_value` on every fused attention node (see MASK_FILTER_VALUE); returns how
    many. Quantization copies the attribute into QAttention."""
    nodes = [node for node in model.graph.node if node.op_type in ATTENTION_OPS]
    for node in nodes:
        kept = [a for a in node.attribute if a.name != "mask_filter_value"]
        del node.attribute[:]
        node.attribute.extend(kept + [onnx.helper.make_attribute("mask_filter_value", float(value))])
    return len(nodes)
