"""The demo's side-by-side measurement: `onnxpress bench --quick`, trimmed to about two minutes.

The demo calls the same command a user would type (so the report can print it verbatim): the
PyTorch eager reference, the bench's peers (those whose package is installed) and onnxpress int8
on the same texts and threads. `headline` reads back the figures the report shows from the bench's `results.json`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnxpress.errors import UserError

@dataclass(frozen=True)
class QuickBench:
    """What the demo adds to `onnxpress bench --quick`; None leaves the preset's value (tests pass tiny budgets)."""

    variants: tuple[str, ...] = ("int8",)
    # PyTorch eager and Optimum int8 fit the demo's two minutes on 2 cores; every peer (None: the bench's
    # default set) adds a model conversion and two fresh processes each
    peers: tuple[str, ...] | None = ("torch", "optimum-int8")
    batch_sizes: tuple[int, ...] = (1,)  # the side-by-side latency section, end to end
    latency_budget_s: float | None = 20.0
    throughput_texts: int | None = None
    throughput_budget_s: float | None = None
    beams: tuple[int, ...] = (1, 4)
    sentences: int = 200

    def classifier_argv(self, artifact: Path, checkpoint: Path, texts: Path, out: Path, threads: int) -> list[str]:
        """`onnxpress bench` on the classifier: throughput, accuracy, p50 latency, cold start and peak RSS."""
        argv = ["bench", str(artifact), "--quick", "--checkpoint", str(checkpoint),
                "--variants", ",".join(self.variants), "--data", str(texts),
                "--modes", "e2e", "--batch-sizes", ",".join(map(str, self.batch_sizes))]
        if self.peers is not None:
            argv += ["--against", ",".join(self.peers)]
        for flag, value in (("--latency-budget", self.latency_budget_s), ("--throughput-texts", self.throughput_texts),
                            ("--throughput-budget", self.throughput_budget_s)):
            if value is not None:
                argv += [flag, f"{value:g}"]
        return argv + ["--threads", str(threads), "--out", str(out)]

    def translator_argv(self, artifact: Path, checkpoint: Path, data: str, out: Path, threads: int) -> list[str]:
        """`onnxpress bench` on the translator: PyTorch on the same search vs int8, greedy and beam."""
        return ["bench", str(artifact), "--quick", "--checkpoint", str(checkpoint),
                "--variants", ",".join(self.variants), "--data", data,
                "--beams", ",".join(map(str, self.beams)), "--throughput-texts", str(self.sentences),
                "--threads", str(threads), "--out", str(out)]


def load_results(out: Path) -> dict[str, Any]:
    """The `results.json` a bench run wrote into `out`."""
    path = Path(out) / "results.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the benchmark results {path}: {exc}") from None


def headline(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per classifier contender: texts/s, x the reference, accuracy, p50 batch-1 ms, cold start s, peak RSS MiB."""
    throughput = {r["contender"]: r for r in (results.get("throughput") or {}).get("contenders", [])}
    cold = {r["contender"]: r for r in (results.get("cold_start") or {}).get("contenders", [])}
    batch1 = {c["contender"]: c for c in results.get("latency") or [] if c["mode"] == "e2e" and c["batch_size"] == 1}
    rows = []
    for contender in results.get("contenders", []):
        name = contender["name"]
        tp, cs, lat = throughput.get(name, {}), cold.get(name, {}), batch1.get(name, {})
        rows.append({
            "contender": name, "texts_per_s": tp.get("texts_per_s"), "x_reference": tp.get("x_vs_reference"),
            "accuracy": tp.get("accuracy"), "p50_ms_batch1": lat.get("p50_ms"),
            # the quick preset skips the cold-start section: the throughput processes measure both too
            "cold_start_s": cs.get("cold_start_s", tp.get("cold_start_s")),
            "peak_rss_mib": cs.get("peak_rss_mib", tp.get("peak_rss_mib")),
            "imports_torch": cs.get("torch_imported"),
        })
    return rows
