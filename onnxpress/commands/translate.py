"""`onnxpress translate ARTIFACT`: translate lines (stdin -> stdout, or a file, resumable)."""
from __future__ import annotations

import argparse

from onnxpress.cli import HelpFormatter


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "translate",
        help="translate text line by line with a translation artifact",
        description="Translate one sentence per line. Without --input, reads stdin and writes stdout as it "
                    "goes. With --input/--output, translates a file in committed chunks: an interrupted run "
                    "(even kill -9) continues where it stopped when the same command is run again. Output "
                    "line i always translates input line i; blank lines stay blank.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("artifact", help="artifact directory (with manifest.json)")
    p.add_argument("--input", help="input text file, one sentence per line (default: stdin)")
    p.add_argument("--output", help="output file (required with --input; default: stdout)")
    p.add_argument("--beam", type=int, default=None, help="beam size; 1 = greedy (default: the artifact's)")
    p.add_argument("--variant", default="auto", help="variant from the manifest")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: one per core)")
    p.add_argument("--max-batch-size", type=int, default=None, help="sentences decoded together")
    p.add_argument("--batch-lines", type=int, default=64, help="stdin mode: lines read before translating")
    p.add_argument("--chunk-lines", type=int, default=1024, help="file mode: lines per committed part")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from onnxpress.errors import UserError
    from onnxpress.runtime.translate_file import translate_file, translate_stream
    from onnxpress.runtime.translator import Translator

    if args.beam is not None and args.beam < 1:
        raise UserError("--beam must be >= 1")
    if args.input and not args.output:
        raise UserError("--input needs --output (or pipe the file through stdin)")
    if args.output and not args.input:
        raise UserError("--output needs --input (stdin mode writes to stdout)")
    if args.batch_lines < 1:
        raise UserError("--batch-lines must be >= 1")
    tr = Translator.load(args.artifact, variant=args.variant, device=args.device, threads=args.threads,
                         max_batch_size=args.max_batch_size)
    if args.input:
        summary = translate_file(tr, args.input, args.output, beam_size=args.beam, chunk_lines=args.chunk_lines,
                                 overwrite=args.overwrite, progress=not args.no_progress)
    else:
        batch = 1 if sys.stdin.isatty() else args.batch_lines
        summary = translate_stream(tr, sys.stdin.buffer, sys.stdout, beam_size=args.beam, batch_lines=batch)
    print(f"{summary.line()} [{tr.variant} on {tr.device}]", file=sys.stderr)
    return 0
