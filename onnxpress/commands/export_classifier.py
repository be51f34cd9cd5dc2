"""`onnxpress export classifier`: checkpoint -> validated, quantized ONNX artifact directory."""
from __future__ import annotations

import argparse

from onnxpress.cli import HelpFormatter, export_opset, non_negative_float, positive_int
from onnxpress.commands import add_overwrite

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
                   help="comma-separated: fp32 (fused), int8 (int8 weights, QAttention, uint8 activation "
                        "scales calibrated on training texts: batch-invariant, the CPU default), int8-dynamic "
                        "(run-time activation scales), int8-static (QDQ, --static-activations; TensorRT when "
                        "int8), fp16 (GPU, fp32 IO)")
    p.add_argument("--data", default=None,
                   help="AG News dir (or a data root holding ag_news/); default: $ONNXPRESS_DATA, ../shared/data, ./data")
    p.add_argument("--eval-rows", type=int, default=None,
                   help="evaluate on a seeded random sample of N test rows (default: all 7,600)")
    p.add_argument("--max-accuracy-drop", type=non_negative_float, default=0.5,
                   help="accuracy a variant may lose vs. the PyTorch checkpoint, in percentage points")
    p.add_argument("--min-agreement", type=float, default=0.0,
                   help="argmax agreement with PyTorch a variant must reach (0..1; 0 = not gated)")
    p.add_argument("--calibration-method", choices=("minmax", "entropy", "percentile"), default="minmax",
                   help="int8-static: first calibration method (the others are tried as remedies)")
    p.add_argument("--static-activations", choices=("int8", "uint8"), default="int8",
                   help="int8-static activation type: int8 (symmetric; CPU and TensorRT) or uint8 "
                        "(asymmetric; more accurate on CPU, CPU only). uint8 is also tried as a remedy")
    p.add_argument("--calibration-size", type=int, default=512,
                   help="int8 and int8-static: training texts to calibrate activation ranges on")
    p.add_argument("--screen-rows", type=int, default=1000,
                   help="try each remedy on this many rows first; only one passing there gets the full "
                        "evaluation (0: evaluate every attempt in full)")
    p.add_argument("--no-remedies", dest="remedies", action="store_false",
                   help="reject a failing variant at once instead of trying the remedy ladder")
    p.add_argument("--opset", type=export_opset, default=17, help="ONNX opset of the exported graphs (17 to 20)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for validation (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed for the evaluation/calibration samples")
    add_overwrite(p, "replace an existing artifact in --out")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    from onnxpress.export.classifier import ExportOptions
    from onnxpress.export.classifier_data import AgNewsSample, export_classifier_on_ag_news
    from onnxpress.export.converter import options_from_args

    hf_logging.set_verbosity_error()
    result = export_classifier_on_ag_news(args.checkpoint, args.out, options_from_args(ExportOptions, args),
                                          options_from_args(AgNewsSample, args))
    print(result.table)
    rejected = [n for n, v in result.manifest.variants.items() if not v.servable]
    print(f"wrote {result.out} (servable: {', '.join(result.servable) or 'none'}"
          + (f"; rejected: {', '.join(rejected)}" if rejected else "") + ")")
    return 0 if result.servable else 1
