"""`onnxpress export translator`: translator checkpoint -> validated ONNX artifact (encoder + decoder step)."""
from __future__ import annotations

import argparse

from onnxpress.cli import HelpFormatter, export_opset, non_negative_float, positive_int
from onnxpress.commands import add_overwrite

DEFAULT_VARIANTS = "fp32,int8,fp16"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "translator",
        help="export a trained GRU + attention translator to a servable ONNX artifact",
        description="Export a translator checkpoint as two ONNX graphs (encoder.onnx, decoder_step.onnx with a "
                    "beam axis), build the requested variants (int8: dynamic per-channel, GRU cell and "
                    "projections as MatMul so they quantize; fp16: GPU, fp32 IO), report int8 coverage, and "
                    "validate every variant through the runtime against the PyTorch decoder on a test split "
                    "(greedy-token parity, BLEU). Variants losing more than --max-bleu-drop BLEU are kept "
                    "but marked not servable.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint dir written by `onnxpress train translator`")
    p.add_argument("--out", required=True, help="artifact directory to write")
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help="comma-separated from fp32, int8, fp16 "
                   "(fp32 is always built: it anchors parity)")
    p.add_argument("--data", dest="data_dir", metavar="DIR", default=None,
                   help="Multi30k dir (or a data root holding translation/multi30k); "
                   "default: $ONNXPRESS_DATA, ../shared/data, ./data")
    p.add_argument("--split", default="test_2016_flickr", help="split to validate on")
    p.add_argument("--src", dest="src_lang", metavar="LANG", default=None,
                   help="source language code (default: from training.json)")
    p.add_argument("--tgt", dest="tgt_lang", metavar="LANG", default=None,
                   help="target language code (default: from training.json)")
    p.add_argument("--eval-rows", dest="limit", metavar="N", type=int, default=None,
                   help="validate on the first N sentences only")
    p.add_argument("--beam-size", dest="eval_beam", metavar="N", type=int, default=4,
                   help="beam size for BLEU (also the artifact's default)")
    p.add_argument("--beam", dest="eval_beam", type=int, help=argparse.SUPPRESS)
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="beam score = log-prob / length ** this (the artifact's default)")
    p.add_argument("--max-bleu-drop", type=non_negative_float, default=0.5, help="BLEU a variant may lose vs. PyTorch")
    p.add_argument("--min-parity", dest="min_greedy_parity", metavar="SHARE", type=float, default=0.99,
                   help="share of sentences where fp32 greedy tokens must equal PyTorch's")
    p.add_argument("--no-per-channel", dest="per_channel", action="store_false",
                   help="int8 with one scale per tensor instead of per output channel")
    p.add_argument("--opset", type=export_opset, default=17, help="ONNX opset of the exported graphs (17 to 20)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for validation (default: all)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="sentences per batch in validation")
    p.add_argument("--calibration-size", type=positive_int, default=512,
                   help="int8: training sentences whose decoding sets the activation scales (batch-invariant int8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration sample")
    add_overwrite(p, "replace an existing artifact in --out")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from onnxpress.errors import UserError
    from onnxpress.export.converter import options_from_args
    from onnxpress.export.translator import ExportOptions, export_translator

    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    manifest, report = export_translator(args.checkpoint, args.out, options_from_args(ExportOptions, args), log=log)
    int8 = manifest.variants.get("int8")
    if int8 is not None and "coverage" in int8.method:
        cov = int8.method["coverage"]
        shares = ", ".join(f"{k} {v['int8_flop_share']:.1%}" for k, v in cov["per_sentence"].items())
        log(f"int8 coverage: {cov['int8_weight_share']:.1%} of weights, FLOPs per sentence {shares}")
    servable = [n for n, v in manifest.variants.items() if v.servable]
    print(json.dumps({"artifact": args.out, "servable": servable,
                      "bleu": {n: v.metrics.get("bleu") for n, v in manifest.variants.items()},
                      "pytorch_bleu": report["pytorch"]["bleu"]}, indent=1))
    if not servable:
        raise UserError("no variant passed validation; the artifact is not servable")
    return 0
