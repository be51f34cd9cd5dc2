"""Where the demo writes what, under one folder (default `demo/`)."""
from __future__ import annotations

from pathlib import Path

from onnxpress.demo.report import FIGURES_DIR


class DemoLayout:
    """The paths of every output of the demo, from its root folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.classifier_run = self.root / "clf"  # training checkpoint, training.json, confusion matrix
        self.classifier_artifact = self.root / "artifacts" / "clf"
        self.scores = self.root / "scores.parquet"
        self.classifier_bench = self.root / "bench" / "clf"
        self.translator_run = self.root / "mt"
        self.translator_artifact = self.root / "artifacts" / "mt"
        self.translator_bench = self.root / "bench" / "mt"
        self.sentences_source = self.root / "sentences.de"
        self.sentences_output = self.root / "sentences.en"
        self.attention_png = self.root / "attention.png"
        # the report's own figures (training curve, speed/memory chart) and copies of the others
        self.figures = self.root / FIGURES_DIR
