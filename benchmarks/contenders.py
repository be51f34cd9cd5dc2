"""Contenders: every way of running the classifier that the benchmark compares, one class each.

Common interface (`Contender`):

- `prepare(cache_dir)`  one-time build work that is not part of any timing (Optimum's own export
                        and quantization);
- `load(threads)`       import + load, with the thread budget set explicitly;
- `predict_texts(texts)` end to end: text in, label names out, tokenization included, the way
                        a user of that stack would do it;
- `predict_stream(texts)` the contender's own batching over many texts (throughput section);
- `prepare_tokens(batch)` / `run_tokens(prepared)`  model only: the same pre-tokenized, padded
                        numpy batch for everyone, converted untimed, then one forward pass;
- `threads()`           the thread budget actually in effect (asserted equal by the harness);
- `describe()`          exact settings (session options, files) for the report;
- `spec`                a JSON-able recipe so `probe.py` can rebuild it in a fresh process.

Heavy libraries are imported inside methods: `onnxpress` contenders rebuilt in a subprocess
must not import torch, or their cold start and RSS would be the torch ones.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from onnxpress.errors import UserError

SEED_BATCH_SIZE = 8  # the seed notebook's inference batching (pad to longest)
PIPELINE_BATCH_SIZE = 32  # Optimum's documented way: a transformers pipeline


@dataclass
class TokenBatch:
    """One padded batch shared by all contenders in model-only mode."""

    feeds: dict[str, np.ndarray]  # input_ids, attention_mask[, token_type_ids]: int64 [b, L]

    @property
    def size(self) -> int:
        return int(self.feeds["input_ids"].shape[0])

    @property
    def length(self) -> int:
        return int(self.feeds["input_ids"].shape[1])

    @property
    def real_tokens(self) -> int:
        return int(self.feeds["attention_mask"].sum())


class Contender:
    name: str = "contender"
    family: str = "?"  # torch | ort
    precision: str = "fp32"  # fp32 | int8 | fp16: picks the roofline to compare with
    stack: str = "?"  # short description for the table

    def __init__(self) -> None:
        self.load_seconds: float | None = None

    @property
    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def prepare(self, cache_dir: Path) -> None:
        """One-time, untimed build work."""

    def load(self, threads: int) -> None:
        raise NotImplementedError

    def predict_texts(self, texts: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def predict_stream(self, texts: Sequence[str]) -> list[str]:
        return self.predict_texts(texts)

    def prepare_tokens(self, batch: TokenBatch) -> Any:
        return batch.feeds

    def run_tokens(self, prepared: Any) -> np.ndarray:
        raise NotImplementedError

    def labels(self) -> list[str]:
        raise NotImplementedError

    def threads(self) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "stack": self.stack, "precision": self.precision}

    def close(self) -> None:
        """Drop models and sessions (frees memory before the next section)."""


def argmax_labels(logits: np.ndarray, labels: Sequence[str]) -> list[str]:
    return [labels[int(k)] for k in np.asarray(logits).argmax(axis=-1)]


# -- PyTorch ------------------------------------------------------------------------------

def hf_tokenizer(checkpoint: Path, artifact_dir: Path | None) -> Any:
    """The checkpoint's own HF tokenizer; the artifact's tokenizer.json if it saved none."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        return AutoTokenizer.from_pretrained(checkpoint)
    except (OSError, ValueError, TypeError):
        if artifact_dir is None or not (artifact_dir / "tokenizer.json").is_file():
            raise UserError(f"{checkpoint} has no tokenizer and no artifact tokenizer.json to fall back on") from None
        return PreTrainedTokenizerFast(
            tokenizer_file=str(artifact_dir / "tokenizer.json"), pad_token="[PAD]", unk_token="[UNK]",
            cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
        )


