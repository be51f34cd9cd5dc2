"""The trained checkpoint in PyTorch: eager and `torch.compile` peers."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from onnxpress.errors import UserError

from onnxpress.benchmarks.contenders.base import SEED_BATCH_SIZE, STREAM_BATCH_SIZE, TokenBatch
from onnxpress.benchmarks.contenders.checkpoint_peer import CheckpointPeer, hf_tokenizer


class TorchEager(CheckpointPeer):
    """The trained checkpoint in eager PyTorch fp32: the seed's batching (batches of 8 in input
    order) or, with `sort=True`, the length-sorted batches of 64 any user can apply."""

    family, precision = "torch", "fp32"
    compile = False

    def __init__(self, checkpoint: str | os.PathLike, max_length: int, artifact: str | os.PathLike | None = None,
                 sort: bool = False, key: str | None = None):
        super().__init__(checkpoint, max_length, artifact, key=key)
        self.sorted_stream = sort
        self.stream_batch_size = STREAM_BATCH_SIZE if sort else SEED_BATCH_SIZE
        base = "torch-compile-fp32" if self.compile else "torch-eager-fp32"
        self.name = base + ("-sorted" if sort else "")
        self.stack = ("PyTorch torch.compile (inductor) fp32" if self.compile else "PyTorch eager fp32") + (
            ", sorted batches" if sort else ", the seed's batching")
        self.kind = "torch-compile" if self.compile else "torch"
        self.model = None
        self.compile_seconds: float | None = None

    @property
    def spec(self) -> dict[str, Any]:
        return {**super().spec, "sort": self.sorted_stream}

    def load(self, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.model = self.load_torch_model()
        self.tokenizer = hf_tokenizer(self.checkpoint, self.artifact)
        self._labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        if self.compile:
            self._compile()

    def _compile(self) -> None:
        import time

        import torch

        try:
            self.model = torch.compile(self.model, dynamic=True)
            t0 = time.perf_counter()
            with torch.inference_mode():  # compile now, on a representative shape, not inside timing
                self.model(**self.tokenizer(["warm up the compiler"] * 2, return_tensors="pt"))
            self.compile_seconds = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001 - inductor failures come in many types
            raise UserError(f"torch.compile does not work here: {type(exc).__name__}: {str(exc)[:200]}") from None

    def prepare_tokens(self, batch: TokenBatch) -> Any:
        import torch

        return {k: torch.from_numpy(v) for k, v in batch.feeds.items()}

    def run_tokens(self, prepared: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(**prepared).logits.float().numpy()

    def threads(self) -> dict[str, Any]:
        import torch

        return {"compute": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
                "how": "torch.set_num_threads"}

    def describe(self) -> dict[str, Any]:
        import torch

        return {**super().describe(), "checkpoint": str(self.checkpoint), "threads": self.threads(),
                "torch_compile": self.compile, "compile_seconds": self.compile_seconds,
                "attn_implementation": getattr(getattr(self.model, "config", None), "_attn_implementation", None),
                "mkldnn": torch.backends.mkldnn.is_available()}

    def close(self) -> None:
        self.model = self.tokenizer = None


class TorchCompiled(TorchEager):
    """The same checkpoint through `torch.compile(dynamic=True)` (inductor, CPU)."""

    compile = True
