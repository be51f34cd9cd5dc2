"""`onnxpress attention-plot`: translate one sentence and draw its attention matrix as a PNG."""
from __future__ import annotations

import argparse

from onnxpress.commands import add_beam_size


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "attention-plot",
        help="translate a sentence and render its attention as a PNG heatmap",
        description="Translate SENTENCE with a trained translator (PyTorch checkpoint directory from "
        "`onnxpress train translator`) and save the attention matrix as a heatmap: source words "
        "across the top, output words down the side (Bahdanau et al. 2015, Fig. 3).",
    )
    p.add_argument("sentence", help="source sentence")
    p.add_argument("--model", default="runs/mt", help="translator directory (default: runs/mt)")
    p.add_argument("--out", default="attention.png", help="PNG file to write (default: attention.png)")
    add_beam_size(p, 5, "beam size (1 = greedy; default 5)")
    p.add_argument("--subwords", action="store_true", help="label subword pieces instead of merging them into words")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from onnxpress.errors import UserError
    from onnxpress.training.attention_plot import render_attention
    from onnxpress.training.decoding import translate
    from onnxpress.training.translator import load_translator

    if not args.sentence.strip():
        raise UserError("the sentence is empty: nothing to translate or plot")
    if args.beam_size < 1:
        raise UserError(f"--beam-size must be at least 1, got {args.beam_size}")
    model, (src_tok, tgt_tok), _ = load_translator(args.model)
    result = translate(model, src_tok, tgt_tok, [args.sentence], beam_size=args.beam_size)[0]
    path = render_attention(
        result.source_tokens, result.output_tokens, result.attention, args.out,
        words=not args.subwords, title=f"{args.sentence}\n→ {result.text}",
    )
    print(result.text)
    print(f"attention plot: {path}")
    return 0
