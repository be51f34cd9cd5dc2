"""Builders of tiny real artifacts for runtime tests: random BERT exported with torch.onnx, WordPiece tokenizer.

A plain module (not conftest.py) so test files can import from it: several test folders have a
conftest.py, and `from conftest import ...` picks whichever was imported first.
"""
from __future__ import annotations

from pathlib import Path

from tiny_classifier import MAX_LENGTH, WORDS, export_logits_onnx, random_bert, wordpiece_tokenizer

LABELS = ["World", "Sports", "Business"]
__all__ = ["LABELS", "MAX_LENGTH", "WORDS"]


def build_tokenizer(path: Path) -> None:
    tok = wordpiece_tokenizer()
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # as HF saves them: the runtime must undo this
    tok.save(str(path))


def write_artifact(root: Path, with_token_type_ids: bool = True) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from onnxpress.runtime.artifact import Manifest, TensorSpec, Variant

    root.mkdir(parents=True, exist_ok=True)
    build_tokenizer(root / "tokenizer.json")
    names = export_logits_onnx(random_bert(LABELS), root / "model.onnx", with_token_type_ids)
    quantize_dynamic(str(root / "model.onnx"), str(root / "model.int8.onnx"), weight_type=QuantType.QInt8)
    Manifest(
        task="text-classification",
        max_length=MAX_LENGTH,
        tokenizers={"text": "tokenizer.json"},
        inputs=[TensorSpec(n, "int64", ["batch", "sequence"]) for n in names],
        outputs=[TensorSpec("logits", "float32", ["batch", len(LABELS)])],
        labels=LABELS,
        variants={
            "fp32": Variant(files={"model": "model.onnx"}, precision="fp32", devices=["cpu", "cuda"], opset=17),
            "int8": Variant(files={"model": "model.int8.onnx"}, precision="int8", devices=["cpu"], opset=17),
            "fp16": Variant(files={"model": "model.onnx"}, precision="fp16", devices=["cuda"], opset=17),
            "int8-static": Variant(files={"model": "model.int8.onnx"}, precision="int8",
                                   devices=["cpu", "tensorrt"], opset=17),
            "int4": Variant(files={"model": "model.int8.onnx"}, precision="int4", devices=["cpu"], opset=17,
                            servable=False, reason="accuracy 0.61 < gate 0.89"),
        },
        extra={"pad_token_id": 0},
    ).save(root)
    return root
