"""`onnxpress score ARTIFACT INPUT --out OUT`: resumable batch scoring of a csv/jsonl/parquet file."""
from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score",
        help="score a csv/jsonl/parquet file with a classifier artifact (resumable)",
        description="Score every row of INPUT with the classifier in ARTIFACT. Interrupted runs "
                    "(even kill -9) continue where they stopped when the same command is run again.",
    )
    p.add_argument("artifact", help="artifact directory (with manifest.json)")
    p.add_argument("input", help="input file: .csv, .jsonl or .parquet")
    p.add_argument("--out", required=True, help="output file: .parquet, .csv or .jsonl")
    p.add_argument("--text-column", action="append", dest="text_columns", metavar="NAME",
                   help="column holding the text (default: text); repeat to join several with a space")
    p.add_argument("--id-column", help="column to carry into the output as `id` (default: row number only)")
    p.add_argument("--errors", help="file for rows that cannot be scored (default: OUT stem + .errors)")
    p.add_argument("--probabilities", action="store_true", help="also write one prob_<label> column per label")
    p.add_argument("--no-header", action="store_true", help="CSV without a header row: columns are 0, 1, 2, ...")
    p.add_argument("--variant", default="auto", help="variant from the manifest (default: auto)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "tensorrt"])
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: one per core)")
    # The defaults are not imported here: registering a command stays import-free (fast --help).
    p.add_argument("--max-batch-tokens", type=int, default=None,
                   help="padded tokens per model run (default: the runtime's budget for the device, "
                   "onnxpress.runtime.token_budget)")
    p.add_argument("--max-batch-size", type=int, default=None, help="rows per model run")
    p.add_argument("--chunk-rows", type=int, default=2048, help="rows per committed part (resume granularity)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from onnxpress.errors import UserError
    from onnxpress.runtime.classifier import Classifier
    from onnxpress.runtime.scoring import open_reader, score_file

    text_columns = args.text_columns or ["text"]
    # check the input before spending time on the model
    open_reader(args.input, text_columns, args.id_column, max(args.chunk_rows, 1), not args.no_header)
    try:
        import pyarrow  # noqa: F401
        import tqdm  # noqa: F401
    except ImportError as exc:
        raise UserError(f"`score` needs the scoring extra: pip install 'onnxpress[scoring]' ({exc.name} missing)")
    clf = Classifier.load(args.artifact, variant=args.variant, device=args.device, threads=args.threads,
                          max_batch_tokens=args.max_batch_tokens, max_batch_size=args.max_batch_size)
    summary = score_file(
        clf, args.input, args.out, text_columns, id_column=args.id_column, errors_path=args.errors,
        probabilities=args.probabilities, chunk_rows=args.chunk_rows, header=not args.no_header,
        overwrite=args.overwrite, progress=not args.no_progress,
    )
    print(f"{summary.line()} [{clf.variant} on {clf.device}]", file=sys.stderr)
    return 0
