"""Classifier validation: logits of PyTorch and of each ONNX variant (run by the runtime's Engine) on real texts.

Texts are tokenized once with the artifact's own `tokenizers.Tokenizer` (what the runtime
uses), grouped into length-sorted batches under a token budget, and fed identically to
PyTorch and to every ONNX variant. From the logits we get the parity figures (max abs
logit difference, argmax agreement) and test-set accuracy; `export.gate.gate` turns them into a verdict.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer


@dataclass
class Batch:
    rows: np.ndarray  # positions of these texts in the original order
    feeds: dict[str, np.ndarray]  # input name -> int64 [batch, longest]


def encode(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to `max_length` (special tokens included), unpadded."""
    tok = Tokenizer.from_str(tokenizer.to_str())  # don't change the caller's settings
    tok.no_padding()
    tok.enable_truncation(max_length)
    return [enc.ids for enc in tok.encode_batch(list(texts))]


def make_batches(
    ids: Sequence[Sequence[int]],
    input_names: Sequence[str],
    pad_id: int,
    max_batch: int = 64,
    max_tokens: int = 4096,
    pad_to: int | None = None,
) -> list[Batch]:
    """Length-sorted batches, right-padded to their longest row (or to `pad_to`)."""
    order = np.argsort([len(x) for x in ids], kind="stable")
    batches, start = [], 0
    while start < len(order):
        end = start + 1
        while end < len(order) and end - start < max_batch:
            longest = len(ids[order[end]])  # sorted ascending: the newcomer is the longest
            if (end - start + 1) * longest > max_tokens:
                break
            end += 1
        rows = order[start:end]
        width = pad_to or max(len(ids[i]) for i in rows)
        input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, i in enumerate(rows):
            input_ids[r, : len(ids[i])] = ids[i]
            mask[r, : len(ids[i])] = 1
        values = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        batches.append(Batch(rows=rows, feeds={n: values[n] for n in input_names}))
        start = end
    return batches


def _progress(batches: list[Batch], desc: str | None) -> Any:
    if desc is None:
        return batches
    from tqdm import tqdm

    return tqdm(batches, desc=desc, unit="batch", leave=False)


def torch_logits(model: Any, batches: list[Batch], desc: str | None = None) -> np.ndarray:
    """Reference logits of the PyTorch model, in the original text order."""
    import torch

    out: np.ndarray | None = None
    with torch.inference_mode():
        for batch in _progress(batches, desc):
            logits = model(**{k: torch.from_numpy(v) for k, v in batch.feeds.items()}).logits.float().numpy()
            if out is None:
                out = np.empty((sum(len(b.rows) for b in batches), logits.shape[1]), np.float32)
            out[batch.rows] = logits
    assert out is not None
    return out


def onnx_logits(path: str | Path, batches: list[Batch], threads: int | None = None,
                desc: str | None = None) -> np.ndarray:
    """Logits of an ONNX model run by the runtime's own `Engine` on CPU, in the original text order.

    Any variant runs here, GPU-only ones (fp16) included: same graph, same numbers, slower.
    """
    from onnxpress.runtime.engine import Engine, EngineConfig

    engine = Engine(path, EngineConfig(device="cpu", threads=threads))
    index = engine.output_names.index("logits")
    out: np.ndarray | None = None
    for batch in _progress(batches, desc):
        logits = engine.run(batch.feeds)[index].astype(np.float32)
        if out is None:
            out = np.empty((sum(len(b.rows) for b in batches), logits.shape[1]), np.float32)
        out[batch.rows] = logits
    assert out is not None
    return out


def compare(reference: np.ndarray, logits: np.ndarray, labels: Sequence[int] | None = None) -> dict[str, Any]:
    """Parity of `logits` with `reference`, and accuracy on `labels` if given."""
    diff = np.abs(logits.astype(np.float64) - reference.astype(np.float64))
    result: dict[str, Any] = {
        "rows": int(len(logits)),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "argmax_agreement": float((logits.argmax(1) == reference.argmax(1)).mean()) if len(logits) else 1.0,
    }
    if labels is not None:
        result["accuracy"] = accuracy(logits, labels)
    return result


def accuracy(logits: np.ndarray, labels: Sequence[int]) -> float:
    """Share of rows whose argmax is the label."""
    return float((logits.argmax(1) == np.asarray(labels)).mean()) if len(labels) else 0.0


def format_table(rows: list[dict[str, Any]]) -> str:
    """The table the user sees: variant, attempt, size, accuracy, drop, agreement, max diff, status."""
    header = ["variant", "attempt", "size MB", "accuracy", "drop pts", "agreement", "max |dlogit|", "status"]
    lines = [header]
    for r in rows:
        acc = r.get("accuracy")
        lines.append(
            [
                r["variant"],
                r.get("attempt", ""),
                f"{r['size'] / 1e6:.1f}" if r.get("size") is not None else "-",
                f"{acc * 100:.2f}%" if acc is not None else "-",
                f"{r['accuracy_drop_points']:+.2f}" if r.get("accuracy_drop_points") is not None else "-",
                f"{r['argmax_agreement'] * 100:.2f}%" if r.get("argmax_agreement") is not None else "-",
                f"{r['max_abs_diff']:.2e}" if r.get("max_abs_diff") is not None else "-",
                r["status"],
            ]
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
