"""The demo's steps, in order, and the report built from what they leave behind.

Each builder returns `Step`s (ordinary `onnxpress` command lines) for a `DemoLayout`; the
training recipe and the measurement budgets are parameters so that tests can run the same
chain on tiny models in seconds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from onnxpress.demo.layout import DemoLayout
from onnxpress.demo.measure import QuickBench
from onnxpress.demo.steps import Step, StepRecord

EXAMPLE_SENTENCES = [
    "Ein Mann fährt Fahrrad.",
    "Zwei Hunde spielen im Schnee.",
    "Eine Frau sitzt auf einer Bank und liest ein Buch.",
    "Kinder spielen auf der Straße Fußball.",
]
# the seed recipe on the packaged all-MiniLM-L6-v2: 500 steps of batch 8 at lr 2e-5
SEED_RECIPE = ("--steps", "500", "--batch-size", "8", "--lr", "2e-5", "--max-minutes", "15")


def classifier_steps(layout: DemoLayout, data: Sequence[str], test_csv: Path,
                     recipe: Sequence[str] = SEED_RECIPE) -> list[Step]:
    """Train (`recipe`), export fp32 + int8 gated on accuracy, score the test CSV."""
    run, artifact = layout.classifier_run, layout.classifier_artifact
    return [
        Step("train-classifier", "train the AG News classifier (seed recipe: 500 steps, batch 8, lr 2e-5)",
             ["train", "classifier", *data, "--out", str(run), *recipe],
             (run / "training.json",), "check the data path (--data DIR) and free disk space"),
        Step("export-classifier",
             "export to ONNX (fp32 fused, int8 with calibrated activation scales), gated on test accuracy",
             ["export", "classifier", str(run), "--out", str(artifact), "--variants", "fp32,int8", *data,
              "--eval-rows", "2000", "--overwrite"],
             (artifact / "manifest.json",), "if a variant was refused, its reason is above",
             needs=("train-classifier",)),
        Step("score", "score the full AG News test set with the torch-free runtime (resumable)",
             ["score", str(artifact), str(test_csv), "--no-header", "--text-column", "1", "--text-column", "2",
              "--out", str(layout.scores), "--overwrite", "--no-progress"],
             (layout.scores,), f"check that {artifact} loads: onnxpress score --help",
             needs=("export-classifier",)),
    ]


def translator_steps(layout: DemoLayout, data: Sequence[str], preset: str = "demo",
                     export_args: Sequence[str] = ()) -> list[Step]:
    """Train the translator (`preset`), export it (gate options in `export_args`), translate
    `EXAMPLE_SENTENCES`, plot the attention of the first one."""
    mt, artifact = layout.translator_run, layout.translator_artifact
    return [
        Step("train-translator", f"train a GRU + Bahdanau attention De->En model ({preset} preset)",
             ["train", "translator", *data, "--preset", preset, "--out", str(mt)],
             (mt / "training.json",), f"check the Multi30k data (--data DIR); or delete {mt} to start over"),
        Step("export-translator", "export encoder + decoder-step ONNX (fp32, int8)",
             ["export", "translator", str(mt), "--out", str(artifact), "--variants", "fp32,int8", *data,
              "--eval-rows", "200", "--overwrite", *export_args],
             (artifact / "manifest.json",), "if a variant was refused, its reason is above",
             needs=("train-translator",)),
        translate_step(layout),
        Step("attention-plot", "attention of the first sentence as a heatmap",
             ["attention-plot", EXAMPLE_SENTENCES[0], "--model", str(mt), "--out", str(layout.attention_png)],
             (layout.attention_png,), "matplotlib must be installed: pip install \"onnxpress[train]\"",
             needs=("train-translator",)),
    ]


def translate_step(layout: DemoLayout) -> Step:
    """Translate the example sentences (written by `write_example_sentences`) with the runtime, beam 4."""
    artifact = layout.translator_artifact
    return Step("translate", "translate with the torch-free runtime (beam 4)",
                ["translate", str(artifact), "--input", str(layout.sentences_source),
                 "--output", str(layout.sentences_output), "--beam-size", "4", "--overwrite", "--no-progress"],
                (layout.sentences_output,), f"check that {artifact} has a servable variant",
                needs=("export-translator",))


def write_example_sentences(layout: DemoLayout) -> None:
    layout.sentences_source.parent.mkdir(parents=True, exist_ok=True)
    layout.sentences_source.write_text("\n".join(EXAMPLE_SENTENCES) + "\n", encoding="utf-8")


def bench_steps(layout: DemoLayout, quick: QuickBench, test_csv: Path, threads: int,
                translator_data: str | None) -> list[Step]:
    """The side-by-side measurements; the translator's only when `translator_data` is given."""
    steps = [Step("bench-classifier", "side by side: onnxpress int8 vs PyTorch eager and peers (~2 min)",
                  quick.classifier_argv(layout.classifier_artifact, layout.classifier_run, test_csv,
                                        layout.classifier_bench, threads),
                  (layout.classifier_bench / "results.json",),
                  "a contender that fails names itself above; rerun with --skip-bench to finish without it",
                  needs=("export-classifier",))]
    if translator_data is not None:
        steps.append(Step("bench-translator", "translator: PyTorch on the same search vs onnxpress int8",
                          quick.translator_argv(layout.translator_artifact, layout.translator_run,
                                                translator_data, layout.translator_bench, threads),
                          (layout.translator_bench / "results.json",), "rerun with --skip-bench",
                          needs=("export-translator",)))
    return steps


def build_report(layout: DemoLayout, test_csv: Path, records: list[StepRecord]) -> dict[str, Path]:
    """REPORT.md + REPORT.html from whatever the steps left in `layout.root`."""
    from onnxpress.demo import sections
    from onnxpress.demo.report import Report, write_report

    commands = {r.name: r.command for r in records}

    def cmds(*names: str) -> list[str]:
        return [commands[n] for n in names if n in commands]

    layout.figures.mkdir(parents=True, exist_ok=True)
    built = [
        sections.summary_section(layout),
        sections.training_section(layout, cmds("train-classifier")),
        sections.export_section(layout, cmds("export-classifier")),
        sections.scoring_section(layout, test_csv, cmds("score")),
        sections.speed_section(layout, cmds("bench-classifier")),
        sections.translator_section(layout, cmds("train-translator", "export-translator", "translate",
                                                 "attention-plot", "bench-translator")),
        sections.steps_section([r.to_dict() for r in records]),
        sections.next_section(layout),
    ]
    report = Report("onnxpress demo: train, export, score, measure", [s for s in built if s is not None])
    return write_report(report, layout.root)
