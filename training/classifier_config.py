"""The classifier's training settings (`TrainConfig`), their checks and the recipe they record."""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, fields
from pathlib import Path

from onnxpress.errors import UserError
from onnxpress.training.modeling import POOLINGS
from onnxpress.training.run_dir import normalise

DEFAULT_STEPS = 500  # the seed recipe, used when neither steps nor epochs is given


@dataclass
class TrainConfig:
    """Everything `train` needs; the defaults are the seed recipe (batch 8, lr 2e-5, 500 steps)."""

    out: str | Path
    base_model: str | None = None  # checkpoint dir or hub name; None = the packaged MiniLM
    data: str | Path | None = None  # None = ONNXPRESS_DATA, ../shared/data, ./data, hub
    pooling: str = "cls"  # why cls: benchmarks/README.md, "Training"
    steps: int | None = None  # total optimizer steps; or
    epochs: float | None = None  # passes over the training rows
    batch_size: int = 8
    lr: float = 2e-5
    warmup: float = 0.06  # fraction of the steps
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    max_length: int = 128
    seed: int = 0
    group_by_length: bool = False
    train_rows: int | None = None
    eval_rows: int | None = None
    eval_batch_size: int = 64
    report_every: int = 50
    save_every: int = 250
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # torch intra-op threads; None = torch's default
    max_minutes: float | None = None  # stop training after this long, evaluate, save; rerun continues
    overwrite: bool = False
    keep_checkpoint: bool = False
    progress: bool = True

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "TrainConfig":
        """The config of `onnxpress train classifier ARGS` (every option is named after its field)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in vars(args).items() if k in names})

    def check(self) -> None:
        """Raise `UserError` for settings that cannot train."""
        if self.pooling not in POOLINGS:
            raise UserError(f"unknown pooling {self.pooling!r} (choose from {', '.join(POOLINGS)})")
        if self.steps is not None and self.epochs is not None:
            raise UserError("give --steps or --epochs, not both")
        positive = ("batch_size", "max_length", "eval_batch_size", "report_every", "steps", "epochs",
                    "train_rows", "eval_rows", "lr", "threads", "max_minutes")
        for key in positive:
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise UserError(f"--{key.replace('_', '-')} must be positive, got {value}")
        if self.max_length < 8:
            raise UserError(f"--max-length {self.max_length} is too short (at least 8)")
        if not 0 <= self.warmup < 1:
            raise UserError(f"--warmup is a fraction of the steps in [0, 1), got {self.warmup}")

    def total_steps(self, train_rows: int) -> int:
        """Optimizer steps: `steps`, else `epochs` passes over `train_rows`, else the seed recipe's."""
        if self.steps is not None:
            return self.steps
        if self.epochs is None:
            return DEFAULT_STEPS
        return max(1, math.ceil(self.epochs * math.ceil(train_rows / self.batch_size)))

    def recipe(self, base_model: str, total_steps: int, train_split, test_split) -> dict:
        """What makes two runs the same run: resuming needs an equal recipe."""
        return normalise({
            "task": "ag_news", "base_model": base_model, "pooling": self.pooling, "steps": total_steps,
            "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "warmup": self.warmup,
            "weight_decay": self.weight_decay, "grad_clip": self.grad_clip, "max_length": self.max_length,
            "seed": self.seed, "group_by_length": self.group_by_length,
            "train_rows": len(train_split), "eval_rows": len(test_split),
            "train_sha256": train_split.sha256, "test_sha256": test_split.sha256,
        })
