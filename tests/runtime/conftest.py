"""Tiny real artifacts for runtime tests: random BERT exported with torch.onnx, WordPiece tokenizer."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from onnxpress.benchmarks.tiny import MAX_LENGTH, WORDS, export_logits_onnx, random_bert, wordpiece_tokenizer

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


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory) -> Path:
    return write_artifact(tmp_path_factory.mktemp("clf"))


@pytest.fixture(scope="session")
def artifact_no_tt(tmp_path_factory) -> Path:
    return write_artifact(tmp_path_factory.mktemp("clf_no_tt"), with_token_type_ids=False)


@pytest.fixture
def artifact_copy(artifact_dir, tmp_path) -> Path:
    """A private copy a test may damage."""
    dest = tmp_path / "clf"
    shutil.copytree(artifact_dir, dest)
    return dest


@pytest.fixture(scope="session")
def texts() -> list[str]:
    import random

    rng = random.Random(0)
    out = []
    for i in range(120):
        n = rng.choice([1, 2, 3, 5, 8, 13, 21, 40])  # 40 words > MAX_LENGTH: truncated
        out.append(" ".join(rng.choice(WORDS + ["zebra"]) for _ in range(n)))
    return out


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
