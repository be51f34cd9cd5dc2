"""Cold-start section: import, load and first prediction, plus peak RSS, one fresh process per run."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from onnxpress.benchmarks.bench_config import BenchConfig
from onnxpress.benchmarks.contenders import Contender, TorchCompiled
from onnxpress.benchmarks.sections.common import progress, write_lines


def cold_start_section(contenders: list[Contender], texts: Sequence[str], cfg: BenchConfig,
                       warnings_out: list[str]) -> dict[str, Any]:
    """Median cold start, import/load/first-prediction times and RSS per contender (torch.compile skipped)."""
    from onnxpress.benchmarks.probe import run_probe

    cache = Path(cfg.out) / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    texts_file = write_lines(cache / "probe_texts.txt", texts[:cfg.cold_start_workload + 1])
    probed = [c for c in contenders if not isinstance(c, TorchCompiled)]
    skipped = {c.name: "torch.compile recompiles in every new process (its compile time is reported instead)"
               for c in contenders if isinstance(c, TorchCompiled)}
    runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in probed}
    steps = [(r, j) for r in range(cfg.cold_start_runs) for j in range(len(probed))]
    for r, j in progress(steps, "cold start", cfg.progress):
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
