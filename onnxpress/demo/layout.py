"""Where the demo writes what, under one folder (default `demo/`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from onnxpress.demo.report import FIGURES_DIR


@dataclass(frozen=True)
class DemoLayout:
    root: Path

    @property
    def classifier_run(self) -> Path:
        return self.root / "clf"

    @property
    def classifier_artifact(self) -> Path:
        return self.root / "artifacts" / "clf"

    @property
    def scores(self) -> Path:
        return self.root / "scores.parquet"

    @property
    def classifier_bench(self) -> Path:
        return self.root / "bench" / "clf"

    @property
    def translator_run(self) -> Path:
        return self.root / "mt"

    @property
    def translator_artifact(self) -> Path:
        return self.root / "artifacts" / "mt"

    @property
    def translator_bench(self) -> Path:
        return self.root / "bench" / "mt"

    @property
    def sentences_source(self) -> Path:
        return self.root / "sentences.de"

    @property
    def sentences_output(self) -> Path:
        return self.root / "sentences.en"

    @property
    def attention_png(self) -> Path:
        return self.root / "attention.png"

    @property
    def figures(self) -> Path:
        """The report's own figures (training curve, speed/memory chart) and copies of the others."""
        return self.root / FIGURES_DIR
