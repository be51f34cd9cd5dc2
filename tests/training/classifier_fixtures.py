"""Fixtures for the classifier tests: a tiny random BERT with its own tokenizer, tiny AG-News-style data.

Kept out of conftest.py (tests/training is shared with the translator's tests); test modules import
the fixtures they use: `from classifier_fixtures import ag_dir, tiny_bert, tiny_config`.
"""
from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LABELS = ["World", "Sports", "Business", "Sci/Tech"]
TOPIC_WORDS = [
    ["war", "minister", "election", "embassy", "troops", "president", "rebels", "talks"],
    ["match", "goal", "team", "coach", "season", "cup", "striker", "league"],
    ["stock", "profit", "market", "bank", "shares", "earnings", "merger", "oil"],
    ["software", "space", "chip", "internet", "computer", "nasa", "browser", "linux"],
]
FILLER = ["the", "a", "of", "in", "on", "says", "new", "after", "over", "week", "report", "to"]


def make_rows(n: int, seed: int) -> list[list[str]]:
    """AG-News-shaped rows whose class is learnable from topic words, with some original-style escapes."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 4
        words = [rng.choice(TOPIC_WORDS[label] if rng.random() < 0.5 else FILLER) for _ in range(rng.randint(4, 14))]
        title = " ".join(words[:3]).title()
        description = " ".join(words[3:]) + (" it #39;s \\ quot;news quot;" if i % 5 == 0 else "")
        rows.append([str(label + 1), title, description])
    return rows


def write_ag_news(directory: Path, train_rows: int = 64, test_rows: int = 32) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train.csv", train_rows, 0), ("test.csv", test_rows, 1)):
        with open(directory / name, "w", newline="", encoding="utf-8") as f:
            csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(make_rows(n, seed))
    (directory / "classes.txt").write_text("\n".join(LABELS) + "\n")
    return directory


def make_tiny_bert(directory: Path) -> Path:
    """A random 2-layer, hidden-32 BERT with a WordPiece tokenizer over the test vocabulary."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted({w for topic in TOPIC_WORDS for w in topic} | set(FILLER) | {"it", "s", "news"})
    pieces = specials + words + [c for c in "abcdefghijklmnopqrstuvwxyz'\".,$" if c not in words]
    vocab = {tok: i for i, tok in enumerate(pieces)}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=0,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    import torch

    torch.manual_seed(0)
    directory.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def ag_dir(tmp_path_factory) -> Path:
    return write_ag_news(tmp_path_factory.mktemp("data") / "ag_news")


@pytest.fixture
def tiny_config(tiny_bert, ag_dir, tmp_path):
    """A TrainConfig factory for fast runs of the tiny model on the tiny data."""
    from onnxpress.training.classifier import TrainConfig

    def make(**overrides) -> TrainConfig:
        kwargs = dict(out=tmp_path / "run", base_model=str(tiny_bert), data=str(ag_dir), steps=30, batch_size=8,
                      lr=1e-2, warmup=0.0, max_length=32, report_every=5, save_every=0, progress=False)
        kwargs.update(overrides)
        return TrainConfig(**kwargs)

    return make
