"""Throughput section: every contender scores the whole text set in fresh processes; the headline."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from onnxpress.benchmarks import harness
from onnxpress.benchmarks.bench_config import BenchConfig
from onnxpress.benchmarks.contenders import Contender
from onnxpress.benchmarks.sections.common import progress, write_lines
from onnxpress.benchmarks.texts import SharedTokenizer, TextSet


def throughput_section(contenders: list[Contender], texts: TextSet, shared: SharedTokenizer,
                       cfg: BenchConfig, reference: str, label_map: Callable[[str], str],
                       warnings_out: list[str], dims: dict[str, int] | None = None,
                       roof: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every contender scores all texts its best way, each run in its own fresh process (no
    co-resident threads), rounds interleaved with the order rotated; the first round also
    checks batch invariance. With `cfg.first_pass`, each process scores the texts once before the
    timed pass (shape-specialized kernels built on first sight are then not in the headline); that
    first pass is reported beside it."""
    from onnxpress.benchmarks.probe import run_probe
    from onnxpress.benchmarks.roofline import encoder_ops

    n = len(texts)
    cache = Path(cfg.out) / "cache"
    stream_file = write_lines(cache / "stream_texts.txt", texts.texts)
    first_file = write_lines(cache / "first_text.txt", texts.texts[:1])
    lengths = shared.lengths(texts.texts)
    useful_ops = sum(encoder_ops(dims, 1, int(k)) for k in lengths) if dims else None
    runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in contenders}
    deadline = time.perf_counter() + (cfg.throughput_budget_s or float("inf"))
    rounds = 0
    for r in range(max(1, cfg.throughput_rounds)):
        if r > 0 and time.perf_counter() > deadline:
            warnings_out.append(f"throughput: time budget {cfg.throughput_budget_s:.0f}s spent after {r} round(s)")
            break
        for j in progress(range(len(contenders)), f"throughput round {r + 1}", cfg.progress):
            c = contenders[(j + r) % len(contenders)]
            runs[c.name].append(run_probe(c.spec, cfg.threads, first_file, stream=stream_file,
                                          invariance=cfg.invariance_texts if r == 0 else 0,
                                          first_pass=cfg.first_pass))
        rounds += 1
    out: dict[str, Any] = {"texts": n, "texts_available": n, "real_tokens": int(lengths.sum()), "rounds": rounds,
                           "first_pass": cfg.first_pass,
                           "isolated": "one fresh process per contender and round", "contenders": []}
    ref_labels = next((x["stream_labels"] for x in runs.get(reference, []) if "stream_labels" in x), None)
    ref_secs = [x["stream_s"] for x in runs.get(reference, []) if "stream_s" in x]
    for c in contenders:
        ok = [x for x in runs[c.name] if "stream_s" in x]
        row: dict[str, Any] = {"contender": c.name, "batching": c.batching(), "precision": c.precision}
        errors = [x["error"] for x in runs[c.name] if "error" in x]
        if errors:
            row["errors"] = errors
            warnings_out.append(f"throughput {c.name}: {errors[0]}")
        if not ok:
            out["contenders"].append(row)
            continue
        secs = [x["stream_s"] for x in ok]
        best = float(np.median(secs))
        row.update({"seconds": secs, "texts_per_s": n / best, "tokens_per_s": int(lengths.sum()) / best,
                    "round_texts_per_s": [n / s for s in secs],
                    "first_pass_texts_per_s": (n / float(np.median([x["first_pass_s"] for x in ok]))
                                               if all("first_pass_s" in x for x in ok) else None),
                    "peak_rss_mib": max(x["peak_rss_stream_mib"] for x in ok),
                    "gpu_memory_mib": max((x["gpu_memory_mib"] for x in ok if x.get("gpu_memory_mib") is not None),
                                          default=None),
                    "cold_start_s": float(np.median([x["cold_start_s"] for x in ok])),
                    "invariance": next((x["invariance"] for x in ok if "invariance" in x), None)})
        row["spread"] = harness.chunk_spread(row["round_texts_per_s"])
        msg = harness.warn_spread(f"throughput {c.name}", row["spread"])
        if msg:
            warnings_out.append(msg)
        labels = ok[0]["stream_labels"]
        if texts.labels:
            row["accuracy"] = float(np.mean([label_map(p) == g for p, g in zip(labels, texts.labels)]))
        if ref_labels is not None:
            row["agreement_with_reference"] = float(np.mean([a == b for a, b in zip(ref_labels, labels)]))
        if ref_secs:
            row["x_vs_reference"] = float(np.median(ref_secs)) / best
        if useful_ops is not None:
            row["useful_gops"] = useful_ops / best / 1e9
            if roof and c.precision in roof:
                row["roof_fraction"] = row["useful_gops"] / roof[c.precision]["gops"]
        out["contenders"].append(row)
    out["headline"] = headline(out["contenders"], contenders)
    out["threads"] = {name: x["threads"] for name, rs in runs.items() for x in rs[:1] if "threads" in x}
    return out


def headline(rows: list[dict[str, Any]], contenders: list[Contender]) -> dict[str, Any]:
    """onnxpress's fastest variant against the fastest peer, and against the seed's batching."""
    kinds = {c.name: c.spec["kind"] for c in contenders}
    speed = {r["contender"]: r["texts_per_s"] for r in rows if "texts_per_s" in r}
    ours = {k: v for k, v in speed.items() if kinds[k] == "onnxpress"}
    peers = {k: v for k, v in speed.items() if kinds[k] != "onnxpress"}
    if not ours:
        return {}
    best = max(ours, key=ours.get)
    out: dict[str, Any] = {"onnxpress": best}
    if peers:
        peer = max(peers, key=peers.get)
        out.update(best_peer=peer, x_vs_best_peer=ours[best] / peers[peer])
    seed = next((c.name for c in contenders if kinds[c.name] == "torch" and not c.sorted_stream), None)
    if seed in speed:
        out.update(seed=seed, x_vs_seed=ours[best] / speed[seed])
    return out
