"""Latency section: end-to-end and model-only, per batch size, contenders interleaved in one process."""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from onnxpress.benchmarks import harness
from onnxpress.benchmarks.bench_config import BenchConfig
from onnxpress.benchmarks.contenders import Contender, argmax_labels
from onnxpress.benchmarks.sections.common import progress
from onnxpress.benchmarks.texts import SharedTokenizer, sample_batches


def latency_section(contenders: list[Contender], pool: Sequence[str], shared: SharedTokenizer,
                    cfg: BenchConfig, dims: dict[str, int] | None, roof: dict[str, Any] | None,
                    reference: str, warnings_out: list[str]) -> list[dict[str, Any]]:
    """One row per (mode, batch size, contender): percentiles, rates, spread, ratio to `reference`."""
    from onnxpress.benchmarks.roofline import encoder_ops

    cells = [(m, b) for m in cfg.modes for b in cfg.batch_sizes]
    deadline = time.perf_counter() + cfg.latency_budget_s
    results = []
    for n_cell, (mode, bs) in enumerate(progress(cells, "latency", cfg.progress)):
        # what is left of the section's budget, shared by the cells still to run (a slow cell
        # that had to finish its minimum rounds is paid for by the later ones)
        per_cell = max(deadline - time.perf_counter(), 0.0) / (len(cells) - n_cell)
        # distinct inputs per cell: many at small batches (length distribution), few at large ones;
        # every input is timed at least twice so that repeat spread (noise) can be measured
        n_inputs = max(2, min(32, 128 // bs))
        batches = sample_batches(pool, bs, n_inputs, cfg.seed)
        token_batches = [shared.batch(b) for b in batches]
        real_tokens = [t.real_tokens for t in token_batches]
        if mode == "model":
            prepared = {c.name: [c.prepare_tokens(t) for t in token_batches] for c in contenders}
            calls: dict[str, Callable[[int], Any]] = {
                c.name: (lambda i, c=c: argmax_labels(c.run_tokens(prepared[c.name][i]), c.labels()))
                for c in contenders}
        else:
            calls = {c.name: (lambda i, c=c: c.predict_texts(batches[i])) for c in contenders}
        max_rounds = max(3 * n_inputs, 160 // bs)
        timed = harness.run_interleaved(
            calls, n_inputs, warmup=2 if bs <= 8 else 1, min_rounds=3, max_rounds=max_rounds,
            time_budget_s=per_cell, gap_s=cfg.gap_s, fit_inputs=True)
        ref = timed.get(reference)
        for c in contenders:
            t = timed[c.name]
            secs = t.seconds
            cell: dict[str, Any] = {
                "mode": mode, "batch_size": bs, "contender": c.name, **harness.percentiles(secs),
                "texts_per_s": bs * len(secs) / sum(secs),
                "tokens_per_s": sum(real_tokens[k] for k in t.keys) / sum(secs),
                "distinct_inputs": len(set(t.keys)),
                "mean_padded_length": float(np.mean([token_batches[k].length for k in t.keys])),
                "samples_ms": [round(s * 1e3, 4) for s in secs],
            }
            cell["spread"] = harness.repeat_spread(secs, t.keys)
            msg = harness.warn_spread(f"latency {mode} b{bs} {c.name}", cell["spread"])
            if msg:
                warnings_out.append(msg)
            if ref is not None:
                cell["x_vs_reference"] = harness.paired_ratio(ref.seconds, secs)
                cell["agreement_with_reference"] = harness.agreement(ref.outputs, t.outputs)
            if mode == "model" and dims:
                ops = [encoder_ops(dims, bs, token_batches[k].length) for k in t.keys]
                gops = float(np.median([o / s for o, s in zip(ops, secs)]) / 1e9)
                cell["achieved_gops"] = gops
                if roof and c.precision in roof:
                    cell["roof_fraction"] = gops / roof[c.precision]["gops"]
            results.append(cell)
    return results
