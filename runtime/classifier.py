"""Text classification on an onnxpress artifact: `Classifier.load(...).predict(texts)`."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from onnxpress.errors import UserError
from onnxpress.runtime.artifact import Artifact
from onnxpress.runtime.token_budget import (
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_BATCH_TOKENS,
    GPU_MAX_BATCH_SIZE,
    GPU_MAX_BATCH_TOKENS,
    TokenBudget,
    bucket_batch_size,
)
from onnxpress.runtime.devices import Accelerators
from onnxpress.runtime.engine import Engine
from onnxpress.runtime.gpu_check import ensure_gpu_checked
from onnxpress.runtime.loading import choose_for, engine_config, open_artifact, open_variant, token_budget
from onnxpress.runtime.parallel_runs import ParallelRuns, runs_for
from onnxpress.runtime.text_tokenizer import Encoded, TextTokenizer, check_texts

TASK = "text-classification"
KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
GRAPH_SEQ_MULTIPLE = 16  # sequence-length bucket for CUDA graphs
# Very long lists are tokenized and planned in slices: bounded memory, same sorting benefit.
MAX_TEXTS_PER_PLAN = 16384


@dataclass(frozen=True)
class Prediction:
    """Top label of one text. Unpacks as `(label, score)`; `truncated` says the text was cut."""

    label: str
    score: float
    truncated: bool = False

    def __iter__(self) -> Iterator[Any]:
        return iter((self.label, self.score))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> Any:
        return (self.label, self.score)[i]


@dataclass
class Scores:
    """Probabilities [n, n_labels] in input order, and which inputs were truncated."""

    probs: np.ndarray
    truncated: np.ndarray


def softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float32, copy=False)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class Classifier:
    """A loaded text classifier: one shared ONNX Runtime session, thread-safe `predict`.

    Texts are tokenized in one batch call, sorted by length, packed into batches under
    `max_batch_tokens` padded tokens and `max_batch_size` rows, run longest first (on CPU,
    `runs.workers` batches at a time), and the results put back in input order.
    """

    def __init__(self, artifact: Artifact, variant: str, engine: Engine, tokenizer: TextTokenizer,
                 budget: TokenBudget, fixed_shapes: bool = False, runs: ParallelRuns | None = None):
        manifest = artifact.manifest
        self.artifact = artifact
        self.variant = variant
        self.engine = engine
        self.device = engine.device
        self.tokenizer = tokenizer
        self.budget = budget
        self.fixed_shapes = fixed_shapes
        self.runs = runs or ParallelRuns(1)  # independent batches run side by side
        self.max_length = tokenizer.max_length
        unknown = [n for n in engine.input_names if n not in KNOWN_INPUTS]
        if unknown:
            raise UserError(f"model input(s) {unknown} are not supported (known: {', '.join(KNOWN_INPUTS)})")
        out_name = manifest.outputs[0].name if manifest.outputs else engine.output_names[0]
        self._out_index = engine.output_names.index(out_name) if out_name in engine.output_names else 0
        n_labels = _n_labels(manifest, engine)
        self.labels = list(manifest.labels) if manifest.labels else [f"LABEL_{i}" for i in range(n_labels)]
        if len(self.labels) != n_labels:
            raise UserError(f"manifest lists {len(self.labels)} labels but the model outputs {n_labels}")
        self._type_ids = "token_type_ids" in engine.input_names

    # -- loading -------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        variant: str = "auto",
        device: str = "auto",
        threads: int | None = None,
        *,
        accelerators: Accelerators | None = None,
        gpu_check: bool = True,
        **options: Any,
    ) -> "Classifier":
        """Open an artifact directory and start a session.

        variant: "auto" or a variant name from the manifest; device: "auto", "cpu", "cuda",
        "tensorrt"; threads: CPU threads (None: one per core). `options` are those of `open`
        (max_batch_tokens, max_batch_size, cuda_graphs, io_binding, mem_arena, session_config,
        verify, workers). `accelerators` injects the machine probe (tests). A variant
        validated only on CPU is checked against the artifact's reference sample on first GPU load.
        """
        artifact = open_artifact(path, TASK)
        variant, device = choose_for(artifact, variant, device, accelerators)
        classifier = cls.open(artifact, variant, device, threads, **options)
        if gpu_check:
            ensure_gpu_checked(classifier, classifier.predict_proba)
        return classifier

    @classmethod
    def open(
        cls,
        artifact: str | os.PathLike | Artifact,
        variant: str,
        device: str,
        threads: int | None = None,
        *,
        max_batch_tokens: int | None = None,
        max_batch_size: int | None = None,
        cuda_graphs: bool = False,
        io_binding: bool | None = None,
        mem_arena: bool = True,
        session_config: dict[str, str] | None = None,
        verify: bool = True,
        workers: int | str = "auto",
    ) -> "Classifier":
        """Serve `variant` on `device` exactly as given: no auto choice and no device check
        (export validation runs any variant on CPU through this). workers: batches run in parallel
        on CPU, sharing `threads` (`parallel_runs.split_threads`; "auto" by model size; 1 for the
        lowest latency of a single small request)."""
        opened = open_variant(open_artifact(artifact, TASK), variant, device, ("model",), verify)
        runs, threads = runs_for(device, threads, opened.models["model"], opened.spec.precision, workers)
        manifest = opened.artifact.manifest
        if cuda_graphs and device == "cpu":
            raise UserError("cuda_graphs needs a CUDA device (device='cuda' or 'tensorrt')")
        tok_name = manifest.tokenizers.get("text")
        if not tok_name:
            raise UserError(f"manifest of {opened.artifact.root} names no 'text' tokenizer; re-export the artifact")
        tokenizer = TextTokenizer(opened.file(tok_name), manifest.max_length,
                                  pad_id=manifest.extra.get("pad_token_id"))
        gpu = device != "cpu"
        budget = token_budget(max_batch_tokens, max_batch_size,
                              GPU_MAX_BATCH_TOKENS if gpu else DEFAULT_MAX_BATCH_TOKENS,
                              GPU_MAX_BATCH_SIZE if gpu else DEFAULT_MAX_BATCH_SIZE,
                              pad_to_multiple=GRAPH_SEQ_MULTIPLE if cuda_graphs else 1)
        config = engine_config(opened, threads, io_binding=io_binding, cuda_graphs=cuda_graphs,
                               mem_arena=mem_arena, session_config=session_config, budget=budget,
                               profile_inputs=manifest.inputs)
        engine = Engine(opened.models["model"], config)
        # fixed-shape buckets only pay when a captured graph replays them
        return cls(opened.artifact, variant, engine, tokenizer, budget, fixed_shapes=engine.cuda_graphs,
                   runs=runs)

    @property
    def output_index(self) -> int:
        """Position of the logits among `engine.run(...)` outputs."""
        return self._out_index

    # -- inference -----------------------------------------------------------------
    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Top label and its probability per text, in input order."""
        scores = self.classify(texts)
        if len(scores.probs) == 0:
            return []
        top = scores.probs.argmax(axis=1)
        best = scores.probs[np.arange(len(top)), top]
        return [Prediction(self.labels[k], float(p), bool(t)) for k, p, t in zip(top, best, scores.truncated)]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities [n, n_labels] (columns in `labels` order), in input order."""
        return self.classify(texts).probs

    def classify(self, texts: Sequence[str]) -> Scores:
        """Probabilities and truncation flags; `TypeError` names the first non-str item."""
        texts = check_texts(texts)
        if not texts:
            return Scores(np.zeros((0, len(self.labels)), np.float32), np.zeros(0, bool))
        if len(texts) <= MAX_TEXTS_PER_PLAN:
            encoded = self.encode(texts)
            return Scores(self.infer(encoded), encoded.truncated)
        parts = [self.classify(texts[i : i + MAX_TEXTS_PER_PLAN]) for i in range(0, len(texts), MAX_TEXTS_PER_PLAN)]
        return Scores(np.concatenate([p.probs for p in parts]), np.concatenate([p.truncated for p in parts]))

    def encode(self, texts: Sequence[str]) -> Encoded:
        """Tokenize (batch, truncating at max_length); for callers that batch themselves."""
        return self.tokenizer.encode(texts, with_type_ids=self._type_ids)

    def infer(self, encoded: Encoded) -> np.ndarray:
        """Probabilities for pre-tokenized rows, in their order (planned under the token budget)."""
        logits = np.empty((len(encoded), len(self.labels)), dtype=np.float32)
        batches = list(self.budget.plan(encoded.lengths))
        for batch, out in zip(batches, self.runs.map(lambda b: self.run_batch(encoded, b.indices, b.length), batches)):
            logits[batch.indices] = out
        return softmax(logits)

    def run_batch(self, encoded: Encoded, rows: np.ndarray, length: int) -> np.ndarray:
        """Logits [len(rows), n_labels] for `rows` padded to `length` tokens: one model run."""
        size = len(rows)
        padded_rows = bucket_batch_size(size, self.budget.max_batch_size) if self.fixed_shapes else size
        input_ids, mask, type_ids = encoded.pad(rows, length, self.tokenizer.pad_id, batch_size=padded_rows)
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if type_ids is not None:
            feeds["token_type_ids"] = type_ids
        if self.fixed_shapes:
            out = self.engine.run_fixed(feeds, [(padded_rows, len(self.labels))] * len(self.engine.output_names))
        else:
            out = self.engine.run(feeds)
        return np.asarray(out[self._out_index][:size], dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {
            "artifact": str(self.artifact.root), "variant": self.variant, "device": self.device,
            "max_length": self.max_length, "labels": self.labels,
            "max_batch_tokens": self.budget.max_batch_tokens, "max_batch_size": self.budget.max_batch_size,
            "parallel_batches": self.runs.workers, **self.engine.describe(),
        }

    def __repr__(self) -> str:
        return f"Classifier({str(self.artifact.root)!r}, variant={self.variant!r}, device={self.device!r})"


def _n_labels(manifest: Any, engine: Engine) -> int:
    if manifest.outputs and manifest.outputs[0].shape:  # else (a damaged manifest) the graph says
        last = manifest.outputs[0].shape[-1]
        if isinstance(last, int):
            return last
    shape = engine.session.get_outputs()[0].shape
    if isinstance(shape[-1], int):
        return shape[-1]
    if manifest.labels:
        return len(manifest.labels)
    raise UserError("cannot tell the number of labels: no labels and no static output shape")
