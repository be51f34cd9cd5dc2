"""`onnxpress demo`: the whole pipeline on the embedded defaults, offline, in one command.

Each step is an ordinary `onnxpress` command (printed before it runs, so it can be copied),
and each one resumes or skips finished work, so an interrupted demo picks up where it stopped.
"""
from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

EXAMPLE_SENTENCES = [
    "Ein Mann fährt Fahrrad.",
    "Zwei Hunde spielen im Schnee.",
    "Eine Frau sitzt auf einer Bank und liest ein Buch.",
    "Kinder spielen auf der Straße Fußball.",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train, export, score and translate end to end on the bundled defaults",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--out", default="demo", help="working directory for every output (default: demo)")
    parser.add_argument("--data", default=None, help="data root (default: $ONNXPRESS_DATA, ../shared/data, ./data)")
    parser.add_argument("--skip-translator", action="store_true", help="only the classifier pipeline")
    parser.set_defaults(func=run)


def _step(title: str, argv: list[str]) -> None:
    from onnxpress.cli import main
    from onnxpress.errors import UserError

    print(f"\n=== {title}\n$ onnxpress {shlex.join(argv)}", flush=True)
    started = time.perf_counter()
    status = main(argv)
    if status:
        raise UserError(f"demo step failed ({title}); see the message above")
    print(f"--- {title}: done in {time.perf_counter() - started:.0f} s", flush=True)


def _data_args(args: argparse.Namespace) -> list[str]:
    return ["--data", args.data] if args.data else []


def _ag_news_test(args: argparse.Namespace) -> Path:
    from onnxpress.errors import UserError
    from onnxpress.training.data_root import find_dataset, not_found_message

    found = find_dataset(args.data, "ag_news", "test.csv")
    if found is None:
        raise UserError(not_found_message("ag_news", "test.csv"))
    return found / "test.csv"


def _report_scores(scores: Path, test_csv: Path, labels_file: Path) -> None:
    """Accuracy of the scored file against the CSV's gold labels (label 1..4 = classes.txt order)."""
    import csv

    import pyarrow.parquet as pq

    names = labels_file.read_text().split()
    gold = [names[int(row[0]) - 1] for row in csv.reader(test_csv.open(newline="", encoding="utf-8"))]
    table = pq.read_table(scores, columns=["row", "label"]).to_pydict()
    correct = sum(gold[r] == label for r, label in zip(table["row"], table["label"]))
    print(f"scored {len(table['row'])} of {len(gold)} rows; accuracy vs. gold labels {correct / len(gold):.4f}")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = _data_args(args)
    test_csv = _ag_news_test(args)

    _step("1/3 train the AG News classifier (seed recipe: 500 steps, batch 8, lr 2e-5)",
          ["train", "classifier", *data, "--out", str(out / "clf"), "--steps", "500", "--batch-size", "8",
           "--lr", "2e-5", "--max-minutes", "15"])
    if not (out / "artifacts" / "clf" / "manifest.json").exists():
        _step("2/3 export to ONNX (fp32 fused, int8 dynamic), gated on test accuracy",
              ["export", "classifier", str(out / "clf"), "--out", str(out / "artifacts" / "clf"),
               "--variants", "fp32,int8", *data, "--eval-rows", "2000"])
    _step("3/3 score the full AG News test set with the torch-free runtime (resumable)",
          ["score", str(out / "artifacts" / "clf"), str(test_csv), "--no-header", "--text-column", "1",
           "--text-column", "2", "--out", str(out / "scores.parquet"), "--overwrite"])
    _report_scores(out / "scores.parquet", test_csv, test_csv.parent / "classes.txt")

    if not args.skip_translator:
        mt, mt_artifact = out / "mt", out / "artifacts" / "mt"
        _step("translator 1/3: train a GRU + Bahdanau attention De->En model (demo preset, minutes)",
              ["train", "translator", *data, "--preset", "demo", "--out", str(mt)]
              + (["--resume"] if (mt / "config.json").exists() else []))
        if not (mt_artifact / "manifest.json").exists():
            _step("translator 2/3: export encoder + decoder-step ONNX (fp32, int8)",
                  ["export", "translator", str(mt), "--out", str(mt_artifact), "--variants", "fp32,int8",
                   *data, "--eval-rows", "200"])
        source = out / "sentences.de"
        source.write_text("\n".join(EXAMPLE_SENTENCES) + "\n", encoding="utf-8")
        _step("translator 3/3: translate with the torch-free runtime (beam 4)",
              ["translate", str(mt_artifact), "--input", str(source), "--output", str(out / "sentences.en"),
               "--beam", "4", "--overwrite", "--no-progress"])
        for src, tgt in zip(EXAMPLE_SENTENCES, (out / "sentences.en").read_text(encoding="utf-8").splitlines()):
            print(f"  {src}  ->  {tgt}")
        _step("attention of the first sentence as a heatmap",
              ["attention-plot", EXAMPLE_SENTENCES[0], "--model", str(mt), "--out", str(out / "attention.png")])
    print(f"\nDemo finished; everything it wrote is under {out}/")
    return 0
