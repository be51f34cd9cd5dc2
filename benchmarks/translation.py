"""`onnxpress bench` on a translation artifact: the translator contender set, harness checks added.

The contenders and their timing loop live in `translator_bench.py` (PyTorch modules and onnxpress
variants driven by the same search, each in its own process, intra-op and parallel batches,
greedy and beam 4, whole test set per round, rounds rotated, BLEU); this module plugs them into
the same command, environment capture, thread-budget assertion, spread warning and report files
as the classifier benchmark.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from onnxpress.errors import UserError

from onnxpress.benchmarks import harness

SCHEMA = "onnxpress-bench-translation/1"


def run_translation_bench(cfg: Any) -> dict[str, Any]:
    """`cfg` is a `classifier_bench.BenchConfig`; uses checkpoint, variants, threads, device (the
    onnxpress variants'; PyTorch's modules stay on CPU), throughput_texts, quick rounds."""
    from onnxpress.benchmarks.contender_selection import check_device
    from onnxpress.benchmarks.translator_bench import run_translator_bench
    from onnxpress.runtime.artifact import Artifact
    from onnxpress.runtime.variants import runs_on

    t0 = time.perf_counter()
    manifest = Artifact.open(cfg.artifact).manifest
    if cfg.checkpoint is None or not Path(cfg.checkpoint).is_dir():
        raise UserError("translator benchmarks need the training checkpoint: pass --checkpoint DIR "
                        "(the PyTorch contender runs its modules)")
    check_device(cfg.device, [])
    variants = cfg.variants or [n for n, v in manifest.variants.items() if v.servable and runs_on(v, cfg.device)]
    if not variants:
        raise UserError(f"{cfg.artifact} has no servable variant for device {cfg.device!r}")
    data_dir = cfg.data if cfg.data not in ("ag_news", "multi30k") else None
    env = harness.capture_environment()
    warnings_out: list[str] = []
    res = run_translator_bench(
        str(cfg.checkpoint), str(cfg.artifact), data_dir=data_dir, limit=cfg.throughput_texts or None,
        threads=(cfg.threads,), beams=tuple(cfg.beams), rounds=cfg.rounds, variants=variants, device=cfg.device,
        log=lambda m: print(f"[bench] {m}", flush=True, file=__import__("sys").stderr))
    # compute threads = intra-op threads x batches decoded at once
    budgets = {label: {"compute": c["compute_threads"]} for label, c in res["contenders"].items()}
    harness.assert_equal_threads(budgets, cfg.threads)
    for beam, run in res["runs"].items():
        for name, r in run.items():
            spread = harness.chunk_spread([res["sentences"] / s for s in r["seconds"]])
            msg = harness.warn_spread(f"{beam} {name}", spread)
            if msg:
                warnings_out.append(msg)
    try:
        import os

        env["load_average_end"] = list(os.getloadavg())
    except OSError:
        pass
    env["load_average_start"] = env.pop("load_average_1_5_15")
    return {"schema": SCHEMA, "task": "translation", "artifact": str(cfg.artifact), "config": cfg.to_dict(),
            "environment": env, "checks": {"threads": budgets, "threads_equal": True},
            "translation": res, "warnings": warnings_out, "duration_s": time.perf_counter() - t0}


def markdown(results: dict[str, Any]) -> str:
    from onnxpress.benchmarks.report import _loads, machine_line
    from onnxpress.benchmarks.translator_bench import table

    env = results["environment"]
    lines = [f"# onnxpress bench (translation): {Path(results['artifact']).name}", "",
             f"- Date: {env.get('date_utc')}; machine: {machine_line(env)}",
             f"- Threads: {results['config']['threads']} for every contender (asserted equal); load average "
             f"at start {_loads(env.get('load_average_start'))}, at end {_loads(env.get('load_average_end'))}",
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()),
             f"- Run took {results['duration_s'] / 60:.1f} min.", "", table(results["translation"]), ""]
    lines += [f"- WARNING: {w}" for w in results["warnings"]]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    runs = results["translation"]["runs"]
    beams = list(runs)
    names = list(next(iter(runs.values())))
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        ax.bar(np.arange(len(beams)) + i * width, [runs[b][name]["sentences_per_s"] for b in beams], width, label=name)
    ax.set_xticks(np.arange(len(beams)) + width * (len(names) - 1) / 2)
    ax.set_xticklabels(beams)
    ax.set_ylabel("sentences/s")
    ax.legend(fontsize=8)
    ax.set_title(machine_line_short(results), fontsize=9)
    fig.tight_layout()
    path = out / "throughput_vs_beam.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def machine_line_short(results: dict[str, Any]) -> str:
    cpu = results["environment"].get("cpu", {})
    return f"{cpu.get('model')}, {results['config']['threads']} threads"
