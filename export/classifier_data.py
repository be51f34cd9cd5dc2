"""The classifier exporter's AG News data: a seeded evaluation sample, labels mapped to the model's, calibration."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onnxpress.errors import UserError

if TYPE_CHECKING:
    from onnxpress.export.classifier import ClassifierExportResult, ExportOptions


@dataclass
class AgNewsSample:
    """Which AG News rows the export evaluates and calibrates on."""

    data: str | None = None  # AG News dir or a data root; None: $ONNXPRESS_DATA, ../shared/data, ./data
    eval_rows: int | None = None  # a seeded random sample of the test split (None: all rows)
    calibration_size: int = 512  # training texts to calibrate int8 and int8-static on
    seed: int = 0

    def check(self) -> None:
        if self.eval_rows is not None and self.eval_rows < 1:
            raise UserError("--eval-rows must be at least 1")
        if self.calibration_size < 1:
            raise UserError("--calibration-size must be at least 1")


@dataclass
class EvaluationData:
    """Texts with labels as indices of the model's labels, calibration texts, and where they came from."""

    texts: list[str]
    labels: list[int]
    calibration_texts: list[str] = field(default_factory=list)
    description: dict[str, Any] = field(default_factory=dict)


def sample_rows(n_total: int, n: int | None, seed: int) -> list[int]:
    """Sorted indices of a seeded sample of `n` out of `n_total` rows (all rows if `n` is None or too big)."""
    import numpy as np

    if n is None or n >= n_total:
        return list(range(n_total))
    return sorted(np.random.default_rng(seed).choice(n_total, size=n, replace=False).tolist())


def label_mapping(data_labels: Sequence[str], model_labels: Sequence[str]) -> dict[int, int]:
    """Data label index -> model label index, by name when the names match, else by position."""
    if sorted(data_labels) == sorted(model_labels):
        return {i: list(model_labels).index(name) for i, name in enumerate(data_labels)}
    if len(data_labels) != len(model_labels):
        raise UserError(
            f"the model has {len(model_labels)} labels ({', '.join(model_labels)}) but the data has "
            f"{len(data_labels)} ({', '.join(data_labels)})"
        )
    return {i: i for i in range(len(data_labels))}


def ag_news_evaluation(sample: AgNewsSample, model_labels: Sequence[str], calibrate: bool) -> EvaluationData:
    """Read AG News and draw the evaluation (test) and, if `calibrate`, calibration (train) texts."""
    from onnxpress.training.ag_news import load_ag_news

    sample.check()
    train, test = load_ag_news(sample.data)
    label_index = label_mapping(test.label_names, model_labels)
    rows = sample_rows(len(test), sample.eval_rows, sample.seed)
    calibration = [train.texts[i] for i in sample_rows(len(train), sample.calibration_size, sample.seed)] \
        if calibrate else []
    description = {
        "dataset": "ag_news/test", "source": test.source, "sha256": test.sha256,
        "sample": "all rows" if len(rows) == len(test) else f"{len(rows)} rows, seed {sample.seed}",
        "calibration": f"{len(calibration)} training texts, seed {sample.seed}" if calibration else None,
    }
    return EvaluationData([test.texts[i] for i in rows], [label_index[test.labels[i]] for i in rows],
                          calibration, description)


def export_classifier_on_ag_news(checkpoint: str | Path, out: str | Path, options: ExportOptions,
                                 sample: AgNewsSample | None = None) -> ClassifierExportResult:
    """`export_classifier` evaluated (and calibrated) on AG News: what `onnxpress export classifier` runs."""
    from onnxpress.export.classifier import export_classifier, inspect_checkpoint, parse_variants
    from onnxpress.export.classifier_variants import needs_calibration

    options.check()  # fail fast, before reading data
    info = inspect_checkpoint(checkpoint)
    data = ag_news_evaluation(sample or AgNewsSample(), info.labels,
                              calibrate=needs_calibration(parse_variants(options.variants)))
    return export_classifier(checkpoint, out, eval_texts=data.texts, eval_labels=data.labels,
                             calibration_texts=data.calibration_texts, options=options,
                             data_description=data.description)
