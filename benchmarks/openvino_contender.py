"""OpenVINO int8 as a benchmark peer: the checkpoint converted with `openvino.convert_model`,
quantized by NNCF post-training quantization (`ModelType.TRANSFORMER`) on calibration texts."""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from onnxpress.benchmarks.contenders.base import TokenBatch, softmax
from onnxpress.benchmarks.contenders.checkpoint_peer import CheckpointPeer, building, hf_tokenizer
from onnxpress.errors import UserError

CALIBRATION_TEXTS = 300


class OpenVINOInt8(CheckpointPeer):
    """NNCF-quantized OpenVINO IR on the CPU plugin (its default inference precision: bf16 where
    the CPU has avx512_bf16/AMX, so what NNCF leaves in float runs in bf16).

    Compiled the way OpenVINO recommends for throughput: `PERFORMANCE_HINT=THROUGHPUT` (the plugin
    picks the streams for the thread budget) and, for many texts, an `AsyncInferQueue` with the
    compiled model's optimal number of requests, so batches run on all streams at once, as
    onnxpress runs parallel batches."""

    family, kind, precision = "openvino", "openvino", "int8"
    name = "openvino-int8"

    def __init__(self, checkpoint: str | os.PathLike, max_length: int, artifact: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, key: str | None = None):
        super().__init__(checkpoint, max_length, artifact, cache_dir, key)
        self.compiled = self.request = self.queue = None
        self.stack = "OpenVINO int8 (NNCF PTQ, ModelType.TRANSFORMER)"

    @property
    def model_xml(self) -> Path:
        return self.built("openvino") / "model.xml"

    @property
    def calibration_file(self) -> Path:
        return self.cache_dir / "calibration_texts.txt"

    def prepare(self, cache_dir: Path | None = None) -> None:
        if self.model_xml.is_file():
            return
        import nncf
        import openvino as ov
        import torch

        if not self.calibration_file.is_file():
            raise UserError(f"{self.name}: no calibration texts at {self.calibration_file}")
        texts = [t for t in self.calibration_file.read_text(encoding="utf-8").splitlines() if t.strip()]
        model = self.load_torch_model()
        self.tokenizer = hf_tokenizer(self.checkpoint, self.artifact)
        padded = self.encode_padded(texts[:2])
        # `input` is positional: name the inputs in the order of the model's forward signature
        order = [k for k in inspect.signature(model.forward).parameters if k in padded]
        example = {k: torch.from_numpy(padded[k]) for k in order}
        dynamic = [(k, ov.PartialShape([-1, -1]), ov.Type.i64) for k in order]  # batch, sequence
        with torch.no_grad():
            ov_model = ov.convert_model(model, example_input=example, input=dynamic)
        for port, name in zip(ov_model.inputs, order):  # tracing may rename an input (e.g. to "64")
            port.get_tensor().set_names({name})
        names = [p.get_any_name() for p in ov_model.inputs]
        feeds = [{k: v for k, v in self.encode_padded([t]).items() if k in names} for t in texts]
        quantized = nncf.quantize(ov_model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(feeds))
        with building(self.model_xml.parent) as tmp:
            ov.save_model(quantized, tmp / "model.xml")
            (tmp / "labels.txt").write_text(
                "\n".join(model.config.id2label[i] for i in range(model.config.num_labels)) + "\n")

    def load(self, threads: int) -> None:
        import openvino as ov

        if not self.model_xml.is_file():
            raise UserError(f"{self.name}: no quantized model at {self.model_xml} (run prepare first)")
        core = ov.Core()
        self.compiled = core.compile_model(str(self.model_xml), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "THROUGHPUT"})
        self.request = self.compiled.create_infer_request()
        requests = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.queue = ov.AsyncInferQueue(self.compiled, requests)
        self._names = [p.get_any_name() for p in self.compiled.inputs]
        self._labels = self.model_xml.with_name("labels.txt").read_text(encoding="utf-8").split("\n")[:-1]
        self.tokenizer = hf_tokenizer(self.checkpoint, self.artifact)

    def prepare_tokens(self, batch: TokenBatch) -> Any:
        return {k: v for k, v in batch.feeds.items() if k in self._names}

    def run_tokens(self, prepared: Any) -> np.ndarray:
        return np.array(self.request.infer(prepared)[0], dtype=np.float32)

    def stream_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Length-sorted batches of `stream_batch_size`, in flight on every stream at once."""
        out = np.empty((len(texts), len(self.labels())), dtype=np.float32)

        def done(request: Any, rows: np.ndarray) -> None:
            out[rows] = request.get_output_tensor(0).data

        self.queue.set_callback(done)
        order = np.argsort(self.token_lengths(texts), kind="stable")
        for i in range(0, len(texts), self.stream_batch_size):
            rows = order[i:i + self.stream_batch_size]
            self.queue.start_async(self.prepare_tokens(TokenBatch(self.encode_padded([texts[j] for j in rows]))), rows)
        self.queue.wait_all()
        return softmax(out)

    def threads(self) -> dict[str, Any]:
        return {"compute": int(self.compiled.get_property("INFERENCE_NUM_THREADS")),
                "interop": int(self.compiled.get_property("NUM_STREAMS")),
                "how": "compile_model(INFERENCE_NUM_THREADS=N, PERFORMANCE_HINT=THROUGHPUT); NUM_STREAMS "
                       "is the plugin's choice"}

    def batching(self) -> str:
        return (f"length-sorted batches of {self.stream_batch_size}, padded to the longest, through an "
                "AsyncInferQueue (every stream busy)")

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {}
        if self.compiled is not None:
            info = {k: str(self.compiled.get_property(k)) for k in ("INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT",
                                                                     "EXECUTION_MODE_HINT", "NUM_STREAMS")}
        return {**super().describe(), "model": str(self.model_xml), "compiled": info,
                "quantization": f"nncf.quantize(ModelType.TRANSFORMER, {CALIBRATION_TEXTS} calibration texts)"}

    def close(self) -> None:
        self.compiled = self.request = self.queue = self.tokenizer = None


def write_calibration_texts(path: Path, fallback: Sequence[str], n: int = CALIBRATION_TEXTS) -> str:
    """`n` AG News *train* texts (never the test texts being scored), else the first of `fallback`.

    Returns where they came from, for the report.
    """
    from onnxpress.training.ag_news import SUBDIR, read_csv, read_label_names
    from onnxpress.training.data_root import find_dataset

    directory = find_dataset(None, SUBDIR, "train.csv")
    if directory is not None and (directory / "train.csv").is_file():
        texts, source = read_csv(directory / "train.csv", read_label_names(directory)).texts, "ag_news train"
        rng = np.random.default_rng(0)
        texts = [texts[i] for i in rng.choice(len(texts), size=min(n, len(texts)), replace=False)]
    else:
        texts, source = list(fallback[:n]), "the benchmark texts (no AG News train split found)"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
    return f"{len(texts)} texts from {source}"
