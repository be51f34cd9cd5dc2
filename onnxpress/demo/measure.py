"""The demo's side-by-side measurement: `onnxpress bench --quick`, trimmed to about two minutes.

The demo calls the same command a user would type (so the report can print it verbatim), with
the PyTorch eager reference, every installed peer, and onnxpress int8 on the same texts and
threads. `headline` reads back the figures the report shows from the bench's `results.json`.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnxpress.errors import UserError

# peer name in `onnxpress bench --against` -> the module that must be importable to run it
OPTIONAL_PEERS = {"optimum-int8": "optimum", "openvino": "openvino", "ctranslate2": "ctranslate2"}


def installed_peers() -> list[str]:
    """PyTorch eager, then every optional peer the harness knows whose package is installed."""
    from onnxpress.benchmarks.classifier_bench import PEER_CHOICES

    return ["torch"] + [name for name, module in OPTIONAL_PEERS.items()
                        if name in PEER_CHOICES and importlib.util.find_spec(module) is not None]


@dataclass(frozen=True)
class QuickBench:
    """Budgets of the demo's comparison; the defaults fit ~2 minutes on 2 cores, tests pass tiny ones."""

    variants: tuple[str, ...] = ("int8",)
    batch_sizes: tuple[int, ...] = (1, 8)
    latency_budget_s: float = 20.0
    throughput_texts: int = 400
    throughput_budget_s: float = 30.0
    beams: tuple[int, ...] = (1, 4)
    sentences: int = 200

    def classifier_argv(self, artifact: Path, checkpoint: Path, texts: Path, out: Path, threads: int,
                        peers: list[str]) -> list[str]:
        """`onnxpress bench` on the classifier: latency end to end, throughput, cold start and RSS."""
        return ["bench", str(artifact), "--quick", "--checkpoint", str(checkpoint),
                "--variants", ",".join(self.variants), "--against", ",".join(peers), "--data", str(texts),
                "--modes", "e2e", "--batch-sizes", ",".join(map(str, self.batch_sizes)),
                "--latency-budget", f"{self.latency_budget_s:g}", "--throughput-texts", str(self.throughput_texts),
                "--throughput-budget", f"{self.throughput_budget_s:g}", "--no-roofline",
                "--threads", str(threads), "--out", str(out)]

    def translator_argv(self, artifact: Path, checkpoint: Path, data: str, out: Path, threads: int) -> list[str]:
        """`onnxpress bench` on the translator: the PyTorch reference decoder vs int8, greedy and beam."""
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
            "cold_start_s": cs.get("cold_start_s"), "peak_rss_mib": cs.get("peak_rss_mib"),
            "imports_torch": cs.get("torch_imported"),
        })
    return rows
