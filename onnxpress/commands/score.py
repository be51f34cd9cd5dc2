"""`onnxpress score ARTIFACT INPUT --out OUT`: resumable batch scoring of a csv/jsonl/parquet file."""
from __future__ import annotations

import argparse
import sys

from onnxpress.cli import positive_int
from onnxpress.commands import add_ray_engine


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score",
        help="score a csv/jsonl/parquet file with a classifier artifact (resumable)",
        description="Score every row of INPUT with the classifier in ARTIFACT. Interrupted runs "
                    "(even kill -9) continue where they stopped when the same command is run again.",
    )
    p.add_argument("artifact", help="artifact directory (with manifest.json)")
    p.add_argument("input", help="input file: .csv, .jsonl or .parquet")
    p.add_argument("--out", dest="output", required=True, help="output file: .parquet, .csv or .jsonl")
    p.add_argument("--text-column", action="append", dest="text_columns", metavar="NAME",
                   help="column holding the text (default: text); repeat to join several with a space")
    p.add_argument("--id-column", help="column to carry into the output as `id` (default: row number only)")
    p.add_argument("--errors", help="file for rows that cannot be scored (default: OUT stem + .errors); "
                   "never the output or the input")
    p.add_argument("--probabilities", action="store_true", help="also write one prob_<label> column per label")
    p.add_argument("--no-header", dest="header", action="store_false",
                   help="CSV without a header row: columns are 0, 1, 2, ...")
    p.add_argument("--variant", default="auto", help="variant from the manifest (default: auto)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "tensorrt"])
    p.add_argument("--threads", type=positive_int, default=None, help="intra-op threads (default: one per core)")
    # The defaults are not imported here: registering a command stays import-free (fast --help).
    p.add_argument("--max-batch-tokens", type=positive_int, default=None,
                   help="padded tokens per model run (default: the runtime's budget for the device, "
                   "onnxpress.runtime.token_budget)")
    p.add_argument("--max-batch-size", type=positive_int, default=None, help="rows per model run")
    p.add_argument("--chunk-rows", type=positive_int, default=2048, help="rows per committed part (resume granularity)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output/errors files, or an interrupted run with other settings")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_ray_engine(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        from onnxpress.runtime.jobs.ray import score_command

        return score_command(args)
    from onnxpress.errors import UserError
    from onnxpress.runtime.classifier import Classifier
    from onnxpress.runtime.jobs.score import ScoreConfig, check_paths, run_score

    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise UserError(f"`score` needs the scoring extra: pip install 'onnxpress[scoring]' ({exc.name} missing)")
    config = ScoreConfig.from_args(args)
    check_paths(config)  # check the input and outputs before spending time on the model
    config.reader().check()
    clf = Classifier.load(args.artifact, variant=args.variant, device=args.device, threads=args.threads,
                          max_batch_tokens=args.max_batch_tokens, max_batch_size=args.max_batch_size)
    summary = run_score(clf, config)
    print(f"{summary.line()} [{clf.variant} on {clf.device}]", file=sys.stderr)
    return 0
