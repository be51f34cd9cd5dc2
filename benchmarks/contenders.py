"""Contenders: every way of running the classifier that the benchmark compares, one class each.

Common interface (`Contender`):

- `prepare(cache_dir)`  one-time build work that is not part of any timing (Optimum's own export
                        and quantization);
- `load(threads)`       import + load, with the thread budget set explicitly;
- `proba(texts)`       one batch, padded to its longest text: probabilities [n, labels];
- `predict_texts(texts)` end to end: text in, label names out, tokenization included, the way
                        a user of that stack would do it;
- `predict_stream(texts)` the contender's best batching over many texts (throughput section):
                        length-sorted batches of `STREAM_BATCH_SIZE` unless it batches itself;
- `prepare_tokens(batch)` / `run_tokens(prepared)`  model only: the same pre-tokenized, padded
                        numpy batch for everyone, converted untimed, then one forward pass;
- `threads()`           the thread budget actually in effect (asserted equal by the harness);
- `describe()`          exact settings (session options, files) for the report;
- `spec`                a JSON-able recipe so `probe.py` can rebuild it in a fresh process.

Heavy libraries are imported inside methods: `onnxpress` contenders rebuilt in a subprocess
must not import torch, or their cold start and RSS would be the torch ones.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from onnxpress.errors import UserError

SEED_BATCH_SIZE = 8  # the seed notebook's inference batching (pad to longest, input order)
STREAM_BATCH_SIZE = 64  # every peer's best batching: length-sorted batches of 64 (issue 15)


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
    family: str = "?"  # torch | ort | ct2 | openvino
    precision: str = "fp32"  # fp32 | int8 | fp16: picks the roofline to compare with
    stack: str = "?"  # short description for the table
    stream_batch_size: int = STREAM_BATCH_SIZE
    sorted_stream: bool = True  # predict_stream sorts texts by token length before batching

    def __init__(self) -> None:
        self.load_seconds: float | None = None

    @property
    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def prepare(self, cache_dir: Path) -> None:
        """One-time, untimed build work."""

    def load(self, threads: int) -> None:
        raise NotImplementedError

    def proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities [len(texts), labels] for one batch padded to its longest text."""
        return softmax(self.run_tokens(self.prepare_tokens(TokenBatch(self.encode_padded(texts)))))

    def encode_padded(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The contender's own tokenizer: int64 feeds padded to the longest of `texts`."""
        raise NotImplementedError

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Token count per text (with specials, truncated), for length sorting."""
        raise NotImplementedError

    def predict_texts(self, texts: Sequence[str]) -> list[str]:
        return argmax_labels(self.proba(texts), self.labels())

    def stream_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities for many texts, in input order, batched the contender's best way."""
        n = len(texts)
        order = (np.argsort(self.token_lengths(texts), kind="stable") if self.sorted_stream and n
                 else np.arange(n))
        out = np.empty((n, len(self.labels())), dtype=np.float32)
        for i in range(0, n, self.stream_batch_size):
            rows = order[i:i + self.stream_batch_size]
            out[rows] = self.proba([texts[j] for j in rows])
        return out

    def predict_stream(self, texts: Sequence[str]) -> list[str]:
        return argmax_labels(self.stream_proba(texts), self.labels())

    def prepare_tokens(self, batch: TokenBatch) -> Any:
        return batch.feeds

    def run_tokens(self, prepared: Any) -> np.ndarray:
        """Logits of one prepared batch."""
        raise NotImplementedError

    def labels(self) -> list[str]:
        raise NotImplementedError

    def threads(self) -> dict[str, Any]:
        raise NotImplementedError

    def batching(self) -> str:
        if not self.sorted_stream:
            return f"batches of {self.stream_batch_size} in input order, padded to the longest"
        return f"length-sorted batches of {self.stream_batch_size}, padded to the longest"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "stack": self.stack, "precision": self.precision, "batching": self.batching()}

    def close(self) -> None:
        """Drop models and sessions (frees memory before the next section)."""


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


class HFTokenized:
    """Mixin: tokenization with the checkpoint's Hugging Face tokenizer (`self.tokenizer`)."""

    tokenizer: Any
    max_length: int

    def encode_padded(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="np")
        return {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))


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


def checkpoint_key(checkpoint: Path) -> str:
    """Cache key of a checkpoint: path plus the sizes and mtimes of its files."""
    h = hashlib.sha256(str(checkpoint.resolve()).encode())
    for p in sorted(checkpoint.iterdir()):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:12]


