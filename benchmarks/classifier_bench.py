"""The classifier comparison: contenders side by side, section by section, into one results dict.

Sections (each optional): roofline, latency (end-to-end and model-only, per batch size,
interleaved), throughput over the whole test set (each contender batching its own way), and
cold start + peak RSS (one fresh process per contender). `report.py` turns the dict into
results.json, a Markdown table and PNG plots.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from onnxpress.errors import UserError

from onnxpress.benchmarks import harness
from onnxpress.benchmarks.contenders import (
    Contender, Onnxpress, OptimumORT, TorchCompiled, TorchEager, argmax_labels,
)
from onnxpress.benchmarks.texts import SharedTokenizer, TextSet, load_texts, sample_batches, synthetic_texts

SCHEMA = "onnxpress-bench/1"
MODES = ("e2e", "model")
PEER_CHOICES = ("torch", "torch-sorted", "torch-compile", "optimum", "optimum-fp32", "optimum-int8",
                "ctranslate2", "openvino")
DEFAULT_PEERS = ["torch", "torch-sorted", "optimum-int8", "ctranslate2", "openvino"]
PEER_MODULES = {"optimum-fp32": ("optimum.onnxruntime",), "optimum-int8": ("optimum.onnxruntime",),
                "ctranslate2-int8": ("ctranslate2",), "openvino-int8": ("openvino", "nncf")}


@dataclass
class BenchConfig:
    artifact: Path
    out: Path
    checkpoint: Path | None = None
    against: list[str] = field(default_factory=lambda: list(DEFAULT_PEERS))
    variants: list[str] | None = None  # None: every servable variant for the device
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32, 128])
    data: str = "ag_news"
    synthetic_length: int | None = None  # fixed-length synthetic inputs for the latency section
    threads: int = 2
    device: str = "cpu"
    modes: list[str] = field(default_factory=lambda: list(MODES))
    latency_budget_s: float = 180.0  # whole latency section, split over its cells
    throughput_texts: int | None = None  # None: all texts of the data set
    throughput_rounds: int = 2  # fresh-process runs per contender over the whole text set
    invariance_texts: int = 300  # batched vs one at a time, first round
    throughput_budget_s: float | None = 600.0  # stop after the chunk round that crosses it
    cold_start: bool = True
    cold_start_runs: int = 2
    cold_start_workload: int = 256
    roofline: bool = True
    roofline_budget_s: float = 1.5  # per GEMM shape
    gap_s: float = 0.002
    seed: int = 0
    progress: bool = True
    beams: list[int] = field(default_factory=lambda: [1, 4])  # translation artifacts
    rounds: int = 2  # translation artifacts: whole-test-set rounds per contender

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- building contenders ----------------------------------------------------------------------

def resolve_checkpoint(cfg: BenchConfig, manifest: Any) -> Path | None:
    """--checkpoint, else the source checkpoint the artifact's manifest records (if it exists)."""
    if cfg.checkpoint is not None:
        if not (Path(cfg.checkpoint) / "config.json").is_file():
            raise UserError(f"--checkpoint {cfg.checkpoint} is not a model checkpoint (no config.json)")
        return Path(cfg.checkpoint)
    extra = manifest.extra or {}
    for key in ("source_checkpoint", "checkpoint", "source"):
        value = extra.get(key)
        if isinstance(value, dict):
            value = value.get("path")
        if isinstance(value, str):
            path = Path(value)
            if not path.is_absolute():
                path = (Path(cfg.artifact) / path) if (Path(cfg.artifact) / path).is_dir() else Path.cwd() / path
            if (path / "config.json").is_file():
                return path
    return None


def build_contenders(cfg: BenchConfig, artifact: Any) -> list[Contender]:
    manifest = artifact.manifest
    peers = [p.strip() for p in cfg.against if p.strip()]
    unknown = [p for p in peers if p not in PEER_CHOICES]
    if unknown:
        raise UserError(f"unknown --against {', '.join(unknown)} (choose from {', '.join(PEER_CHOICES)})")
    checkpoint = resolve_checkpoint(cfg, manifest) if peers else None
    if peers and checkpoint is None:
        raise UserError(f"--against {','.join(peers)} needs the training checkpoint: pass --checkpoint DIR "
                        "(the artifact's manifest does not record where it came from)")
    if peers and cfg.device != "cpu":
        raise UserError("PyTorch/Optimum contenders are CPU-only in this harness; use --device cpu or --against ''")
    contenders: list[Contender] = []
    ml, art = manifest.max_length, cfg.artifact
    cache = Path(cfg.out) / "cache"
    if "torch" in peers:
        contenders.append(TorchEager(checkpoint, ml, art))
    if "torch-sorted" in peers:
        contenders.append(TorchEager(checkpoint, ml, art, sort=True))
    if "torch-compile" in peers:
        contenders.append(TorchCompiled(checkpoint, ml, art, sort=True))
    if "optimum" in peers or "optimum-fp32" in peers:
        contenders.append(OptimumORT(checkpoint, ml, cache, quantize=False, artifact=art))
    if "optimum" in peers or "optimum-int8" in peers:
        contenders.append(OptimumORT(checkpoint, ml, cache, quantize=True, artifact=art))
    if "ctranslate2" in peers:
        from onnxpress.benchmarks.ct2_contender import CTranslate2Int8

        contenders.append(CTranslate2Int8(checkpoint, ml, art, cache))
    if "openvino" in peers:
        from onnxpress.benchmarks.openvino_contender import OpenVINOInt8

        contenders.append(OpenVINOInt8(checkpoint, ml, art, cache))
    servable = [name for name, v in manifest.variants.items() if v.servable and cfg.device in v.devices]
    if cfg.variants:
        missing = [v for v in cfg.variants if v not in manifest.variants]
        if missing:
            raise UserError(f"artifact has no variant {', '.join(missing)} (it has: {', '.join(manifest.variants)})")
        rejected = [v for v in cfg.variants if not manifest.variants[v].servable]
        if rejected:
            raise UserError(f"variant(s) {', '.join(rejected)} were rejected at export and are not servable")
        chosen = list(cfg.variants)
    else:
        chosen = servable
    if not chosen:
        raise UserError(f"{cfg.artifact} has no servable variant for device {cfg.device!r}")
    contenders += [Onnxpress(art, v, cfg.device) for v in chosen]
    return contenders


