"""`onnxpress demo`: the whole pipeline on the embedded defaults, offline, in one command, ending in a report.

Each step is an ordinary `onnxpress` command (printed before it runs, so it can be copied);
finished steps are reused on a rerun, so an interrupted demo picks up where it stopped. It
ends with a side-by-side measurement against PyTorch and `REPORT.html` / `REPORT.md`.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from onnxpress.demo.measure import QuickBench


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train, export, score, translate and measure end to end on the bundled defaults; writes a report",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--out", default="demo", help="working directory for every output (default: demo)")
    parser.add_argument("--data", default=None, help="data root (default: $ONNXPRESS_DATA, ../shared/data, ./data)")
    parser.add_argument("--skip-translator", action="store_true", help="only the classifier pipeline")
    parser.add_argument("--skip-bench", action="store_true", help="no side-by-side measurement")
    parser.add_argument("--peers", default=",".join(QuickBench.peers),
                        help="contenders beside onnxpress int8 in the measurement, as `onnxpress bench --against` "
                             "takes them, or 'all' for every installed peer (slower) (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every contender of the measurement (default: usable CPUs)")
    parser.set_defaults(func=run)


def _ag_news_test(data: str | None) -> Path:
    from onnxpress.errors import UserError
    from onnxpress.training.data_root import find_dataset, not_found_message

    found = find_dataset(data, "ag_news", "test.csv")
    if found is None:
        raise UserError(not_found_message("ag_news", "test.csv"))
    return found / "test.csv"


def run(args: argparse.Namespace) -> int:
    from onnxpress.commands.bench import default_threads
    from onnxpress.demo import pipeline
    from onnxpress.demo.layout import DemoLayout
    from onnxpress.demo.sections import next_commands, score_accuracy
    from onnxpress.demo.steps import Ledger, run_step

    test_csv = _ag_news_test(args.data)
    layout = DemoLayout(Path(args.out))
    layout.root.mkdir(parents=True, exist_ok=True)
    data = ["--data", args.data] if args.data else []
    ledger, ran = Ledger(layout.root), set()
    records = [run_step(step, ledger, ran) for step in pipeline.classifier_steps(layout, data, test_csv)]
    scored, total, accuracy = score_accuracy(layout.scores, test_csv)
    print(f"scored {scored} of {total} rows; accuracy vs. gold labels {accuracy:.4f}")

    if not args.skip_translator:
        pipeline.write_example_sentences(layout)
        for step in pipeline.translator_steps(layout, data):
            records.append(run_step(step, ledger, ran))
            if step.name == "translate":
                outputs = layout.sentences_output.read_text(encoding="utf-8").splitlines()
                for source, output in zip(pipeline.EXAMPLE_SENTENCES, outputs):
                    print(f"  {source}  ->  {output}")
    if not args.skip_bench:
        translator_data = None if args.skip_translator else (args.data or "multi30k")
        peers = None if args.peers == "all" else tuple(p.strip() for p in args.peers.split(",") if p.strip())
        steps = pipeline.bench_steps(layout, replace(QuickBench(), peers=peers), test_csv,
                                     args.threads or default_threads(), translator_data)
        records += [run_step(step, ledger, ran) for step in steps]

    paths = pipeline.build_report(layout, test_csv, records)
    print(f"\nDemo finished; everything it wrote is under {layout.root}/")
    print(f"Report: {paths['html'].resolve()} (open it in a browser; {paths['markdown']} is the same in Markdown)")
    print("Next, try:")
    for command in next_commands(layout):
        print(f"  {command}")
    return 0
