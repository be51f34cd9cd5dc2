"""`onnxpress train classifier`: fine-tune a BERT-family classifier on AG News."""
from __future__ import annotations

import argparse

from onnxpress.commands import add_overwrite


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "classifier",
        help="fine-tune a BERT classifier on AG News",
        description="Fine-tune a BERT-family classifier on AG News and save a Hugging Face checkpoint "
                    "with training.json and a confusion matrix. Rerunning the same command resumes an "
                    "unfinished run and leaves a finished one alone.",
    )
    p.add_argument("--base-model", default=None,
                   help="checkpoint dir or hub name (online only); default: the packaged all-MiniLM-L6-v2")
    p.add_argument("--data", default=None,
                   help="AG News dir (or a data root holding ag_news/); default: $ONNXPRESS_DATA, "
                        "../shared/data, ./data, else the hub when online")
    p.add_argument("--out", default="runs/clf", help="output checkpoint directory (default: %(default)s)")
    p.add_argument("--pooling", choices=("cls", "mean"), default="cls",
                   help="classification head: CLS + pooler (standard, the default) or masked mean of token states")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=None, help="optimizer steps (default: 500)")
    length.add_argument("--epochs", type=float, default=None, help="passes over the training rows")
    p.add_argument("--batch-size", type=int, default=8,
                   help="training batch size (default: %(default)s)")
    p.add_argument("--lr", type=float, default=2e-5, help="peak AdamW learning rate (default: %(default)s)")
    p.add_argument("--warmup", type=float, default=0.06,
                   help="linear warmup, as a fraction of the steps (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=0.01,
                   help="AdamW weight decay (default: %(default)s)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm, 0 = off (default: %(default)s)")
    p.add_argument("--max-length", type=int, default=128,
                   help="truncate texts to this many tokens (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed for the head's init, batch order, dropout")
    p.add_argument("--group-by-length", action="store_true",
                   help="batch texts of similar length together (less padding, faster)")
    p.add_argument("--train-rows", type=int, default=None, help="use only the first N training rows")
    p.add_argument("--eval-rows", type=int, default=None, help="evaluate on only the first N test rows")
    p.add_argument("--eval-batch-size", type=int, default=64, help="(default: %(default)s)")
    p.add_argument("--report-every", type=int, default=50,
                   help="report running loss/accuracy every N steps (default: %(default)s)")
    p.add_argument("--save-every", type=int, default=250,
                   help="save resumable state every N steps, 0 = never (default: %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto = CUDA (with autocast) when present, else CPU")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice, one per core)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop training after this many minutes, then evaluate and save; "
                        "rerunning the same command continues to the full step count")
    add_overwrite(p, "start afresh, replacing the run (finished or not) already in --out")
    p.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)  # resuming is automatic
    p.add_argument("--keep-checkpoint", action="store_true",
                   help="keep the resumable state (optimizer etc.) in OUT/checkpoint after finishing")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    from onnxpress.training.classifier import TrainConfig, train

    hf_logging.set_verbosity_error()  # the "newly initialized classifier weights" notice is expected
    result = train(TrainConfig.from_args(args))
    m, t = result["metrics"], result["timing"]
    per_class = ", ".join(f"{name} {v['f1']:.3f}" for name, v in m["per_class"].items())
    print(f"test accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  (n={m['n']})")
    print(f"per-class F1: {per_class}")
    if t.get("steps_per_second"):
        print(f"trained {t['steps']} steps in {t['train_seconds']:.0f} s ({t['steps_per_second']:.2f} steps/s)")
    if not result.get("complete", True):
        print(f"stopped early at step {t['steps']}/{result['recipe']['steps']} (--max-minutes); "
              "rerun the same command to continue")
    print(f"saved {args.out}")
    return 0