def missing_modules(name: str) -> str | None:
    """Why peer `name` cannot run here (its optional package is not installed), or None."""
    import importlib.util

    absent = [m for m in PEER_MODULES.get(name, ()) if importlib.util.find_spec(m.split(".")[0]) is None
              or importlib.util.find_spec(m) is None]
    return f"not installed: {', '.join(absent)}" if absent else None


def model_dims(checkpoint: Path | None, artifact_root: Path, manifest: Any) -> dict[str, int] | None:
    from onnxpress.benchmarks.roofline import encoder_config

    for path in ([checkpoint / "config.json"] if checkpoint else []) + [artifact_root / "config.json"]:
        if path.is_file():
            dims = encoder_config(json.loads(path.read_text()))
            if dims:
                return dims
    return encoder_config((manifest.extra or {}).get("model_config", {}))


# -- sections ---------------------------------------------------------------------------------

def _iter(items: Sequence[Any], desc: str, enabled: bool) -> Any:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, file=sys.stderr, leave=False)


def latency_section(contenders: list[Contender], pool: Sequence[str], shared: SharedTokenizer,
                    cfg: BenchConfig, dims: dict[str, int] | None, roof: dict[str, Any] | None,
                    reference: str, warnings_out: list[str]) -> list[dict[str, Any]]:
    from onnxpress.benchmarks.roofline import encoder_ops

    cells = [(m, b) for m in cfg.modes for b in cfg.batch_sizes]
    deadline = time.perf_counter() + cfg.latency_budget_s
    results = []
    for n_cell, (mode, bs) in enumerate(_iter(cells, "latency", cfg.progress)):
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


def write_lines(path: Path, texts: Sequence[str]) -> Path:
    """One text per line (line breaks inside a text become spaces), for the child processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(" ".join(t.splitlines()) + "\n" for t in texts), encoding="utf-8")
    return path


def throughput_section(contenders: list[Contender], texts: TextSet, shared: SharedTokenizer,
                       cfg: BenchConfig, reference: str, label_map: Callable[[str], str],
                       warnings_out: list[str], dims: dict[str, int] | None = None,
                       roof: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every contender scores all texts its best way, each run in its own fresh process (no
    co-resident threads), rounds interleaved with the order rotated; the first round also
    checks batch invariance."""
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
        for j in _iter(range(len(contenders)), f"throughput round {r + 1}", cfg.progress):
            c = contenders[(j + r) % len(contenders)]
            runs[c.name].append(run_probe(c.spec, cfg.threads, first_file, stream=stream_file,
                                          invariance=cfg.invariance_texts if r == 0 else 0))
        rounds += 1
    out: dict[str, Any] = {"texts": n, "texts_available": n, "real_tokens": int(lengths.sum()), "rounds": rounds,
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
                    "round_texts_per_s": [n / s for s in secs], "peak_rss_mib": max(x["peak_rss_stream_mib"] for x in ok),
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


def cold_start_section(contenders: list[Contender], texts: Sequence[str], cfg: BenchConfig,
                       warnings_out: list[str]) -> dict[str, Any]:
    from onnxpress.benchmarks.probe import run_probe

    cache = Path(cfg.out) / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    texts_file = write_lines(cache / "probe_texts.txt", texts[:cfg.cold_start_workload + 1])
    probed = [c for c in contenders if not isinstance(c, TorchCompiled)]
    skipped = {c.name: "torch.compile recompiles in every new process (its compile time is reported instead)"
               for c in contenders if isinstance(c, TorchCompiled)}
    runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in probed}
    steps = [(r, j) for r in range(cfg.cold_start_runs) for j in range(len(probed))]
    for r, j in _iter(steps, "cold start", cfg.progress):
        c = probed[(j + r) % len(probed)]
        runs[c.name].append(run_probe(c.spec, cfg.threads, texts_file, workload=cfg.cold_start_workload))
    out: dict[str, Any] = {"runs_per_contender": cfg.cold_start_runs, "workload_texts": cfg.cold_start_workload,
                           "contenders": [], "skipped": skipped}
    for c in probed:
        ok = [r for r in runs[c.name] if "error" not in r]
        errors = [r["error"] for r in runs[c.name] if "error" in r]
        row: dict[str, Any] = {"contender": c.name, "runs": len(ok)}
        if errors:
            row["errors"] = errors
            warnings_out.append(f"cold start {c.name}: {errors[0]}")
        if ok:
            for key in ("cold_start_s", "interpreter_s", "import_s", "load_s", "first_prediction_s",
                        "rss_after_first_mib", "peak_rss_mib"):
                row[key] = float(np.median([r[key] for r in ok]))
            row["cold_start_all_s"] = [r["cold_start_s"] for r in ok]
            row["torch_imported"] = any(r["torch_imported"] for r in ok)
            row["modules_loaded"] = ok[0]["modules_loaded"]
            row["threads"] = ok[0]["threads"]
        out["contenders"].append(row)
    return out


# -- the whole run ----------------------------------------------------------------------------

def run_classifier_bench(cfg: BenchConfig) -> dict[str, Any]:
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
