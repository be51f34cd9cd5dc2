"""`onnxpress train translator`: GRU encoder-decoder with Bahdanau attention on Multi30k."""
from __future__ import annotations

import argparse

from onnxpress.commands import add_overwrite

# CLI option -> TrainSettings field; None defaults mean "take the preset's value".
_MODEL_OPTIONS = {
    "src_vocab": (int, "source BPE vocabulary size"),
    "tgt_vocab": (int, "target BPE vocabulary size"),
    "emb_dim": (int, "embedding size"),
    "enc_hidden": (int, "encoder GRU size per direction"),
    "dec_hidden": (int, "decoder GRU size"),
    "attn_dim": (int, "attention size"),
    "dropout": (float, "dropout"),
    "batch_size": (int, "sentences per batch"),
    "lr": (float, "Adam learning rate"),
    "clip": (float, "gradient-norm clipping"),
    "label_smoothing": (float, "label smoothing (0 = plain cross-entropy)"),
    "teacher_forcing": (float, "teacher-forcing ratio (1 = always feed the gold token)"),
    "epochs": (int, "maximum epochs (raising it continues a finished run)"),
    "patience": (int, "early stopping: epochs without validation improvement"),
    "max_minutes": (float, "training time budget in minutes (raising it continues a run it stopped)"),
    "max_train_len": (int, "skip training pairs longer than this many subwords"),
    "train_limit": (int, "use only the first N training pairs"),
    "eval_limit": (int, "evaluate BLEU on the first N test sentences only"),
    "beam_size": (int, "beam size for the beam-search BLEU (<=1: greedy only)"),
    "length_penalty": (float, "beam score = log-prob / length**this"),
    "threads": (int, "torch CPU threads"),
    "seed": (int, "random seed"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "translator",
        help="train a GRU + Bahdanau attention translator on Multi30k",
        description="Train BPE tokenizers and a GRU encoder-decoder with additive attention on Multi30k, "
        "then report validation perplexity and greedy / beam-search BLEU (sacrebleu) on test_2016_flickr. "
        "Rerunning the same command resumes an unfinished run and leaves a finished one alone.",
    )
    p.add_argument("--data", help="Multi30k directory or data root (default: $ONNXPRESS_DATA, ../shared/data, ./data)")
    p.add_argument("--src", default="de", help="source language code (default: de)")
    p.add_argument("--tgt", default="en", help="target language code (default: en)")
    p.add_argument("--out", default="runs/mt", help="output directory (default: runs/mt)")
    p.add_argument("--preset", choices=("full", "demo", "tiny"), default="full",
                   help="full: the measured BLEU configuration; demo: a few minutes; tiny: seconds (tests)")
    add_overwrite(p, "start afresh, replacing the run (finished or not) already in --out")
    # Resuming is automatic (an unfinished run with the same settings continues); kept for old scripts.
    p.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--eval-split", default=None, help="split for BLEU (default: test_2016_flickr)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    for name, (typ, text) in _MODEL_OPTIONS.items():
        p.add_argument("--" + name.replace("_", "-"), type=typ, default=None, help=text)
    p.set_defaults(func=run)


def command_line(args: argparse.Namespace) -> str:
    """The equivalent `onnxpress train translator ...` invocation, for training.json."""
    parts = ["onnxpress", "train", "translator"]
    for name in ("data", "src", "tgt", "out", "preset", "eval_split", *_MODEL_OPTIONS):
        value = getattr(args, name, None)
        if value is not None:
            parts += ["--" + name.replace("_", "-"), str(value)]
    parts += [flag for flag, on in (("--overwrite", args.overwrite), ("--resume", args.resume),
                                    ("--no-progress", not args.progress)) if on]
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    from onnxpress.training.translator import TrainSettings, train_translator

    # vars(args)["command"] is the subcommand ("train"); the settings record the full command line
    metrics = train_translator(TrainSettings.from_options(**{**vars(args), "command": command_line(args)}))
    test = metrics["test"]
    line = f"val ppl {metrics['val_ppl']:.2f}; {test['split']} BLEU greedy {test['greedy']['bleu']:.2f}"
    if "beam" in test:
        line += f", beam{test['beam']['beam_size']} {test['beam']['bleu']:.2f}"
    print(f"{line}; trained {metrics['train_minutes']:.1f} min -> {args.out}")
    return 0
