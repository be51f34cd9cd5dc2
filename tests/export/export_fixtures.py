"""Tiny real checkpoints for export tests.

A 2-layer, 32-wide BERT with a WordPiece tokenizer is trained for a few seconds on a
synthetic 4-topic task (each text mixes filler words with words of its topic), so its
predictions are confident and accuracy means something: the gate can then tell a good
int8 build from a broken one.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

TOPICS = {
    "World": "election government minister war peace talks embassy treaty president army".split(),
    "Sports": "team wins game season coach player league match goal cup".split(),
    "Business": "stocks market shares oil prices profit sales deal company bank".split(),
    "Sci/Tech": "computer software internet phone space science research google microsoft chip".split(),
}
FILLER = "the a an of to in on and for with as at by from says said after over up down first year week day".split()
LABELS = list(TOPICS)
MAX_LENGTH = 32


def synthetic_texts(n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        label = rng.randrange(len(LABELS))
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 20))]
        for _ in range(rng.randint(1, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(TOPICS[LABELS[label]]))
        if rng.random() < 0.15:  # a distractor from another topic
            other = LABELS[(label + rng.randint(1, 3)) % len(LABELS)]
            words.insert(rng.randrange(len(words) + 1), rng.choice(TOPICS[other]))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def build_tokenizer(directory: Path):
    from transformers import PreTrainedTokenizerFast

    from tiny_classifier import wordpiece_tokenizer

    tok = wordpiece_tokenizer(sorted({w for ws in TOPICS.values() for w in ws} | set(FILLER)))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=MAX_LENGTH)
    fast.save_pretrained(directory)
    # As HF checkpoints often ship it: padding/truncation baked in, which export must strip.
    data = json.loads((directory / "tokenizer.json").read_text())
    data["padding"] = {"strategy": {"Fixed": MAX_LENGTH}, "direction": "Right", "pad_to_multiple_of": None,
                       "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"}
    data["truncation"] = {"direction": "Right", "max_length": MAX_LENGTH, "strategy": "LongestFirst", "stride": 0}
    (directory / "tokenizer.json").write_text(json.dumps(data))
    return fast


def tiny_config(**overrides):
    from transformers import BertConfig

    id2label = dict(enumerate(LABELS))
    kwargs = dict(vocab_size=5 + len({w for ws in TOPICS.values() for w in ws} | set(FILLER)), hidden_size=32,
                  num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                  hidden_act="gelu", id2label=id2label, label2id={v: k for k, v in id2label.items()})
    kwargs.update(overrides)
    return BertConfig(**kwargs)


def train_tiny(model, tokenizer, steps: int = 150, seed: int = 0) -> None:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only contend on a shared machine
    torch.manual_seed(seed)
    texts, labels = synthetic_texts(steps * 16, seed=seed + 100)
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        enc = tokenizer(texts[step * 16:(step + 1) * 16], padding=True, truncation=True, max_length=MAX_LENGTH,
                        return_tensors="pt")
        out = model(**enc, labels=torch.tensor(labels[step * 16:(step + 1) * 16]))
        optim.zero_grad()
        out.loss.backward()
        optim.step()
    model.eval()
    torch.set_num_threads(threads)


def make_checkpoint(directory: Path, pooling: str = "mean", train: bool = True) -> Path:
    import torch
    from transformers import BertForSequenceClassification

    from onnxpress.training.modeling import BertForMeanPooledClassification

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(directory)
    torch.manual_seed(0)
    cls = BertForMeanPooledClassification if pooling == "mean" else BertForSequenceClassification
    model = cls(tiny_config())
    if train:
        train_tiny(model, tokenizer)
    model.save_pretrained(directory)
    (directory / "training.json").write_text(json.dumps({"max_length": MAX_LENGTH, "pooling": pooling}))
    return directory


def write_ag_news(root: Path) -> Path:
    """A small AG News folder (classes.txt, train.csv, test.csv) of synthetic texts."""
    data = root / "ag_news"
    data.mkdir(parents=True)
    (data / "classes.txt").write_text("\n".join(LABELS) + "\n")
    for name, (n, seed) in {"train.csv": (80, 1), "test.csv": (60, 2)}.items():
        texts, labels = synthetic_texts(n, seed)
        rows = [f'"{y + 1}","{t.split()[0]}","{" ".join(t.split()[1:])}"' for t, y in zip(texts, labels)]
        (data / name).write_text("\n".join(rows) + "\n")
    return data


def options(**kw):
    """ExportOptions for tests: quiet, one thread (the machine is shared)."""
    from onnxpress.export.classifier import ExportOptions

    kw.setdefault("progress", False)
    kw.setdefault("threads", 1)
    kw.setdefault("log", lambda msg: None)
    return ExportOptions(**kw)
