"""Attention heatmaps like Bahdanau et al. 2015, Fig. 3: source words across, output words down.

Only numpy and matplotlib (through `matplotlib.figure.Figure`, no pyplot state), so any part
of onnxpress that has an attention matrix and the token pieces can draw one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

WORD_START = "▁"


def _word_groups(pieces: list[str]) -> list[tuple[str, list[int]]]:
    """Group Metaspace pieces into words: a piece starting with "▁" (or a <special>) opens a word."""
    groups: list[tuple[str, list[int]]] = []
    for i, piece in enumerate(pieces):
        special = piece.startswith("<") and piece.endswith(">")
        if not groups or piece.startswith(WORD_START) or special or groups[-1][0].startswith("<"):
            groups.append((piece.lstrip(WORD_START) or piece, [i]))
        else:
            groups[-1] = (groups[-1][0] + piece, groups[-1][1] + [i])
    return groups


def merge_to_words(
    source: list[str], output: list[str], attention: np.ndarray
) -> tuple[list[str], list[str], np.ndarray]:
    """Word-level matrix: columns of one source word are summed (attention mass on the word),
    rows of one output word averaged (so every row still sums to 1)."""
    src_groups, out_groups = _word_groups(source), _word_groups(output)
    cols = np.stack([attention[:, idx].sum(1) for _, idx in src_groups], axis=1)
    rows = np.stack([cols[idx].mean(0) for _, idx in out_groups], axis=0)
    return [w for w, _ in src_groups], [w for w, _ in out_groups], rows


def render_attention(
    source: list[str],
    output: list[str],
    attention: np.ndarray,
    path: str | Path,
    words: bool = True,
    title: str | None = None,
) -> Path:
    """Write a PNG heatmap of `attention` [len(output), len(source)] (grayscale, white = 1)."""
    from matplotlib.figure import Figure

    attention = np.asarray(attention, dtype=np.float32)
    if attention.shape != (len(output), len(source)):
        raise ValueError(f"attention {attention.shape} does not match {len(output)} output x {len(source)} source tokens")
    if words:
        source, output, attention = merge_to_words(source, output, attention)
    else:
        source = [p.replace(WORD_START, "_") for p in source]
        output = [p.replace(WORD_START, "_") for p in output]
    width = max(4.0, 0.45 * len(source) + 1.5)
    height = max(3.0, 0.4 * len(output) + 1.5)
    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(attention, cmap="gray", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)), labels=source, rotation=90)
    ax.set_yticks(range(len(output)), labels=output)
    ax.xaxis.tick_top()
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
