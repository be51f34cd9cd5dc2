"""The contender interface every way of running the classifier implements, and its token batch.

Common interface (`Contender`):

- `prepare(cache_dir)`  one-time build work that is not part of any timing (Optimum's own export
                        and quantization);
- `load(threads)`       import + load, with the thread budget set explicitly;
- `proba(texts)`       one batch, padded to its longest text: probabilities [n, labels];
- `predict_texts(texts)` end to end: text in, label names out, tokenization included, the way
                        a user of that stack would do it;
- `predict_stream(texts)` the contender's best batching over many texts (throughput section):
                        length-sorted batches of `STREAM_BATCH_SIZE` unless it batches itself;
- `prepare_tokens(batch)` / `run_tokens(prepared)`  model only: the same pre-tokenized, padded
                        numpy batch for everyone, converted untimed, then one forward pass;
- `threads()`           the thread budget actually in effect (asserted equal by the harness);
- `describe()`          exact settings (session options, files) for the report;
- `spec`                a JSON-able recipe so `probe.py` can rebuild it in a fresh process.

Heavy libraries are imported inside methods: `onnxpress` contenders rebuilt in a subprocess
must not import torch, or their cold start and RSS would be the torch ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

SEED_BATCH_SIZE = 8  # the seed notebook's inference batching (pad to longest, input order)
STREAM_BATCH_SIZE = 64  # every peer's best batching: length-sorted batches of 64 (issue 15)


@dataclass
class TokenBatch:
    """One padded batch shared by all contenders in model-only mode."""

    feeds: dict[str, np.ndarray]  # input_ids, attention_mask[, token_type_ids]: int64 [b, L]

    @property
    def size(self) -> int:
        return int(self.feeds["input_ids"].shape[0])

    @property
    def length(self) -> int:
        return int(self.feeds["input_ids"].shape[1])

    @property
    def real_tokens(self) -> int:
        return int(self.feeds["attention_mask"].sum())


class Contender:
    name: str = "contender"
    family: str = "?"  # torch | ort | ct2 | openvino
    precision: str = "fp32"  # fp32 | int8 | fp16: picks the roofline to compare with
    stack: str = "?"  # short description for the table
    stream_batch_size: int = STREAM_BATCH_SIZE
    sorted_stream: bool = True  # predict_stream sorts texts by token length before batching

    def __init__(self) -> None:
        self.load_seconds: float | None = None

    @property
    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def prepare(self, cache_dir: Path) -> None:
        """One-time, untimed build work."""

    def load(self, threads: int) -> None:
        raise NotImplementedError

    def proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities [len(texts), labels] for one batch padded to its longest text."""
        return softmax(self.run_tokens(self.prepare_tokens(TokenBatch(self.encode_padded(texts)))))

    def encode_padded(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The contender's own tokenizer: int64 feeds padded to the longest of `texts`."""
        raise NotImplementedError

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Token count per text (with specials, truncated), for length sorting."""
        raise NotImplementedError

    def predict_texts(self, texts: Sequence[str]) -> list[str]:
        return argmax_labels(self.proba(texts), self.labels())

    def stream_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities for many texts, in input order, batched the contender's best way."""
        n = len(texts)
        order = (np.argsort(self.token_lengths(texts), kind="stable") if self.sorted_stream and n
                 else np.arange(n))
        out = np.empty((n, len(self.labels())), dtype=np.float32)
        for i in range(0, n, self.stream_batch_size):
            rows = order[i:i + self.stream_batch_size]
            out[rows] = self.proba([texts[j] for j in rows])
        return out

    def predict_stream(self, texts: Sequence[str]) -> list[str]:
        return argmax_labels(self.stream_proba(texts), self.labels())

    def prepare_tokens(self, batch: TokenBatch) -> Any:
        return batch.feeds

    def run_tokens(self, prepared: Any) -> np.ndarray:
        """Logits of one prepared batch."""
        raise NotImplementedError

    def labels(self) -> list[str]:
        raise NotImplementedError

    def threads(self) -> dict[str, Any]:
        raise NotImplementedError

    def batching(self) -> str:
        if not self.sorted_stream:
            return f"batches of {self.stream_batch_size} in input order, padded to the longest"
        return f"length-sorted batches of {self.stream_batch_size}, padded to the longest"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "stack": self.stack, "precision": self.precision, "batching": self.batching()}

    def close(self) -> None:
        """Drop models and sessions (frees memory before the next section)."""


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


def argmax_labels(logits: np.ndarray, labels: Sequence[str]) -> list[str]:
    return [labels[int(k)] for k in np.asarray(logits).argmax(axis=-1)]
