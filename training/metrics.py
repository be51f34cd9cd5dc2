"""Classification metrics: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix.

`classification_report` returns plain JSON-able dicts; `save_confusion_matrix` writes
`confusion_matrix.json` and a `confusion_matrix.png` plot (matplotlib, headless).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np


def confusion_matrix(labels: Sequence[int], preds: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class."""
    labels, preds = np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)
    if labels.shape != preds.shape:
        raise ValueError(f"{labels.shape[0]} labels but {preds.shape[0]} predictions")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, preds), 1)
    return matrix


def classification_report(labels: Sequence[int], preds: Sequence[int], label_names: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    matrix = confusion_matrix(labels, preds, len(label_names))
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(1)
    predicted = matrix.sum(0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    total = int(matrix.sum())
    return {
        "n": total,
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(label_names, precision, recall, f1, support)
        },
        "label_names": list(label_names),
        "confusion_matrix": matrix.tolist(),
    }


def save_confusion_matrix(report: dict, out_dir: str | Path, title: str = "Confusion matrix") -> tuple[Path, Path]:
    """Write `confusion_matrix.json` and `confusion_matrix.png` (rows: true, columns: predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names, matrix = report["label_names"], np.asarray(report["confusion_matrix"])
    json_path = out_dir / "confusion_matrix.json"
    json_path.write_text(json.dumps({"labels": names, "rows": "true", "columns": "predicted",
                                     "matrix": matrix.tolist()}, indent=2) + "\n")

    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 1.2 * len(names) + 1.8))
    row_sums = matrix.sum(1, keepdims=True).clip(min=1)
    ax.imshow(matrix / row_sums, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            share = matrix[i, j] / row_sums[i, 0]
            ax.text(j, i, f"{matrix[i, j]}\n{share:.1%}", ha="center", va="center", fontsize=8,
                    color="white" if share > 0.5 else "black")
    ax.set_title(f"{title}\naccuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}", fontsize=10)
    fig.tight_layout()
    png_path = out_dir / "confusion_matrix.png"
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return json_path, png_path
