"""CTranslate2 int8 `Encoder` as a benchmark peer: the BERT encoder converted by ctranslate2's
`TransformersConverter`, the classification head applied in numpy."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from onnxpress.benchmarks.contenders.base import TokenBatch
from onnxpress.benchmarks.contenders.checkpoint_peer import CheckpointPeer, building, hf_tokenizer
from onnxpress.errors import UserError


class CTranslate2Int8(CheckpointPeer):
    """`ctranslate2.Encoder(compute_type="int8")` + the checkpoint's head (mean or CLS pooling)."""

    family, kind, precision = "ct2", "ct2", "int8"
    name = "ctranslate2-int8"

    def __init__(self, checkpoint: str | os.PathLike, max_length: int, artifact: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, key: str | None = None):
        super().__init__(checkpoint, max_length, artifact, cache_dir, key)
        self.encoder = None
        self.stack = "CTranslate2 int8 Encoder (TransformersConverter), head in numpy"

    @property
    def model_dir(self) -> Path:
        return self.built("ct2")

    def prepare(self, cache_dir: Path | None = None) -> None:
        if (self.model_dir / "model.bin").is_file():
            return
        import ctranslate2
        from transformers import BertModel

        model = self.load_torch_model()
        if model.config.model_type != "bert":
            raise UserError(f"{self.name}: only BERT encoders are converted here (got {model.config.model_type})")
        with building(self.model_dir) as tmp:
            # The converter wants a BertModel with a pooler; the mean-pooling head has none, and
            # its (random) pooler is never used below.
            source = tmp / "hf"
            encoder = BertModel(model.config, add_pooling_layer=True)
            encoder.load_state_dict(model.bert.state_dict(), strict=False)
            encoder.save_pretrained(source)
            hf_tokenizer(self.checkpoint, self.artifact).save_pretrained(source)
            ctranslate2.converters.TransformersConverter(str(source)).convert(
                str(tmp / "ct2"), quantization="int8", force=True)
            for p in (tmp / "ct2").iterdir():
                p.rename(tmp / p.name)
            shutil.rmtree(source)
            (tmp / "ct2").rmdir()
            head = model.classifier
            np.savez(tmp / "head.npz", weight=head.weight.detach().numpy(), bias=head.bias.detach().numpy(),
                     pooling=np.array("cls" if _uses_pooler(model) else "mean"),
                     labels=np.array([model.config.id2label[i] for i in range(model.config.num_labels)]))

    def load(self, threads: int) -> None:
        import ctranslate2

        if not (self.model_dir / "model.bin").is_file():
            raise UserError(f"{self.name}: no converted model in {self.model_dir} (run prepare first)")
        self._threads = threads
        self.encoder = ctranslate2.Encoder(str(self.model_dir), device="cpu", compute_type="int8",
                                           intra_threads=threads, inter_threads=1)
        head = np.load(self.model_dir / "head.npz")
        self.weight, self.bias = head["weight"].astype(np.float32), head["bias"].astype(np.float32)
        self.pooling = str(head["pooling"])
        self._labels = [str(x) for x in head["labels"]]
        self.tokenizer = hf_tokenizer(self.checkpoint, self.artifact)

    def prepare_tokens(self, batch: TokenBatch) -> Any:
        return batch.feeds

    def run_tokens(self, prepared: Any) -> np.ndarray:
        import ctranslate2

        ids = prepared["input_ids"].astype(np.int32)
        mask = prepared["attention_mask"]
        lengths = mask.sum(axis=1).astype(np.int32)
        out = self.encoder.forward_batch(ctranslate2.StorageView.from_array(ids),
                                         ctranslate2.StorageView.from_array(lengths))
        if self.pooling == "cls":
            pooled = np.asarray(out.pooler_output, dtype=np.float32)
        else:
            hidden = np.asarray(out.last_hidden_state, dtype=np.float32)
            m = mask[:, :hidden.shape[1], None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        return pooled @ self.weight.T + self.bias

    def threads(self) -> dict[str, Any]:
        # CTranslate2 has no getter: report what the Encoder was built with
        return {"compute": self._threads, "interop": 1, "how": "ctranslate2.Encoder(intra_threads=N, inter_threads=1)"}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": str(self.model_dir), "pooling": getattr(self, "pooling", None),
                "quantization": "TransformersConverter(quantization='int8'), compute_type int8"}

    def close(self) -> None:
        self.encoder = self.tokenizer = None


def _uses_pooler(model: Any) -> bool:
    """True for BertForSequenceClassification (pooler + head), False for the mean-pooling head."""
    return type(model).__name__ == "BertForSequenceClassification"