class TorchEager(Contender):
    """The seed's way: the trained checkpoint in eager PyTorch fp32, batches padded to the longest."""

    family, precision = "torch", "fp32"
    compile = False

    def __init__(self, checkpoint: str | os.PathLike, max_length: int, artifact: str | os.PathLike | None = None,
                 batch_size: int = SEED_BATCH_SIZE, key: str | None = None):
        super().__init__()
        self.checkpoint = Path(checkpoint).resolve()
        # fingerprint at construction: a fresh process (cold start) must load the same weights
        self.key = key or _checkpoint_key(self.checkpoint)
        self.artifact = Path(artifact) if artifact else None
        self.max_length = int(max_length)
        self.batch_size = batch_size
        self.name = "torch-compile-fp32" if self.compile else "torch-eager-fp32"
        self.stack = "PyTorch torch.compile (inductor) fp32" if self.compile else "PyTorch eager fp32"
        self.model = self.tokenizer = None
        self.compile_seconds: float | None = None

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": "torch-compile" if self.compile else "torch", "checkpoint": str(self.checkpoint),
                "max_length": self.max_length, "artifact": str(self.artifact) if self.artifact else None,
                "key": self.key}

    def load(self, threads: int) -> None:
        import torch

        from onnxpress.training.modeling import load_classifier

        torch.set_num_threads(threads)
        if not (self.checkpoint / "config.json").is_file():
            raise UserError(f"PyTorch contenders need the training checkpoint; {self.checkpoint} has no config.json")
        if _checkpoint_key(self.checkpoint) != self.key:
            raise UserError(f"{self.checkpoint} was rewritten after the benchmark started: it is no longer the "
                            "model the other contenders were measured with")
        self.model = load_classifier(self.checkpoint)
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

    def labels(self) -> list[str]:
        return self._labels

    def _forward(self, inputs: dict[str, Any]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(**inputs).logits.float().numpy()

    def predict_texts(self, texts: Sequence[str]) -> list[str]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return argmax_labels(self._forward(dict(enc)), self._labels)

    def predict_stream(self, texts: Sequence[str]) -> list[str]:
        out: list[str] = []
        for i in range(0, len(texts), self.batch_size):
            out += self.predict_texts(texts[i:i + self.batch_size])
        return out

    def prepare_tokens(self, batch: TokenBatch) -> Any:
        import torch

        return {k: torch.from_numpy(v) for k, v in batch.feeds.items()}

    def run_tokens(self, prepared: Any) -> np.ndarray:
        return self._forward(prepared)

    def threads(self) -> dict[str, Any]:
        import torch

        return {"compute": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
                "how": "torch.set_num_threads"}

    def describe(self) -> dict[str, Any]:
        import torch

        return {**super().describe(), "checkpoint": str(self.checkpoint), "threads": self.threads(),
                "batching": f"batch {self.batch_size}, pad to longest (throughput); pad to longest (latency)",
                "torch_compile": self.compile, "compile_seconds": self.compile_seconds,
                "attn_implementation": getattr(getattr(self.model, "config", None), "_attn_implementation", None),
                "mkldnn": torch.backends.mkldnn.is_available()}

    def close(self) -> None:
        self.model = self.tokenizer = None


class TorchCompiled(TorchEager):
    """The same checkpoint through `torch.compile(dynamic=True)` (inductor, CPU)."""

    compile = True


# -- Optimum ------------------------------------------------------------------------------

def _checkpoint_key(checkpoint: Path) -> str:
    """Cache key of a checkpoint: path plus the sizes and mtimes of its files."""
    h = hashlib.sha256(str(checkpoint.resolve()).encode())
    for p in sorted(checkpoint.iterdir()):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:12]


