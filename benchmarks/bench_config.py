"""Settings of one `onnxpress bench` run (`BenchConfig`) and the choices its flags offer."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "onnxpress-bench/1"
MODES = ("e2e", "model")
PEER_CHOICES = ("torch", "torch-sorted", "torch-compile", "torch-fp16", "optimum", "optimum-fp32", "optimum-int8",
                "ctranslate2", "openvino")
DEVICES = ("cpu", "cuda", "tensorrt")
# peers that run on a GPU device (PyTorch on CUDA); the others are CPU-only in this harness
GPU_PEERS = ("torch", "torch-sorted", "torch-fp16")
CUDA_ONLY_PEERS = ("torch-fp16",)
DEFAULT_PEERS = ["torch", "torch-sorted", "optimum-int8", "ctranslate2", "openvino"]


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
    device: str = "cpu"  # one of DEVICES
    modes: list[str] = field(default_factory=lambda: list(MODES))
    latency_budget_s: float = 180.0  # whole latency section, split over its cells
    throughput_texts: int | None = None  # None: all texts of the data set
    throughput_rounds: int = 2  # fresh-process runs per contender over the whole text set
    invariance_texts: int = 300  # batched vs one at a time, first round
    throughput_budget_s: float | None = 600.0  # stop after the chunk round that crosses it
    first_pass: bool = True  # each process scores the texts once, timed apart, before the timed pass
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
