"""A Hugging Face sequence-classifier checkpoint as the exporter sees it, read without loading weights."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnxpress.errors import UserError

CLASSIFIER_ARCH = re.compile(r"(ForSequenceClassification|ForMeanPooledClassification)$")
MAX_LENGTH_CAP = 512


@dataclass
class CheckpointInfo:
    path: Path
    config: Any
    labels: list[str]
    tokenizer_file: Path
    max_length: int
    max_length_source: str
    pad_token_id: int


def inspect_checkpoint(path: str | Path) -> CheckpointInfo:
    """Check that `path` is a sequence-classifier checkpoint with a fast tokenizer, without loading weights."""
    from transformers import AutoConfig

    path = Path(path)
    if not path.is_dir():
        raise UserError(f"checkpoint directory not found: {path}")
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a model checkpoint (no config.json)")
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path / 'config.json'}: {exc}") from None
    archs = config.architectures or []
    if not any(CLASSIFIER_ARCH.search(a) for a in archs):
        raise UserError(
            f"{path} is not a sequence classifier (architectures: {', '.join(archs) or 'none'}); "
            "export the checkpoint written by `onnxpress train classifier`"
        )
    tokenizer_file = path / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise UserError(f"{path} has no tokenizer.json (a fast tokenizer saved with the checkpoint is required)")
    labels = [config.id2label[i] for i in sorted(config.id2label)]
    max_length, source = _max_length(path, config)
    return CheckpointInfo(path, config, labels, tokenizer_file, max_length, source, _pad_token_id(path, config))


def _max_length(path: Path, config: Any) -> tuple[int, str]:
    limit = int(getattr(config, "max_position_embeddings", MAX_LENGTH_CAP) or MAX_LENGTH_CAP)
    training = path / "training.json"
    if training.is_file():
        value = json.loads(training.read_text()).get("max_length")
        if value:
            return min(int(value), limit), "training.json"
    tok_config = path / "tokenizer_config.json"
    if tok_config.is_file():
        value = json.loads(tok_config.read_text()).get("model_max_length")
        if isinstance(value, (int, float)) and value > 0:
            return int(min(value, MAX_LENGTH_CAP, limit)), "tokenizer_config.json (capped)"
    return min(MAX_LENGTH_CAP, limit), "default"


def _pad_token_id(path: Path, config: Any) -> int:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tok_config = path / "tokenizer_config.json"
    if tok_config.is_file():
        pad = json.loads(tok_config.read_text()).get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        if pad and tokenizer.token_to_id(pad) is not None:
            return int(tokenizer.token_to_id(pad))
    if tokenizer.padding and tokenizer.padding.get("pad_id") is not None:
        return int(tokenizer.padding["pad_id"])
    return int(config.pad_token_id or 0)