class CheckpointPeer(HFTokenized, Contender):
    """A peer built from the training checkpoint (PyTorch, Optimum, CTranslate2, OpenVINO)."""

    kind = "?"

    def __init__(self, checkpoint: str | os.PathLike, max_length: int, artifact: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, key: str | None = None):
        super().__init__()
        self.checkpoint = Path(checkpoint).resolve()
        # fingerprint at construction: a fresh process must load the same weights
        self.key = key or checkpoint_key(self.checkpoint)
        self.artifact = Path(artifact) if artifact else None
        self.max_length = int(max_length)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.tokenizer = None

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "checkpoint": str(self.checkpoint), "max_length": self.max_length,
                "artifact": str(self.artifact) if self.artifact else None,
                "cache_dir": str(self.cache_dir) if self.cache_dir else None, "key": self.key}

    def check_unchanged(self) -> None:
        if checkpoint_key(self.checkpoint) != self.key:
            raise UserError(f"{self.checkpoint} was rewritten after the benchmark started: it is no longer the "
                            "model the other contenders were measured with")

    def load_torch_model(self) -> Any:
        """The checkpoint as a PyTorch module (for peers that convert it)."""
        from onnxpress.training.modeling import load_classifier

        if not (self.checkpoint / "config.json").is_file():
            raise UserError(f"{self.name} needs the training checkpoint; {self.checkpoint} has no config.json")
        self.check_unchanged()
        return load_classifier(self.checkpoint)

    def built(self, name: str) -> Path:
        """Where this peer's converted model lives in the cache (keyed by checkpoint)."""
        if self.cache_dir is None:
            raise UserError(f"{self.name} needs a cache directory for its converted model")
        return self.cache_dir / f"{name}-{self.key}"

    def labels(self) -> list[str]:
        return self._labels

    def close(self) -> None:
        self.tokenizer = None


# -- PyTorch ------------------------------------------------------------------------------

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


# -- Optimum ------------------------------------------------------------------------------

class OptimumORT(CheckpointPeer):
    """Hugging Face Optimum: its own ONNX export (and its own `ORTQuantizer` avx512_vnni dynamic
    per-channel int8), run through `ORTModelForSequenceClassification` on sorted batches."""

    family, kind = "ort", "optimum"

    def __init__(self, checkpoint: str | os.PathLike, max_length: int, cache_dir: str | os.PathLike,
                 quantize: bool, artifact: str | os.PathLike | None = None, key: str | None = None):
        super().__init__(checkpoint, max_length, artifact, cache_dir, key)
        self.quantize = quantize
        self.precision = "int8" if quantize else "fp32"
        self.name = f"optimum-{self.precision}"
        self.stack = ("Optimum ORTModel, ORTQuantizer avx512_vnni dynamic per-channel int8" if quantize
                      else "Optimum ORTModel fp32 (optimum export)")
        self.model = None

    @property
    def spec(self) -> dict[str, Any]:
        return {**super().spec, "quantize": self.quantize}

    @property
    def model_dir(self) -> Path:
        return self.built("optimum") / ("int8" if self.quantize else "fp32")

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
            qconfig = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=True)
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
                "quantization": ("ORTQuantizer AutoQuantizationConfig.avx512_vnni(is_static=False, "
                                 "per_channel=True)") if self.quantize else None}

    def close(self) -> None:
        self.model = self.tokenizer = None


@contextlib.contextmanager
def building(final: Path) -> Iterator[Path]:
    """A scratch folder that becomes `final` only when the block completes (no half-built caches)."""
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.rename(final)


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
        return {"compute": so.intra_op_num_threads, "interop": so.inter_op_num_threads,
                "how": "Classifier.load(threads=N) -> SessionOptions.intra_op_num_threads"}

    def batching(self) -> str:
        return "Classifier.predict_proba: length-sorted batches under its token budget"

    def describe(self) -> dict[str, Any]:
        from onnxpress.benchmarks.harness import ort_session_options

        info = self.clf.describe() if self.clf is not None else {}
        session = ort_session_options(self.clf.engine.session) if self.clf is not None else {}
        return {**super().describe(), "artifact": str(self.artifact), "variant": self.variant,
                "runtime": info, "session": session}

    def close(self) -> None:
        self.clf = None


# -- registry -------------------------------------------------------------------------------

def from_spec(spec: dict[str, Any]) -> Contender:
    """Rebuild a contender from its `spec` (used by the fresh-process children)."""
    kind = spec["kind"]
    if kind == "onnxpress":
        return Onnxpress(spec["artifact"], spec["variant"], spec.get("device", "cpu"))
    if kind in ("torch", "torch-compile"):
        cls = TorchCompiled if kind == "torch-compile" else TorchEager
        return cls(spec["checkpoint"], spec["max_length"], spec.get("artifact"), sort=spec.get("sort", False),
                   key=spec.get("key"))
    common = dict(artifact=spec.get("artifact"), key=spec.get("key"))
    if kind == "optimum":
        return OptimumORT(spec["checkpoint"], spec["max_length"], spec["cache_dir"], spec["quantize"], **common)
    if kind == "ct2":
        from onnxpress.benchmarks.ct2_contender import CTranslate2Int8

        return CTranslate2Int8(spec["checkpoint"], spec["max_length"], cache_dir=spec["cache_dir"], **common)
    if kind == "openvino":
        from onnxpress.benchmarks.openvino_contender import OpenVINOInt8

        return OpenVINOInt8(spec["checkpoint"], spec["max_length"], cache_dir=spec["cache_dir"], **common)
    raise ValueError(f"unknown contender kind {kind!r}")
