"""The classifier comparison: contenders side by side, section by section, into one results dict.

Sections (each optional): roofline, latency (end-to-end and model-only, per batch size,
interleaved), throughput over the whole test set (each contender batching its own way), and
cold start + peak RSS (one fresh process per contender). `report.py` turns the dict into
results.json, a Markdown table and PNG plots.

`bench_config.py` holds the settings, `contender_selection.py` picks the contenders and
`sections/` measures; this module runs them in order.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from onnxpress.errors import UserError

from onnxpress.benchmarks import harness
from onnxpress.benchmarks.bench_config import DEFAULT_PEERS, MODES, PEER_CHOICES, SCHEMA, BenchConfig
from onnxpress.benchmarks.contender_selection import (
    PEER_MODULES, build_contenders, missing_modules, resolve_checkpoint,
)
from onnxpress.benchmarks.contenders import Contender
from onnxpress.benchmarks.sections.cold_start import cold_start_section
from onnxpress.benchmarks.sections.common import write_lines
from onnxpress.benchmarks.sections.latency import latency_section
from onnxpress.benchmarks.sections.throughput import headline, throughput_section
from onnxpress.benchmarks.texts import SharedTokenizer, load_texts, synthetic_texts

__all__ = [  # the names this module exported before the split stay importable from here
    "DEFAULT_PEERS", "MODES", "PEER_CHOICES", "PEER_MODULES", "SCHEMA", "BenchConfig", "build_contenders",
    "cold_start_section", "headline", "latency_section", "missing_modules", "model_dims", "resolve_checkpoint",
    "run_classifier_bench", "throughput_section", "tokenization_check", "write_lines",
]


def log(msg: str) -> None:
    """One timestamped progress line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def model_dims(checkpoint: Path | None, artifact_root: Path, manifest: Any) -> dict[str, int] | None:
    """Encoder dimensions for the op counts: checkpoint config, artifact config, else the manifest."""
    from onnxpress.benchmarks.roofline import encoder_config

    for path in ([checkpoint / "config.json"] if checkpoint else []) + [artifact_root / "config.json"]:
        if path.is_file():
            dims = encoder_config(json.loads(path.read_text()))
            if dims:
                return dims
    return encoder_config((manifest.extra or {}).get("model_config", {}))


