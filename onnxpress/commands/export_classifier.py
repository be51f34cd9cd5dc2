"""`onnxpress export classifier`: checkpoint -> validated, quantized ONNX artifact directory."""
from __future__ import annotations

import argparse

from onnxpress.cli import HelpFormatter

DEFAULT_VARIANTS = "fp32,int8"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "classifier",
        help="export a trained classifier to a servable ONNX artifact",
        description="Export a classifier checkpoint to ONNX (fused), build the requested precision variants, "
                    "validate each against the PyTorch checkpoint on the AG News test set, and write a "
                    "self-describing artifact directory (manifest.json, tokenizer.json, model files). "
                    "Variants losing more than --max-accuracy-drop points are retried with remedies and, "
                    "if none passes, recorded as not servable.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint dir written by `onnxpress train classifier`")
    p.add_argument("--out", required=True, help="artifact directory to write")
    p.add_argument("--variants", default=DEFAULT_VARIANTS,
                   help="comma-separated: fp32 (fused), int8 (dynamic, per-channel), "
                        "int8-static (QDQ, calibrated), fp16 (GPU, fp32 IO)")
    p.add_argument("--data", default=None,
                   help="AG News dir (or a data root holding ag_news/); default: $ONNXPRESS_DATA, ../shared/data, ./data")
    p.add_argument("--eval-rows", type=int, default=None,
                   help="evaluate on a seeded random sample of N test rows (default: all 7,600)")
    p.add_argument("--max-accuracy-drop", type=float, default=0.5,
                   help="accuracy a variant may lose vs. the PyTorch checkpoint, in percentage points")
    p.add_argument("--min-agreement", type=float, default=0.0,
                   help="argmax agreement with PyTorch a variant must reach (0..1; 0 = not gated)")
    p.add_argument("--calibration-method", choices=("minmax", "entropy", "percentile"), default="minmax",
                   help="int8-static: first calibration method (the others are tried as remedies)")
    p.add_argument("--static-activations", choices=("int8", "uint8"), default="int8",
                   help="int8-static activation type: int8 (symmetric; CPU and TensorRT) or uint8 "
                        "(asymmetric; more accurate on CPU, CPU only). uint8 is also tried as a remedy")
    p.add_argument("--calibration-size", type=int, default=128, help="int8-static: training texts to calibrate on")
    p.add_argument("--screen-rows", type=int, default=1000,
                   help="try each remedy on this many rows first; only one passing there gets the full "
                        "evaluation (0: evaluate every attempt in full)")
    p.add_argument("--no-remedies", dest="remedies", action="store_false",
                   help="reject a failing variant at once instead of trying the remedy ladder")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for validation (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed for the evaluation/calibration samples")
    p.add_argument("--force", action="store_true", help="replace an existing artifact in --out")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def _sample(n_total: int, n: int | None, seed: int) -> list[int]:
    import numpy as np

    if n is None or n >= n_total:
        return list(range(n_total))
    return sorted(np.random.default_rng(seed).choice(n_total, size=n, replace=False).tolist())


def run(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    from onnxpress.errors import UserError
    from onnxpress.export.classifier import ExportOptions, export_classifier, inspect_checkpoint, parse_variants
    from onnxpress.training.ag_news import load_ag_news

    hf_logging.set_verbosity_error()
    variants = parse_variants(args.variants)  # fail fast, before reading data
    if args.eval_rows is not None and args.eval_rows < 1:
        raise UserError("--eval-rows must be at least 1")
    if args.calibration_size < 1:
        raise UserError("--calibration-size must be at least 1")
    if not 0.0 <= args.min_agreement <= 1.0:
        raise UserError("--min-agreement must be between 0 and 1")
    info = inspect_checkpoint(args.checkpoint)
    train, test = load_ag_news(args.data)
    label_index = _label_mapping(test.label_names, info.labels)

    rows = _sample(len(test), args.eval_rows, args.seed)
    eval_texts = [test.texts[i] for i in rows]
    eval_labels = [label_index[test.labels[i]] for i in rows]
    calibration: list[str] = []
    if "int8-static" in variants:
        calibration = [train.texts[i] for i in _sample(len(train), args.calibration_size, args.seed)]

    options = ExportOptions(
        variants=variants, opset=args.opset, max_accuracy_drop=args.max_accuracy_drop,
        min_agreement=args.min_agreement, calibration_method=args.calibration_method,
        static_activations=args.static_activations, remedies=args.remedies,
        screen_rows=args.screen_rows or None,
        force=args.force, threads=args.threads, progress=args.progress,
    )
    data = {"dataset": "ag_news/test", "source": test.source, "sha256": test.sha256,
            "sample": "all rows" if len(rows) == len(test) else f"{len(rows)} rows, seed {args.seed}",
            "calibration": f"{len(calibration)} training texts, seed {args.seed}" if calibration else None}
    result = export_classifier(args.checkpoint, args.out, eval_texts=eval_texts, eval_labels=eval_labels,
                               calibration_texts=calibration, options=options, data_description=data)
    print(result.table)
    servable = [n for n, v in result.manifest.variants.items() if v.servable]
    rejected = [n for n, v in result.manifest.variants.items() if not v.servable]
    print(f"wrote {result.out} (servable: {', '.join(servable) or 'none'}"
          + (f"; rejected: {', '.join(rejected)}" if rejected else "") + ")")
    return 0 if servable else 1


def _label_mapping(data_labels: list[str], model_labels: list[str]) -> dict[int, int]:
    """Data label index -> model label index, by name when the names match, else by position."""
    from onnxpress.errors import UserError

    if sorted(data_labels) == sorted(model_labels):
        return {i: model_labels.index(name) for i, name in enumerate(data_labels)}
    if len(data_labels) != len(model_labels):
        raise UserError(
            f"the model has {len(model_labels)} labels ({', '.join(model_labels)}) but the data has "
            f"{len(data_labels)} ({', '.join(data_labels)})"
        )
    return {i: i for i in range(len(data_labels))}
