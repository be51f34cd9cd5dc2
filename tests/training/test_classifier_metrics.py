"""Accuracy, F1 and the confusion matrix files."""
from __future__ import annotations

import json

import pytest

from onnxpress.training.metrics import classification_report, confusion_matrix, save_confusion_matrix


def test_report_on_a_hand_checked_example():
    labels = [0, 0, 0, 1, 1, 2]
    preds = [0, 0, 1, 1, 2, 2]
    r = classification_report(labels, preds, ["a", "b", "c"])
    assert r["n"] == 6
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    a, b, c = (r["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"], a["support"]) == (1.0, pytest.approx(2 / 3), 3)
    assert a["f1"] == pytest.approx(0.8)
    assert b["f1"] == pytest.approx(0.5) and c["f1"] == pytest.approx(2 / 3)
    assert r["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    json.dumps(r)  # plain types only


def test_class_never_predicted_or_absent_has_zero_f1():
    r = classification_report([0, 0, 1], [0, 0, 0], ["a", "b", "c"])
    assert r["per_class"]["b"]["f1"] == 0.0 and r["per_class"]["c"]["support"] == 0
    assert r["macro_f1"] == pytest.approx((0.8 + 0 + 0) / 3)


def test_confusion_matrix_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0], 2)


def test_save_confusion_matrix_writes_json_and_png(tmp_path):
    r = classification_report([0, 1, 1, 2], [0, 1, 2, 2], ["World", "Sports", "Sci/Tech"])
    json_path, png_path = save_confusion_matrix(r, tmp_path / "out")
    saved = json.loads(json_path.read_text())
    assert saved["labels"] == ["World", "Sports", "Sci/Tech"] and saved["matrix"] == r["confusion_matrix"]
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png_path.stat().st_size > 5000
