"""onnxpress itself: one artifact variant through the torch-free runtime `Classifier`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from onnxpress.benchmarks.contenders.base import Contender, TokenBatch


class Onnxpress(Contender):
    """One variant of an onnxpress artifact through `onnxpress.runtime.Classifier` (torch-free)."""

    family = "ort"

    def __init__(self, artifact: str | os.PathLike, variant: str, device: str = "cpu"):
        super().__init__()
        self.artifact = Path(artifact)
        self.variant = variant
        self.device = device
        self.name = f"onnxpress-{variant}"
        self.clf = None
        from onnxpress.runtime.artifact import Artifact

        self.precision = Artifact.open(self.artifact).manifest.variants[variant].precision
        self.stack = f"onnxpress runtime, variant {variant} ({self.precision})"

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": "onnxpress", "artifact": str(self.artifact), "variant": self.variant, "device": self.device}

    def load(self, threads: int) -> None:
        from onnxpress.runtime import Classifier

        self.clf = Classifier.load(self.artifact, variant=self.variant, device=self.device, threads=threads)
        self._feed_names = list(self.clf.engine.input_names)

    def labels(self) -> list[str]:
        return list(self.clf.labels)

    def proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.clf.predict_proba(list(texts))

    def stream_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.clf.predict_proba(list(texts))  # the runtime sorts and batches by itself

    def prepare_tokens(self, batch: TokenBatch) -> Any:
        return {k: v for k, v in batch.feeds.items() if k in self._feed_names}

    def run_tokens(self, prepared: Any) -> np.ndarray:
        return np.asarray(self.clf.engine.run(prepared)[self.clf.output_index])

    def threads(self) -> dict[str, Any]:
        so = self.clf.engine.session.get_session_options()
        workers = self.clf.runs.workers
        return {"compute": so.intra_op_num_threads * workers, "interop": so.inter_op_num_threads,
                "how": f"Classifier.load(threads=N): {workers} parallel batch(es) x "
                       f"SessionOptions.intra_op_num_threads={so.intra_op_num_threads}"}

    def batching(self) -> str:
        return ("Classifier.predict_proba: length-sorted batches under its token budget, on CPU several "
                "at a time for a small model (parallel_runs.split_threads)")

    def describe(self) -> dict[str, Any]:
        from onnxpress.benchmarks.harness import ort_session_options

        info = self.clf.describe() if self.clf is not None else {}
        session = ort_session_options(self.clf.engine.session) if self.clf is not None else {}
        return {**super().describe(), "artifact": str(self.artifact), "variant": self.variant,
                "runtime": info, "session": session}

    def close(self) -> None:
        self.clf = None
