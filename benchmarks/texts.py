"""Benchmark inputs: real texts (AG News test set, Multi30k, a file) or fixed-length synthetic ones."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from onnxpress.errors import UserError

from onnxpress.benchmarks.contenders.base import TokenBatch


@dataclass
class TextSet:
    texts: list[str]
    labels: list[str] | None  # gold label names, when the data has them
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int | None) -> "TextSet":
        if n is None or n >= len(self.texts):
            return self
        return TextSet(self.texts[:n], self.labels[:n] if self.labels else None, self.source)


def load_texts(spec: str) -> TextSet:
    """`ag_news` (its full test split), `multi30k` (test_2016_flickr English side) or a FILE.

    FILE: an AG-News-style CSV (label, title, description; labels used for accuracy) or plain
    text with one input per line.
    """
    if spec == "ag_news":
        from onnxpress.training.ag_news import MARKER, SUBDIR, read_csv, read_label_names
        from onnxpress.training.data_root import find_dataset, not_found_message

        directory = find_dataset(None, SUBDIR, MARKER)
        if directory is None:
            raise UserError(not_found_message(SUBDIR, MARKER))
        split = read_csv(directory / MARKER, read_label_names(directory))
        return TextSet(split.texts, [split.label_names[i] for i in split.labels], f"ag_news test ({split.source})")
    if spec == "multi30k":
        from onnxpress.training.multi30k import resolve_data_dir

        path = resolve_data_dir(None) / "test_2016_flickr.en"
        return TextSet([t for t in path.read_text(encoding="utf-8").splitlines() if t.strip()], None, str(path))
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"--data must be ag_news, multi30k or an existing file; {spec!r} is none of these")
    if path.suffix.lower() == ".csv":
        from onnxpress.training.ag_news import read_csv, read_label_names

        split = read_csv(path, read_label_names(path.parent))
        return TextSet(split.texts, [split.label_names[i] for i in split.labels], str(path))
    texts = [t for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
    if not texts:
        raise UserError(f"{path} holds no texts (expected one per line)")
    return TextSet(texts, None, str(path))


def synthetic_texts(tokenizer_json: str | Path, length: int, n: int, seed: int = 0) -> list[str]:
    """`n` texts of random whole-word vocabulary entries that tokenize to exactly `length` tokens
    (specials included) with this tokenizer, or as close as the tokenizer allows."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation()
    tok.no_padding()
    words = sorted(w for w in tok.get_vocab() if w.isalpha() and w.islower() and len(w) >= 3)
    if not words:
        raise UserError(f"{tokenizer_json}: no whole-word vocabulary entries to build synthetic texts from")
    rng = random.Random(seed)
    specials = len(tok.encode("").ids)
    out = []
    for _ in range(n):
        picked = [rng.choice(words) for _ in range(max(length - specials, 1))]
        text = " ".join(picked)
        while len(tok.encode(text).ids) > length and len(picked) > 1:
            picked.pop()
            text = " ".join(picked)
        out.append(text)
    return out


class SharedTokenizer:
    """The artifact's tokenizer, used to build the identical model-only batches for every
    contender and to count real tokens (for tokens/s)."""

    def __init__(self, tokenizer_json: str | Path, max_length: int, input_names: Sequence[str]):
        from onnxpress.runtime.text_tokenizer import TextTokenizer

        self.tok = TextTokenizer(tokenizer_json, max_length)
        self.input_names = list(input_names)

    def lengths(self, texts: Sequence[str]) -> np.ndarray:
        return self.tok.encode(list(texts), with_type_ids=False).lengths

    def batch(self, texts: Sequence[str]) -> TokenBatch:
        enc = self.tok.encode(list(texts), with_type_ids="token_type_ids" in self.input_names)
        rows = np.arange(len(enc))
        ids, mask, type_ids = enc.pad(rows, int(enc.lengths.max()), self.tok.pad_id)
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if type_ids is not None:
            feeds["token_type_ids"] = type_ids
        return TokenBatch(feeds)


def sample_batches(texts: Sequence[str], batch_size: int, n_batches: int, seed: int) -> list[list[str]]:
    """`n_batches` batches of texts drawn at random (without replacement while possible), so
    batch lengths follow the data's real length distribution."""
    rng = random.Random(seed * 1000 + batch_size)
    pool = list(range(len(texts)))
    rng.shuffle(pool)
    need = batch_size * n_batches
    while len(pool) < need:
        extra = list(range(len(texts)))
        rng.shuffle(extra)
        pool += extra
    return [[texts[j] for j in pool[i * batch_size:(i + 1) * batch_size]] for i in range(n_batches)]
