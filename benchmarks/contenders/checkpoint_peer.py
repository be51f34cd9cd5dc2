"""What every peer built from the training checkpoint shares: its HF tokenizer, its cache key,
the `CheckpointPeer` base and the `building` scratch folder for converted models."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from onnxpress.errors import UserError

from onnxpress.benchmarks.contenders.base import Contender


class HFTokenized:
    """Mixin: tokenization with the checkpoint's Hugging Face tokenizer (`self.tokenizer`)."""

    tokenizer: Any
    max_length: int

    def encode_padded(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="np")
        return {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))


def hf_tokenizer(checkpoint: Path, artifact_dir: Path | None) -> Any:
    """The checkpoint's own HF tokenizer; the artifact's tokenizer.json if it saved none."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        return AutoTokenizer.from_pretrained(checkpoint)
    except (OSError, ValueError, TypeError):
        if artifact_dir is None or not (artifact_dir / "tokenizer.json").is_file():
            raise UserError(f"{checkpoint} has no tokenizer and no artifact tokenizer.json to fall back on") from None
        return PreTrainedTokenizerFast(
            tokenizer_file=str(artifact_dir / "tokenizer.json"), pad_token="[PAD]", unk_token="[UNK]",
            cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
        )


def checkpoint_key(checkpoint: Path) -> str:
    """Cache key of a checkpoint: path plus the sizes and mtimes of its files."""
    h = hashlib.sha256(str(checkpoint.resolve()).encode())
    for p in sorted(checkpoint.iterdir()):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:12]


class CheckpointPeer(HFTokenized, Contender):
    """A peer built from the training checkpoint (PyTorch, Optimum, CTranslate2, OpenVINO)."""

    kind = "?"

    def __init__(self, checkpoint: str | os.PathLike, max_length: int, artifact: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, key: str | None = None):
        super().__init__()
        self.checkpoint = Path(checkpoint).resolve()
        # fingerprint at construction: a fresh process must load the same weights
        self.key = key or checkpoint_key(self.checkpoint)
        self.artifact = Path(artifact) if artifact else None
        self.max_length = int(max_length)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.tokenizer = None

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "checkpoint": str(self.checkpoint), "max_length": self.max_length,
                "artifact": str(self.artifact) if self.artifact else None,
                "cache_dir": str(self.cache_dir) if self.cache_dir else None, "key": self.key}

    def check_unchanged(self) -> None:
        if checkpoint_key(self.checkpoint) != self.key:
            raise UserError(f"{self.checkpoint} was rewritten after the benchmark started: it is no longer the "
                            "model the other contenders were measured with")

    def load_torch_model(self) -> Any:
        """The checkpoint as a PyTorch module (for peers that convert it)."""
        from onnxpress.training.modeling import load_classifier

        if not (self.checkpoint / "config.json").is_file():
            raise UserError(f"{self.name} needs the training checkpoint; {self.checkpoint} has no config.json")
        self.check_unchanged()
        return load_classifier(self.checkpoint)

    def built(self, name: str) -> Path:
        """Where this peer's converted model lives in the cache (keyed by checkpoint)."""
        if self.cache_dir is None:
            raise UserError(f"{self.name} needs a cache directory for its converted model")
        return self.cache_dir / f"{name}-{self.key}"

    def labels(self) -> list[str]:
        return self._labels

    def close(self) -> None:
        self.tokenizer = None


@contextlib.contextmanager
def building(final: Path) -> Iterator[Path]:
    """A scratch folder that becomes `final` only when the block completes (no half-built caches)."""
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.rename(final)
