"""A translator checkpoint as export and benchmarks read it: model, config, tokenizers, training.json."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onnxpress.errors import UserError


@dataclass
class LoadedTranslator:
    """What export needs from a checkpoint."""

    model: Any  # onnxpress.training.seq2seq.Seq2Seq, eval mode
    config: Any  # Seq2SeqConfig
    source_tokenizer: Path
    target_tokenizer: Path
    meta: dict[str, Any] = field(default_factory=dict)  # training.json (languages, metrics, ...)


def load_checkpoint(path: str | Path) -> LoadedTranslator:
    """Load a checkpoint written by `onnxpress train translator` (via its `load_translator`)."""
    from onnxpress.training.translator import SRC_TOKENIZER, TGT_TOKENIZER, load_translator

    path = Path(path)
    if not path.is_dir():
        raise UserError(f"checkpoint directory not found: {path}")
    model, _tokenizers, config = load_translator(path)
    meta = {}
    if (path / "training.json").is_file():
        meta = json.loads((path / "training.json").read_text())
    return LoadedTranslator(model=model.eval(), config=config, source_tokenizer=path / SRC_TOKENIZER,
                            target_tokenizer=path / TGT_TOKENIZER, meta=meta)


def languages(meta: dict[str, Any]) -> tuple[str | None, str | None]:
    """(source, target) language codes named by a checkpoint's training.json, in any of its layouts."""
    settings = meta.get("settings", {})
    return (meta.get("src", settings.get("src", meta.get("source_lang"))),
            meta.get("tgt", settings.get("tgt", meta.get("target_lang"))))
