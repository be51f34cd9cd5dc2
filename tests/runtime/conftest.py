"""Tiny real artifacts for runtime tests: random BERT exported with torch.onnx, WordPiece tokenizer."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

WORDS = (
    "the a an of to in on and for with as at by from stocks rally market shares oil prices "
    "team wins game season coach player election government minister war peace talks "
    "computer software internet phone apple google microsoft space science research new "
    "says said after over up down first year week day report company deal sales profit"
).split()
LABELS = ["World", "Sports", "Business"]
MAX_LENGTH = 32


def build_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # as HF saves them: the runtime must undo this
    tok.save(str(path))


def export_model(path: Path, with_token_type_ids: bool = True, seed: int = 0) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=len(LABELS),
                        initializer_range=0.5)
    model = BertForSequenceClassification(config).eval()

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_token_type_ids else [])
    dummy = tuple(torch.ones(2, 8, dtype=torch.int64) for _ in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["logits"] = {0: "batch"}
    torch.onnx.export(Wrapped(model), dummy, str(path), input_names=names, output_names=["logits"],
                      dynamic_axes=axes, opset_version=17, dynamo=False)


def write_artifact(root: Path, with_token_type_ids: bool = True) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from onnxpress.runtime.artifact import Manifest, TensorSpec, Variant

    root.mkdir(parents=True, exist_ok=True)
    build_tokenizer(root / "tokenizer.json")
    export_model(root / "model.onnx", with_token_type_ids)
    quantize_dynamic(str(root / "model.onnx"), str(root / "model.int8.onnx"), weight_type=QuantType.QInt8)
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_token_type_ids else [])
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
