"""The demo report's own figures: the training curve and the speed/memory bar chart (matplotlib, headless).

The confusion matrix, the attention heatmap and the bench's plots are drawn by the commands
that produce them; the report embeds their PNGs as they are.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

REFERENCE_COLOR, ONNXPRESS_COLOR, PEER_COLOR = "#9e9e9e", "#1f6fb2", "#e0a040"


def training_curve(history: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Loss and accuracy of the training batches against the step (from training.json's `history`)."""
    from matplotlib.figure import Figure

    steps = [h["step"] for h in history]
    fig = Figure(figsize=(7, 3.6), dpi=100)
    loss_ax = fig.add_subplot(1, 1, 1)
    loss_ax.plot(steps, [h["loss"] for h in history], color=ONNXPRESS_COLOR, marker=".", label="loss")
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("training loss", color=ONNXPRESS_COLOR)
    acc_ax = loss_ax.twinx()
    acc_ax.plot(steps, [h["acc"] for h in history], color=PEER_COLOR, marker=".", label="accuracy")
    acc_ax.set_ylabel("training accuracy", color=PEER_COLOR)
    acc_ax.set_ylim(0, 1)
    loss_ax.grid(True, alpha=0.3)
    loss_ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def _color(name: str, reference: str) -> str:
    if name == reference:
        return REFERENCE_COLOR
    return ONNXPRESS_COLOR if name.startswith("onnxpress") else PEER_COLOR


# (row key, axis label, higher is better)
SPEED_MEMORY_PANELS = (
    ("texts_per_s", "throughput, texts/s", True),
    ("p50_ms_batch1", "p50 latency, batch 1, ms", False),
    ("cold_start_s", "cold start, s", False),
    ("peak_rss_mib", "peak RSS, MiB", False),
)


def speed_memory_chart(rows: Sequence[dict[str, Any]], reference: str, path: Path, title: str) -> Path:
    """One panel per figure of `measure.headline` rows, one bar per contender, values written on the bars."""
    from matplotlib.figure import Figure

    panels = [p for p in SPEED_MEMORY_PANELS if any(r.get(p[0]) is not None for r in rows)]
    fig = Figure(figsize=(3.3 * max(len(panels), 1), 3.4 + 0.12 * len(rows)), dpi=100)
    names = [r["contender"] for r in rows]
    for i, (key, label, higher) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        values = [r.get(key) or 0.0 for r in rows]
        bars = ax.barh(range(len(rows)), values, color=[_color(n, reference) for n in names])
        ax.bar_label(bars, labels=[f"{v:.3g}" if v else "n/a" for v in values], fontsize=7, padding=2)
        ax.set_yticks(range(len(rows)), names if i == 0 else [""] * len(rows), fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{label}\n({'higher' if higher else 'lower'} is better)", fontsize=8)
        ax.margins(x=0.3)
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