def run_classifier_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Build, check and load the contenders, run the chosen sections; the results dict for `report.py`."""
    from onnxpress.runtime.artifact import Artifact

    t_begin = time.perf_counter()
    artifact = Artifact.open(cfg.artifact)
    manifest = artifact.manifest
    if manifest.task != "text-classification":
        raise UserError(f"{cfg.artifact} is a {manifest.task} artifact; run_classifier_bench needs "
                        "text-classification (`onnxpress bench` sends translation artifacts to translation.py)")
    bad = [b for b in cfg.batch_sizes if b < 1]
    if bad or not cfg.batch_sizes:
        raise UserError(f"batch sizes must be positive integers (got {cfg.batch_sizes})")
    if cfg.threads < 1:
        raise UserError(f"--threads must be >= 1 (got {cfg.threads})")
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    warnings_out: list[str] = []
    env = harness.capture_environment()
    env["load_average_start"] = env.pop("load_average_1_5_15")

    textset = load_texts(cfg.data)
    tok_name = manifest.tokenizers.get("text")
    if not tok_name:
        raise UserError(f"manifest of {cfg.artifact} names no 'text' tokenizer")
    tokenizer_json = artifact.root / tok_name
    shared = SharedTokenizer(tokenizer_json, manifest.max_length, [t.name for t in manifest.inputs])
    if cfg.synthetic_length:
        pool = synthetic_texts(tokenizer_json, cfg.synthetic_length, 256, cfg.seed)
    else:
        pool = textset.texts
    lengths = shared.lengths(textset.texts)
    data_info = {
        "source": textset.source, "texts": len(textset), "labelled": textset.labels is not None,
        "tokens_mean": float(lengths.mean()), "tokens_p50": float(np.percentile(lengths, 50)),
        "tokens_p90": float(np.percentile(lengths, 90)), "tokens_max": int(lengths.max()),
        "truncated_at": manifest.max_length,
        "latency_inputs": (f"synthetic, {cfg.synthetic_length} tokens each" if cfg.synthetic_length
                           else "real texts sampled at random (real length distribution)"),
    }

    contenders = build_contenders(cfg, artifact)
    checkpoint = next((getattr(c, "checkpoint", None) for c in contenders if hasattr(c, "checkpoint")), None)
    dims = model_dims(checkpoint, artifact.root, manifest)
    skipped: dict[str, str] = {}
    if any(c.name == "openvino-int8" for c in contenders):
        from onnxpress.benchmarks.openvino_contender import write_calibration_texts

        data_info["calibration"] = write_calibration_texts(Path(cfg.out) / "cache" / "calibration_texts.txt",
                                                           textset.texts)
    for c in list(contenders):
        why = missing_modules(c.name)
        t0 = time.perf_counter()
        try:
            if not why:
                c.prepare(Path(cfg.out) / "cache")
        except Exception as exc:  # noqa: BLE001 - a peer's own converter failing is reported, not fatal
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        if why:
            skipped[c.name] = why
            contenders.remove(c)
            log(f"skipped {c.name}: {why}")
        elif time.perf_counter() - t0 > 0.5:
            log(f"prepared {c.name} in {time.perf_counter() - t0:.1f}s")
    for c in contenders:
        t0 = time.perf_counter()
        c.load(cfg.threads)
        c.load_seconds = time.perf_counter() - t0
        log(f"loaded {c.name} in {c.load_seconds:.2f}s")
    checks: dict[str, Any] = {}
    checks["threads_before"] = {c.name: c.threads() for c in contenders}
    harness.assert_equal_threads(checks["threads_before"], cfg.threads)

    reference = contenders[0].name
    label_sets = {c.name: sorted(c.labels()) for c in contenders}
    if len({tuple(v) for v in label_sets.values()}) != 1:
        raise harness.HarnessError(f"contenders disagree on the label set: {label_sets}")
    model_labels = contenders[0].labels()
    label_map: Callable[[str], str] = lambda p: p  # noqa: E731
    if textset.labels and not set(textset.labels) <= set(model_labels):
        # gold names differ from the model's (e.g. LABEL_0): compare by position in the data's class list
        gold_names = sorted(set(textset.labels), key=textset.labels.index)
        index = {name: i for i, name in enumerate(model_labels)}
        label_map = lambda p: gold_names[index[p]] if index[p] < len(gold_names) else p  # noqa: E731
        warnings_out.append("gold label names differ from the model's; accuracy compares by label position")
    checks["labels"] = model_labels
    checks["tokenization_identical"] = tokenization_check(contenders, shared, textset.texts[:500])

    roof = None
    if cfg.roofline and cfg.device != "cpu":
        warnings_out.append("roofline skipped: it measures CPU GEMMs, the contenders run on " + cfg.device)
    elif cfg.roofline:
        from onnxpress.benchmarks.roofline import bert_gemm_shapes, measure_roof

        log("roofline: measuring GEMM throughput")
        shapes = bert_gemm_shapes(dims["hidden"], dims["intermediate"]) if dims else None
        roof = measure_roof(cfg.threads, shapes, time_budget_s=cfg.roofline_budget_s)

    latency = []
    if cfg.modes and cfg.batch_sizes and cfg.latency_budget_s > 0:
        log(f"latency: {len(cfg.modes)} mode(s) x {len(cfg.batch_sizes)} batch size(s), "
            f"~{cfg.latency_budget_s:.0f}s budget")
        latency = latency_section(contenders, pool, shared, cfg, dims, roof, reference, warnings_out)
    checks["threads_after"] = {c.name: c.threads() for c in contenders}
    harness.assert_equal_threads(checks["threads_after"], cfg.threads)
    described = []
    for c in contenders:  # free this process before the fresh-process sections
        described.append({**c.describe(), "load_s": c.load_seconds})
        c.close()
    throughput = None
    if cfg.throughput_texts != 0:
        subset = textset.head(cfg.throughput_texts)
        log(f"throughput: {len(subset)} texts per contender, each in its own process")
        throughput = throughput_section(contenders, subset, shared, cfg, reference, label_map, warnings_out,
                                        dims, roof)
        checks["threads_isolated_runs"] = throughput.pop("threads")
        harness.assert_equal_threads(checks["threads_isolated_runs"], cfg.threads)
    checks["threads_equal"] = True
    cold = None
    if cfg.cold_start:
        log("cold start: one fresh process per contender and run")
        cold = cold_start_section(contenders, textset.texts, cfg, warnings_out)
    try:
        env["load_average_end"] = list(os.getloadavg())
    except OSError:
        pass
    return {
        "schema": SCHEMA, "task": manifest.task, "artifact": str(cfg.artifact), "config": cfg.to_dict(),
        "environment": env, "data": data_info, "reference": reference, "contenders": described,
        "skipped": skipped,
        "model_dims": dims, "checks": checks, "roofline": roof, "latency": latency,
        "throughput": throughput, "cold_start": cold, "warnings": warnings_out,
        "duration_s": time.perf_counter() - t_begin,
    }


def tokenization_check(contenders: list[Contender], shared: SharedTokenizer, texts: Sequence[str]) -> dict[str, Any]:
    """Fraction of texts each HF-tokenizing contender encodes to exactly the runtime's token ids."""
    enc = shared.tok.encode(list(texts), with_type_ids=False)
    ours = [enc.ids[enc.offsets[i]:enc.offsets[i + 1]].tolist() for i in range(len(enc))]
    out = {}
    for c in contenders:
        tok = getattr(c, "tokenizer", None)
        if tok is None or not callable(tok):
            continue
        theirs = tok(list(texts), truncation=True, max_length=shared.tok.max_length)["input_ids"]
        out[c.name] = float(np.mean([a == list(b) for a, b in zip(ours, theirs)])) if texts else None
    return out
