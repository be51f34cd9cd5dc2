"""The trained checkpoint in PyTorch: eager, `torch.compile` and CUDA fp16-autocast peers."""
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
                 sort: bool = False, key: str | None = None, device: str = "cpu"):
        super().__init__(checkpoint, max_length, artifact, key=key)
        self.device = device
        self.sorted_stream = sort
        self.stream_batch_size = STREAM_BATCH_SIZE if sort else SEED_BATCH_SIZE
        base = "torch-compile-fp32" if self.compile else "torch-eager-fp32"
        self.name = base + ("-sorted" if sort else "")
        self.stack = ("PyTorch torch.compile (inductor) fp32" if self.compile else "PyTorch eager fp32") + (
            ", sorted batches" if sort else ", the seed's batching")
        self.kind = "torch-compile" if self.compile else "torch"
        if device != "cpu":
            self.stack += " on CUDA"
        self.model = None
        self.compile_seconds: float | None = None

    @property
    def spec(self) -> dict[str, Any]:
        return {**super().spec, "sort": self.sorted_stream, "device": self.device}

    def load(self, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.model = self.load_torch_model()
        if self.device != "cpu":
            require_cuda(self.name)
            self.model = self.model.to("cuda").eval()
            torch.cuda.reset_peak_memory_stats()
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

        target = "cuda" if self.device != "cpu" else "cpu"
        return {k: torch.from_numpy(v).to(target) for k, v in batch.feeds.items()}

    def run_tokens(self, prepared: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(**prepared).logits.float().cpu().numpy()

    def gpu_memory_mib(self) -> float | None:
        """Peak CUDA memory PyTorch allocated since load (None on CPU)."""
        if self.device == "cpu" or self.model is None:
            return None
        import torch

        return torch.cuda.max_memory_allocated() / 2**20

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


class TorchFp16(TorchEager):
    """The same checkpoint on CUDA under `torch.autocast(dtype=float16)`, length-sorted batches: what a
    PyTorch user gets from one line of mixed precision (fp32 weights, fp16 matmuls)."""

    family, precision = "torch", "fp16"

    def __init__(self, checkpoint: str | os.PathLike, max_length: int, artifact: str | os.PathLike | None = None,
                 sort: bool = True, key: str | None = None, device: str = "cuda"):
        if device == "cpu":
            raise UserError("torch-fp16 is CUDA autocast: it needs --device cuda or tensorrt")
        super().__init__(checkpoint, max_length, artifact, sort=sort, key=key, device=device)
        self.name, self.kind = "torch-fp16-autocast", "torch-fp16"
        self.stack = "PyTorch eager, CUDA autocast fp16, sorted batches"

    def run_tokens(self, prepared: Any) -> np.ndarray:
        import torch

        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
            return self.model(**prepared).logits.float().cpu().numpy()


def require_cuda(what: str) -> None:
    """Refuse, in one line, a CUDA contender when this PyTorch has no usable CUDA device."""
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, no usable device"
        raise UserError(f"{what} needs CUDA PyTorch: torch {torch.__version__} is {build}")
