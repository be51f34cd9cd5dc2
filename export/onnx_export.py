"""PyTorch -> ONNX for encoder classifiers, with dynamic batch and sequence axes.

Uses the TorchScript exporter (`dynamo=False`): the research (feasibility.md, section 2)
measured that its graph is the one ONNX Runtime's transformer optimizer fuses fully
(Attention included), while the dynamo exporter's Attention does not fuse.
"""
from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

CLASSIFIER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
DEFAULT_OPSET = 17


class _LogitsOnly(nn.Module):
    """Wraps a Hugging Face classifier so the traced graph has exactly one output: logits."""

    def __init__(self, model: nn.Module, input_names: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.input_names, tensors))).logits


def classifier_input_names(model: nn.Module) -> tuple[str, ...]:
    """The inputs the model's forward accepts, in the order the ONNX graph will take them."""
    params = inspect.signature(model.forward).parameters
    names = tuple(n for n in CLASSIFIER_INPUTS if n in params)
    if "token_type_ids" in names and getattr(model.config, "type_vocab_size", 2) < 1:
        names = tuple(n for n in names if n != "token_type_ids")
    return names


def _sample_inputs(model: nn.Module, input_names: tuple[str, ...], length: int = 16) -> tuple[torch.Tensor, ...]:
    # Two rows, the second right-padded, so no shape collapses to a constant during tracing.
    vocab = int(model.config.vocab_size)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, max(vocab, 6), (2, length), generator=generator, dtype=torch.long)
    mask = torch.ones(2, length, dtype=torch.long)
    mask[1, length // 2 :] = 0
    values = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    return tuple(values[n] for n in input_names)


def export_classifier_onnx(model: nn.Module, path: str | Path, opset: int = DEFAULT_OPSET) -> dict[str, Any]:
    """Export `model` (eval mode) to `path`; returns how it was exported, for the manifest."""
    if opset < 17:
        raise ValueError(f"opset {opset} < 17 is not supported (LayerNormalization needs 17)")
    input_names = classifier_input_names(model)
    # The wrapper must be in eval mode too: the exporter restores the wrapper's mode
    # recursively afterwards, which would otherwise leave `model` training (dropout on).
    wrapper = _LogitsOnly(model, input_names).eval()
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    dynamic_axes["logits"] = {0: "batch"}
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings and the legacy-exporter deprecation notice
        torch.onnx.export(
            wrapper,
            _sample_inputs(model, input_names),
            str(path),
            input_names=list(input_names),
            output_names=["logits"],
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx.checker.check_model(str(path))
    return {
        "exporter": "torch.onnx.export(dynamo=False)",
        "opset": opset,
        "torch": torch.__version__,
        "inputs": list(input_names),
        "outputs": ["logits"],
    }
