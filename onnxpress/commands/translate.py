"""`onnxpress translate ARTIFACT`: translate lines (stdin -> stdout, or a file, resumable)."""
from __future__ import annotations

import argparse

from onnxpress.cli import HelpFormatter, positive_int
from onnxpress.commands import add_ray_engine


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
    p.add_argument("--beam-size", type=positive_int, default=None,
                   help="beam size; 1 = greedy (default: the artifact's)")
    p.add_argument("--beam", dest="beam_size", type=positive_int, help=argparse.SUPPRESS)  # old name
    p.add_argument("--variant", default="auto", help="variant from the manifest")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=positive_int, default=None, help="intra-op threads (default: one per core)")
    p.add_argument("--max-batch-tokens", type=positive_int, default=None,
                   help="padded source tokens decoded together (default: the runtime's budget)")
    p.add_argument("--max-batch-size", type=positive_int, default=None, help="sentences decoded together")
    p.add_argument("--batch-lines", type=positive_int, default=64, help="stdin mode: lines read before translating")
    p.add_argument("--chunk-lines", type=positive_int, default=1024, help="file mode: lines per committed part")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file, or an interrupted run with other settings")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_ray_engine(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from onnxpress.runtime.beam_search import check_beam_size

    if args.beam_size is not None:
        check_beam_size(args.beam_size)  # before loading anything
    if args.engine == "ray":
        from onnxpress.runtime.jobs.ray import translate_command

        return translate_command(args)
    import sys
    from pathlib import Path

    from onnxpress.errors import UserError
    from onnxpress.runtime.jobs.readers import check_readable
    from onnxpress.runtime.jobs.translate import TranslateConfig, run_translate, translate_stream
    from onnxpress.runtime.translator import Translator

    if args.input and not args.output:
        raise UserError("--input needs --output (or pipe the file through stdin)")
    if args.output and not args.input:
        raise UserError("--output needs --input (stdin mode writes to stdout)")
    if args.input:
        check_readable(Path(args.input))  # before spending time on the model
    tr = Translator.load(args.artifact, variant=args.variant, device=args.device, threads=args.threads,
                         max_batch_tokens=args.max_batch_tokens, max_batch_size=args.max_batch_size)
    if args.input:
        summary = run_translate(tr, TranslateConfig.from_args(args))
    else:
        batch = 1 if sys.stdin.isatty() else args.batch_lines
        try:
            summary = translate_stream(tr, sys.stdin.buffer, sys.stdout, beam_size=args.beam_size,
                                       batch_lines=batch)
        except BrokenPipeError:
            return _reader_went_away()
    print(f"{summary.line()} [{tr.variant} on {tr.device}]", file=sys.stderr)
    return 0


def _reader_went_away() -> int:
    """stdout's reader closed it (`| head -1`): stop quietly, like other Unix filters."""
    import os
    import signal
    import sys

    # the interpreter flushes stdout again at exit; point it at /dev/null so that flush is silent
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE
