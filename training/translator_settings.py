"""The translator's training settings (`TrainSettings`), its presets and the recipe a run records."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from onnxpress.training.run_dir import normalise

# What each preset measured, with the command: benchmarks/README.md, "Training".
PRESETS: dict[str, dict] = {
    "full": {},  # the TrainSettings defaults: 5.8M parameters, the reported BLEU
    "demo": dict(  # 1.8M parameters, a few minutes
        src_vocab=4000, tgt_vocab=3000, emb_dim=128, enc_hidden=128, dec_hidden=256, attn_dim=128,
        dropout=0.2, batch_size=64, lr=2e-3, epochs=2, max_minutes=5.0, beam_size=5, eval_limit=200,
    ),
    "tiny": dict(  # seconds: for tests and smoke runs
        src_vocab=300, tgt_vocab=300, emb_dim=32, enc_hidden=32, dec_hidden=64, attn_dim=32,
        dropout=0.0, batch_size=16, lr=3e-3, epochs=1, beam_size=2, eval_limit=20,
    ),
}

# Settings that only say when to stop: raising them continues a run instead of making another one.
STOPPING = ("epochs", "patience", "max_minutes")
# Settings that change neither the model nor when it stops (evaluation, threads, bookkeeping).
NOT_IN_RECIPE = ("out", "data", "eval_split", "eval_limit", "beam_size", "length_penalty", "threads",
                 "progress", "command", "overwrite")


@dataclass
class TrainSettings:
    """Everything `train_translator` needs; defaults are the measured full configuration."""

    out: str = "runs/mt"
    data: str | None = None
    src: str = "de"
    tgt: str = "en"
    src_vocab: int = 8000
    tgt_vocab: int = 6000
    emb_dim: int = 256
    enc_hidden: int = 256
    dec_hidden: int = 256
    attn_dim: int = 256
    dropout: float = 0.3
    tie_embeddings: bool = True
    batch_size: int = 64
    lr: float = 1e-3
    lr_decay: float = 0.5  # multiply the learning rate by this when validation loss stops improving
    clip: float = 1.0
    label_smoothing: float = 0.1
    teacher_forcing: float = 1.0
    epochs: int = 20
    patience: int = 3  # early stopping: epochs without a better validation loss
    max_minutes: float | None = None  # training time budget (the running epoch is cut short)
    max_train_len: int = 50  # training pairs with more subwords on either side are skipped
    train_limit: int | None = None  # use only the first N training pairs
    eval_split: str = "test_2016_flickr"
    eval_limit: int | None = None  # evaluate on the first N sentences only
    beam_size: int = 5  # 0 or 1: no beam-search evaluation
    length_penalty: float = 1.0
    threads: int | None = None
    seed: int = 0
    progress: bool = True
    overwrite: bool = False  # replace a run already in `out` (finished, or with another recipe)
    command: str = ""  # the command line that produced the run, recorded in training.json

    @classmethod
    def from_options(cls, preset: str = "full", **options: Any) -> "TrainSettings":
        """A preset's settings, overridden by every option that names a field and is not None."""
        names = {f.name for f in fields(cls)}
        values = dict(PRESETS[preset])
        values.update({k: v for k, v in options.items() if k in names and v is not None})
        return cls(**values)

    def recipe(self, data_dir: Path) -> dict:
        """What makes two runs the same run: resuming needs an equal recipe."""
        values = {f.name: getattr(self, f.name) for f in fields(self)
                  if f.name not in STOPPING and f.name not in NOT_IN_RECIPE}
        return normalise({**values, "data_dir": str(Path(data_dir).resolve())})

    def stop_reason(self, epoch: int, bad_epochs: int, train_seconds: float) -> str | None:
        """Why a run at this point is over under these settings (None: it continues)."""
        if bad_epochs >= self.patience:
            return f"early stopping (no val improvement in {self.patience} epochs)"
        if epoch >= self.epochs:
            return f"{self.epochs} epochs"
        if self.max_minutes and train_seconds >= self.max_minutes * 60:
            return "time budget"
        return None
