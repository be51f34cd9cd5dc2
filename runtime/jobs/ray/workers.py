"""The actor pool's size and threads, and the model every actor loads (decided on the driver).

No oversubscription: each actor reserves `threads` CPUs (`num_cpus`), so Ray places at most
(node CPUs / threads) actors per node, and the actor opens ONNX Runtime with exactly that many
intra-op threads (one inter-op thread, the runtime's default).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from onnxpress.errors import UserError
from onnxpress.runtime.artifact import Artifact
from onnxpress.runtime.jobs.ray.session import require_ray
from onnxpress.runtime.variants import candidates


@dataclass(frozen=True)
class Workers:
    """The actor pool: `workers` actors, each reserving `threads` CPUs (and `gpus` GPUs)."""

    workers: int = 2
    threads: int = 1
    gpus: float = 0.0
    variant: str = "auto"
    max_batch_tokens: int | None = None
    max_batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UserError(f"--workers must be >= 1 (got {self.workers})")
        if self.threads < 1:
            raise UserError(f"--threads-per-worker must be >= 1 (got {self.threads})")

    @property
    def device(self) -> str:
        return "cuda" if self.gpus > 0 else "cpu"

    def map_args(self) -> dict[str, Any]:
        """`map_batches` keywords: one block per call, a fixed pool, resources per actor."""
        ray = require_ray()
        args: dict[str, Any] = {"batch_size": None, "batch_format": "pyarrow", "num_cpus": self.threads,
                                "compute": ray.data.ActorPoolStrategy(size=self.workers)}
        if self.gpus:
            args["num_gpus"] = self.gpus
        return args

    def load_options(self) -> dict[str, Any]:
        return {"device": self.device, "threads": self.threads}


class ModelInfo:
    """The model the actors will load, decided once on the driver (so all actors agree), without
    a session: the artifact, the variant and the labels (what a job's settings record)."""

    def __init__(self, artifact: str | os.PathLike, task: str, workers: Workers):
        self.artifact = Artifact.open(artifact)
        if self.artifact.task != task:
            raise UserError(f"{artifact} is a {self.artifact.task} artifact, not {task}")
        self.variant = resolve_variant(self.artifact, workers.variant, workers.device)
        self.labels = list(self.artifact.manifest.labels or [])


def resolve_variant(artifact: Artifact, variant: str, device: str) -> str:
    """The variant every actor will load: decided once on the driver, so all actors agree."""
    if variant != "auto":
        artifact.variant(variant)  # refuses unknown or rejected variants
        return variant
    names = candidates(artifact, device)
    if not names:
        raise UserError(f"artifact {artifact.root} has no servable variant for {device}")
    return names[0]
