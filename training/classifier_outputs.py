"""What a classifier run leaves in its folder: the Hugging Face checkpoint, `training.json`, the confusion matrix."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import torch

from onnxpress.runtime.jobs.durable import atomic_write_text
from onnxpress.training.classifier_checkpoint import RESULT_FILE
from onnxpress.training.classifier_config import TrainConfig
from onnxpress.training.metrics import save_confusion_matrix

RUN_FORMAT = "onnxpress-classifier-run/1"


def run_record(cfg: TrainConfig, *, recipe: dict, base_name: str, base_path: str, labels: list[str],
               splits: dict, report: dict, history: list[dict], timing: dict, complete: bool,
               device: torch.device) -> dict:
    """The contents of `training.json`: recipe, data, metrics, timing, history, environment."""
    from transformers import __version__ as transformers_version

    return {
        "format": RUN_FORMAT,
        "complete": complete,  # False: stopped early by --max-minutes after timing.steps steps
        "task": "ag_news",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": recipe,
        "base_model": base_name,
        "base_model_path": base_path,
        "pooling": cfg.pooling,
        "max_length": cfg.max_length,
        "labels": labels,
        "data": {
            name: {"source": split.source, "sha256": split.sha256, "rows_used": len(split),
                   "rows_skipped": len(split.skipped)}
            for name, split in splits.items()
        },
        "metrics": report,
        "timing": timing,
        "history": history,
        "environment": {"torch": torch.__version__, "transformers": transformers_version,
                        "device": str(device), "threads": torch.get_num_threads()},
    }


def save_run(out: Path, model, tokenizer, record: dict) -> None:
    """Write the model (safetensors), its tokenizer, the confusion matrix and `training.json` (last)."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    save_confusion_matrix(record["metrics"], out, title=f"AG News test, {record['pooling']} pooling")
    atomic_write_text(out / RESULT_FILE, json.dumps(record, indent=2) + "\n")


def load_run(out: Path) -> dict:
    """The `training.json` of a finished run."""
    return json.loads((out / RESULT_FILE).read_text())