class OptimumORT(Contender):
    """Hugging Face Optimum: its own ONNX export (and its own avx512-vnni dynamic int8), run
    through `ORTModelForSequenceClassification` and a transformers pipeline, the documented way."""

    family = "ort"

    def __init__(self, checkpoint: str | os.PathLike, max_length: int, cache_dir: str | os.PathLike,
                 quantize: bool, artifact: str | os.PathLike | None = None,
                 batch_size: int = PIPELINE_BATCH_SIZE, key: str | None = None):
        super().__init__()
        self.checkpoint = Path(checkpoint).resolve()
        self.key = key or _checkpoint_key(self.checkpoint)  # names the export cache: fixed for the run
        self.artifact = Path(artifact) if artifact else None
        self.max_length = int(max_length)
        self.quantize = quantize
        self.batch_size = batch_size
        self.precision = "int8" if quantize else "fp32"
        self.name = f"optimum-{self.precision}"
        self.stack = ("Optimum ORTModel, ORTQuantizer avx512_vnni dynamic per-channel int8" if quantize
                      else "Optimum ORTModel fp32 (optimum export)")
        self.cache_dir = Path(cache_dir)
        self.model = self.pipe = self.tokenizer = None

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": "optimum", "checkpoint": str(self.checkpoint), "max_length": self.max_length,
                "cache_dir": str(self.cache_dir), "quantize": self.quantize,
                "artifact": str(self.artifact) if self.artifact else None, "key": self.key}

    @property
    def export_dir(self) -> Path:
        return self.cache_dir / f"optimum-{self.key}"

    @property
    def model_dir(self) -> Path:
        return self.export_dir / ("int8" if self.quantize else "fp32")

    @property
    def file_name(self) -> str:
        return "model_quantized.onnx" if self.quantize else "model.onnx"

    def prepare(self, cache_dir: Path | None = None) -> None:
        """Export with optimum (from the loaded model, so custom heads export too), then quantize."""
        fp32 = self.export_dir / "fp32"
        if not (fp32 / "model.onnx").is_file():
            if _checkpoint_key(self.checkpoint) != self.key:
                raise UserError(f"{self.checkpoint} was rewritten after the benchmark started")
            from optimum.exporters.onnx import onnx_export_from_model

            from onnxpress.training.modeling import load_classifier

            model = load_classifier(self.checkpoint)
            if not type(model).__module__.startswith("transformers"):
                # Optimum picks its exporter by the class's module; our mean-pooling head is a
                # BERT PreTrainedModel defined outside transformers, so present it as one.
                cls = type(model)
                model.__class__ = type(cls.__name__, (cls,), {"__module__": "transformers.onnxpress_heads"})
            tmp = fp32.with_name("fp32.tmp")
            if tmp.exists():
                import shutil

                shutil.rmtree(tmp)
            onnx_export_from_model(model, tmp, task="text-classification", do_validation=False)
            model.config.save_pretrained(tmp)
            hf_tokenizer(self.checkpoint, self.artifact).save_pretrained(tmp)
            tmp.rename(fp32)
        if self.quantize and not (self.model_dir / self.file_name).is_file():
            from optimum.onnxruntime import ORTQuantizer
            from optimum.onnxruntime.configuration import AutoQuantizationConfig

            quantizer = ORTQuantizer.from_pretrained(fp32, file_name="model.onnx")
            qconfig = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=True)
            tmp = self.model_dir.with_name("int8.tmp")
            if tmp.exists():
                import shutil

                shutil.rmtree(tmp)
            quantizer.quantize(save_dir=tmp, quantization_config=qconfig)
            for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                         "vocab.txt"):
                if (fp32 / name).is_file() and not (tmp / name).is_file():
                    (tmp / name).write_bytes((fp32 / name).read_bytes())
            tmp.rename(self.model_dir)

    def load(self, threads: int) -> None:
        import onnxruntime as ort
        import torch
        from optimum.onnxruntime import ORTModelForSequenceClassification
        from transformers import AutoTokenizer, pipeline

        if not (self.model_dir / self.file_name).is_file():
            raise UserError(f"{self.name}: no exported model in {self.model_dir} (run prepare first)")
        torch.set_num_threads(threads)  # the pipeline's pre/post-processing runs in torch
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.model = ORTModelForSequenceClassification.from_pretrained(
            self.model_dir, file_name=self.file_name, session_options=so, provider="CPUExecutionProvider")
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.pipe = pipeline("text-classification", model=self.model, tokenizer=self.tokenizer, device="cpu")
        config = self.model.config
        self._labels = [config.id2label[i] for i in range(config.num_labels)]

    @property
    def session(self) -> Any:
        return getattr(self.model, "session", None) or getattr(self.model, "model")

    def labels(self) -> list[str]:
        return self._labels

    def predict_texts(self, texts: Sequence[str], batch_size: int | None = None) -> list[str]:
        out = self.pipe(list(texts), batch_size=batch_size or len(texts), truncation=True,
                        max_length=self.max_length)
        return [o["label"] for o in out]

    def predict_stream(self, texts: Sequence[str]) -> list[str]:
        return self.predict_texts(texts, batch_size=self.batch_size)

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
                "batching": f"transformers pipeline, batch {self.batch_size} (throughput), pad to longest",
                "quantization": ("ORTQuantizer AutoQuantizationConfig.avx512_vnni(is_static=False, "
                                 "per_channel=True)") if self.quantize else None}

    def close(self) -> None:
        self.model = self.pipe = self.tokenizer = None


# -- onnxpress ----------------------------------------------------------------------------

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

    def predict_texts(self, texts: Sequence[str]) -> list[str]:
        return [p.label for p in self.clf.predict(list(texts))]

    def prepare_tokens(self, batch: TokenBatch) -> Any:
        return {k: v for k, v in batch.feeds.items() if k in self._feed_names}

    def run_tokens(self, prepared: Any) -> np.ndarray:
        return np.asarray(self.clf.engine.run(prepared)[self.clf.output_index])

    def threads(self) -> dict[str, Any]:
        so = self.clf.engine.session.get_session_options()
        return {"compute": so.intra_op_num_threads, "interop": so.inter_op_num_threads,
                "how": "Classifier.load(threads=N) -> SessionOptions.intra_op_num_threads"}

    def describe(self) -> dict[str, Any]:
        from onnxpress.benchmarks.harness import ort_session_options

        info = self.clf.describe() if self.clf is not None else {}
        session = ort_session_options(self.clf.engine.session) if self.clf is not None else {}
        return {**super().describe(), "artifact": str(self.artifact), "variant": self.variant,
                "runtime": info, "session": session,
                "batching": "Classifier.predict: length-sorted batches under its token budget"}

    def close(self) -> None:
        self.clf = None


# -- registry -------------------------------------------------------------------------------

PEERS = ("torch", "torch-compile", "optimum")


def from_spec(spec: dict[str, Any]) -> Contender:
    """Rebuild a contender from its `spec` (used by the cold-start subprocess)."""
    kind = spec["kind"]
    if kind == "onnxpress":
        return Onnxpress(spec["artifact"], spec["variant"], spec.get("device", "cpu"))
    if kind in ("torch", "torch-compile"):
        cls = TorchCompiled if kind == "torch-compile" else TorchEager
        return cls(spec["checkpoint"], spec["max_length"], spec.get("artifact"), key=spec.get("key"))
    if kind == "optimum":
        return OptimumORT(spec["checkpoint"], spec["max_length"], spec["cache_dir"], spec["quantize"],
                          spec.get("artifact"), key=spec.get("key"))
    raise ValueError(f"unknown contender kind {kind!r}")
