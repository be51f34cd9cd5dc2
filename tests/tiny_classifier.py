"""A tiny real classifier: random BERT checkpoint (save_pretrained, HF tokenizer), its ONNX export
(fp32 + dynamic int8) as an onnxpress artifact, and a small AG-News-style CSV.

For the harness's own tests and for the micro-benchmarks when no real artifact is given:
seconds to build, no downloads.
"""
from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import BertForSequenceClassification

WORDS = (
    "the a an of to in on and for with as at by from stocks rally market shares oil prices "
    "team wins game season coach player election government minister war peace talks "
    "computer software internet phone apple google microsoft space science research new "
    "says said after over up down first year week day report company deal sales profit"
).split()
LABELS = ["World", "Sports", "Business", "Sci/Tech"]
MAX_LENGTH = 32


def wordpiece_tokenizer(words: list[str] = WORDS) -> "Tokenizer":
    """A BERT-style WordPiece tokenizer over `words` ([PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(words))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    return tok


def random_bert(labels: list[str] = LABELS, seed: int = 0) -> "BertForSequenceClassification":
    """A 2-layer, 32-wide BERT classifier with random weights (large init, so labels vary)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=len(labels),
                        id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
                        initializer_range=0.5)
    return BertForSequenceClassification(config).eval()


def export_logits_onnx(model, path: Path, with_token_type_ids: bool = True) -> list[str]:
    """torch.onnx-export `model` as (input_ids, attention_mask[, token_type_ids]) -> logits; returns input names."""
    import torch

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
    return names


def build_checkpoint(root: Path) -> Path:
    from transformers import PreTrainedTokenizerFast

    root.mkdir(parents=True, exist_ok=True)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=wordpiece_tokenizer(), pad_token="[PAD]", unk_token="[UNK]",
                                     cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                     model_max_length=MAX_LENGTH)
    hf_tok.save_pretrained(root)
    random_bert().save_pretrained(root)
    return root


def build_artifact(checkpoint: Path, root: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import BertForSequenceClassification

    from onnxpress.runtime.artifact import Manifest, TensorSpec, Variant

    root.mkdir(parents=True, exist_ok=True)
    model = BertForSequenceClassification.from_pretrained(checkpoint).eval()
    names = export_logits_onnx(model, root / "model.onnx")
    quantize_dynamic(str(root / "model.onnx"), str(root / "model.int8.onnx"), weight_type=QuantType.QInt8)
    (root / "tokenizer.json").write_bytes((checkpoint / "tokenizer.json").read_bytes())
    Manifest(
        task="text-classification", max_length=MAX_LENGTH, tokenizers={"text": "tokenizer.json"},
        inputs=[TensorSpec(n, "int64", ["batch", "sequence"]) for n in names],
        outputs=[TensorSpec("logits", "float32", ["batch", len(LABELS)])], labels=LABELS,
        variants={
            "fp32": Variant(files={"model": "model.onnx"}, precision="fp32", devices=["cpu"], opset=17),
            "int8": Variant(files={"model": "model.int8.onnx"}, precision="int8", devices=["cpu"], opset=17),
        },
        extra={"pad_token_id": 0, "source_checkpoint": str(checkpoint)},
    ).save(root)
    return root


def write_texts_csv(path: Path, n: int = 64, seed: int = 0) -> Path:
    """AG News format (label 1..4, title, description) with classes.txt beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL)
        for i in range(n):
            title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
            desc = " ".join(rng.choice(WORDS) for _ in range(rng.choice([2, 5, 10, 20, 40])))
            writer.writerow([str(i % 4 + 1), title, desc])
    (path.parent / "classes.txt").write_text("\n".join(LABELS) + "\n")
    return path
