"""The Hugging Face Optimum peer: its own ONNX export and int8 quantization, cached per checkpoint."""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from onnxpress.errors import UserError
from onnxpress.runtime.int8_gemm import INT32_DOT_PRODUCT_FLAGS, read_cpuinfo

from onnxpress.benchmarks.contenders.base import TokenBatch
from onnxpress.benchmarks.contenders.checkpoint_peer import CheckpointPeer, building, hf_tokenizer


def recommended_qconfig(machine: str, flags: set[str]) -> str:
    """The `AutoQuantizationConfig` Optimum documents for this CPU: arm64 on ARM; avx512_vnni where
    int8 dot products accumulate in int32 (AVX-512 VNNI, AVX-VNNI, AMX); avx512 on other AVX-512
    CPUs (int8 weights: ORT's kernel there clips pair sums, Optimum's choice); avx2 elsewhere
    (uint8 weights, which do not clip)."""
    if machine.lower() in ("aarch64", "arm64"):
        return "arm64"
    if flags & INT32_DOT_PRODUCT_FLAGS:
        return "avx512_vnni"
    return "avx512" if "avx512bw" in flags else "avx2"


class OptimumORT(CheckpointPeer):
    """Hugging Face Optimum: its own ONNX export (and its own `ORTQuantizer` dynamic per-channel
    int8, configured for this CPU), run through `ORTModelForSequenceClassification` on sorted batches."""

    family, kind = "ort", "optimum"

    def __init__(self, checkpoint: str | os.PathLike, max_length: int, cache_dir: str | os.PathLike,
                 quantize: bool, artifact: str | os.PathLike | None = None, key: str | None = None):
        super().__init__(checkpoint, max_length, artifact, cache_dir, key)
        self.quantize = quantize
        self.precision = "int8" if quantize else "fp32"
        self.name = f"optimum-{self.precision}"
        self.qconfig = recommended_qconfig(platform.machine(), read_cpuinfo()[1] or set())
        self.stack = (f"Optimum ORTModel, ORTQuantizer {self.qconfig} dynamic per-channel int8" if quantize
                      else "Optimum ORTModel fp32 (optimum export)")
        self.model = None

    @property
    def spec(self) -> dict[str, Any]:
        return {**super().spec, "quantize": self.quantize, "qconfig": self.qconfig if self.quantize else None}

    @property
    def model_dir(self) -> Path:
        return self.built("optimum") / (f"int8-{self.qconfig}" if self.quantize else "fp32")

    @property
    def file_name(self) -> str:
        return "model_quantized.onnx" if self.quantize else "model.onnx"

    def prepare(self, cache_dir: Path | None = None) -> None:
        """Export with optimum (from the loaded model, so custom heads export too), then quantize."""
        fp32 = self.built("optimum") / "fp32"
        if not (fp32 / "model.onnx").is_file():
            from optimum.exporters.onnx import onnx_export_from_model

            model = self.load_torch_model()
            if not type(model).__module__.startswith("transformers"):
                # Optimum picks its exporter by the class's module; our mean-pooling head is a
                # BERT PreTrainedModel defined outside transformers, so present it as one.
                cls = type(model)
                model.__class__ = type(cls.__name__, (cls,), {"__module__": "transformers.onnxpress_heads"})
            with building(fp32) as tmp:
                onnx_export_from_model(model, tmp, task="text-classification", do_validation=False)
                model.config.save_pretrained(tmp)
                hf_tokenizer(self.checkpoint, self.artifact).save_pretrained(tmp)
        if self.quantize and not (self.model_dir / self.file_name).is_file():
            from optimum.onnxruntime import ORTQuantizer
            from optimum.onnxruntime.configuration import AutoQuantizationConfig

            quantizer = ORTQuantizer.from_pretrained(fp32, file_name="model.onnx")
            qconfig = getattr(AutoQuantizationConfig, self.qconfig)(is_static=False, per_channel=True)
            with building(self.model_dir) as tmp:
                quantizer.quantize(save_dir=tmp, quantization_config=qconfig)
                for p in fp32.iterdir():
                    if p.suffix != ".onnx" and p.is_file() and not (tmp / p.name).is_file():
                        (tmp / p.name).write_bytes(p.read_bytes())

    def load(self, threads: int) -> None:
        import onnxruntime as ort
        from optimum.onnxruntime import ORTModelForSequenceClassification
        from transformers import AutoTokenizer

        if not (self.model_dir / self.file_name).is_file():
            raise UserError(f"{self.name}: no exported model in {self.model_dir} (run prepare first)")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.model = ORTModelForSequenceClassification.from_pretrained(
            self.model_dir, file_name=self.file_name, session_options=so, provider="CPUExecutionProvider",
            use_io_binding=False)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        config = self.model.config
        self._labels = [config.id2label[i] for i in range(config.num_labels)]

    @property
    def session(self) -> Any:
        return getattr(self.model, "session", None) or getattr(self.model, "model")

    def prepare_tokens(self, batch: TokenBatch) -> Any:
        import torch

        return {k: torch.from_numpy(v) for k, v in batch.feeds.items()}

    def run_tokens(self, prepared: Any) -> np.ndarray:
        return self.model(**prepared).logits.float().numpy()

    def threads(self) -> dict[str, Any]:
        so = self.session.get_session_options()
        return {"compute": so.intra_op_num_threads, "interop": so.inter_op_num_threads,
                "how": "SessionOptions.intra_op_num_threads"}

    def describe(self) -> dict[str, Any]:
        from onnxpress.benchmarks.harness import ort_session_options

        return {**super().describe(), "model": str(self.model_dir / self.file_name),
                "session": ort_session_options(self.session),
                "quantization": (f"ORTQuantizer AutoQuantizationConfig.{self.qconfig}(is_static=False, "
                                 "per_channel=True)") if self.quantize else None}

    def close(self) -> None:
        self.model = self.tokenizer = None
