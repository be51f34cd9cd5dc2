"""Choosing the classifier export's data: label mapping, seeded samples, AG News evaluation and calibration."""
from __future__ import annotations

import pytest

from export_fixtures import LABELS, write_ag_news
from onnxpress.errors import UserError
from onnxpress.export.classifier_data import AgNewsSample, ag_news_evaluation, label_mapping, sample_rows


def test_label_mapping_by_name_then_position():
    assert label_mapping(["b", "a"], ["a", "b"]) == {0: 1, 1: 0}
    assert label_mapping(["x", "y"], ["a", "b"]) == {0: 0, 1: 1}
    with pytest.raises(UserError, match="the model has 2 labels"):
        label_mapping(["x", "y", "z"], ["a", "b"])


def test_sample_rows_is_seeded_sorted_and_bounded():
    rows = sample_rows(100, 10, seed=3)
    assert rows == sorted(rows) and len(set(rows)) == 10 and rows == sample_rows(100, 10, seed=3)
    assert rows != sample_rows(100, 10, seed=4)
    assert sample_rows(5, None, 0) == sample_rows(5, 50, 0) == [0, 1, 2, 3, 4]


def test_ag_news_evaluation(tmp_path):
    data = write_ag_news(tmp_path)
    model_labels = list(reversed(LABELS))  # same names, other order: labels are remapped by name
    ev = ag_news_evaluation(AgNewsSample(data=str(data), eval_rows=20, calibration_size=8), model_labels, True)
    assert len(ev.texts) == len(ev.labels) == 20 and len(ev.calibration_texts) == 8
    full = ag_news_evaluation(AgNewsSample(data=str(data)), LABELS, calibrate=False)
    assert full.calibration_texts == [] and full.description["sample"] == "all rows"
    by_text = dict(zip(full.texts, full.labels))
    assert all(model_labels[y] == LABELS[by_text[t]] for t, y in zip(ev.texts, ev.labels))
    assert ev.description["sample"] == "20 rows, seed 0" and ev.description["sha256"]
    with pytest.raises(UserError, match="--eval-rows"):
        ag_news_evaluation(AgNewsSample(data=str(data), eval_rows=0), LABELS, False)
