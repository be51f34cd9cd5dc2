"""Classifier checkpoint -> self-describing ONNX artifact, each variant validated and gated.

The `Converter` skeleton stages, stamps, writes the manifest and renames; this exporter adds
export (torch.onnx) -> fuse (ORT transformer optimizer) -> variants (fp32 fused, int8 dynamic,
int8 static QDQ, fp16), each built by the first rung of its remedy ladder that passes the
accuracy gate, measured by the runtime's `Engine` against PyTorch on real texts.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onnxpress.errors import UserError
from onnxpress.export import quantize as q
from onnxpress.export.classifier_checkpoint import inspect_checkpoint
from onnxpress.export.classifier_validation import (
    Batch,
    compare,
    encode,
    format_table,
    make_batches,
    onnx_logits,
    torch_logits,
)
from onnxpress.export.classifier_variants import (
    VARIANTS,
    Attempt,
    SourceGraphs,
    calibration_texts,
    ladder,
    needs_calibration,
    static_calibration_feeds,
    variant_record,
)
from onnxpress.export import converter
from onnxpress.export.converter import Converter, ExportResult
from onnxpress.export.gate import gate
from onnxpress.runtime.artifact import Manifest, TensorSpec, Variant
from onnxpress.runtime.classifier import softmax
from onnxpress.runtime.devices import CPU_EP
from onnxpress.runtime.gpu_check import DEFAULT_TOLERANCE, SAMPLE_KEY
from onnxpress.runtime.int8_gemm import int8_kernel

PROBE_ROWS = 256  # parity probe of the graphs other variants are built from


@dataclass
class ExportOptions:
    """Settings of the classifier export; `onnxpress export classifier` fills them by flag dest."""

    variants: Sequence[str] = ("fp32", "int8")
    opset: int = 17
    max_accuracy_drop: float = 0.5  # percentage points vs. the PyTorch checkpoint
    min_agreement: float = 0.0  # argmax agreement with PyTorch required (0 = not gated)
    fp32_tolerance: float = 1e-4  # max abs logit difference allowed for the fp32 graphs
    calibration_method: str = "minmax"
    static_activations: str = "int8"  # int8 (symmetric, TensorRT-ready) or uint8 (asymmetric, CPU only)
    calibration_batch: int = 8
    remedies: bool = True
    screen_rows: int | None = 1000  # remedies are first tried on this many rows (None or 0: always full eval)
    overwrite: bool = False
    force: bool = False  # the old name of `overwrite`
    threads: int | None = None
    max_batch: int = 64
    max_tokens: int = 4096
    progress: bool = True
    log: Callable[[str], None] | None = None

    def check(self) -> None:
        """Refuse settings that cannot work (a `UserError` naming the setting)."""
        parse_variants(self.variants)
        if self.static_activations not in ("int8", "uint8"):
            raise UserError(f"unknown activation type {self.static_activations!r} for int8-static (int8 or uint8)")
        if self.calibration_method.lower() not in q.CALIBRATION_METHODS:
            raise UserError(f"unknown calibration method {self.calibration_method!r} "
                            f"(choose from {', '.join(q.CALIBRATION_METHODS)})")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise UserError("--min-agreement must be between 0 and 1")


@dataclass
class ClassifierExportResult(ExportResult):
    """`report["rows"]`: one row per attempt, as `table` prints them."""

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.report["rows"]

    @property
    def table(self) -> str:
        return format_table(self.rows)


def parse_variants(spec: str | Sequence[str]) -> list[str]:
    """Classifier variant names from "fp32,int8" or a list, checked and deduplicated in order."""
    return converter.parse_variants(spec, VARIANTS)


@dataclass
class _Reference:
    """PyTorch's logits on the evaluation texts, and the batches that produced them."""

    ids: list[list[int]]
    batches: list[Batch]
    logits: np.ndarray
    accuracy: float


# Validation runs on ONNX Runtime's CPU provider; the runtime re-checks other providers at first
# load against this sample (runtime/gpu_check.py).
REFERENCE_SAMPLE_ROWS = 32


def reference_sample(texts: Sequence[str], logits: np.ndarray) -> dict[str, Any]:
    """The first evaluation texts with PyTorch's probabilities, stored for the runtime's GPU self-check."""
    n = min(REFERENCE_SAMPLE_ROWS, len(texts))
    return {"texts": [str(t) for t in texts[:n]], "expected": softmax(logits[:n]).round(6).tolist(),
            "tolerance": DEFAULT_TOLERANCE}


class ClassifierConverter(Converter[Any]):
    """A sequence-classifier checkpoint (Hugging Face layout) -> text-classification artifact.

    The variants are built during validation, by their remedy ladders: which file a variant
    ships depends on which attempt passes the gate.
    """

    def __init__(self, checkpoint: str | Path, *, eval_texts: Sequence[str], eval_labels: Sequence[int],
                 calibration_texts: Sequence[str] = (), options: ExportOptions | None = None,
                 data_description: dict[str, Any] | None = None):
        self.opt = options or ExportOptions()
        super().__init__(overwrite=self.opt.overwrite or self.opt.force, log=self.opt.log)
        self.checkpoint = Path(checkpoint)
        self.eval_texts = eval_texts
        self.labels = np.asarray(eval_labels, dtype=np.int64)
        self.calibration_texts = calibration_texts
        self.data_description = data_description or {}
        self.rows: list[dict[str, Any]] = []

    # -- the skeleton's steps ------------------------------------------------------------------------
    def _check(self) -> None:
        opt = self.opt
        opt.check()
        self.variants = parse_variants(opt.variants)
        self.info = info = inspect_checkpoint(self.checkpoint)
        labels = self.labels
        if len(self.eval_texts) == 0 or len(self.eval_texts) != len(labels):
            raise UserError(f"need evaluation texts with one label each (got {len(self.eval_texts)} texts, "
                            f"{len(labels)} labels)")
        if labels.min() < 0 or labels.max() >= len(info.labels):
            raise UserError(f"evaluation labels must be indices 0..{len(info.labels) - 1} of the model's labels")
        if "int8-static" in self.variants and len(self.calibration_texts) == 0:
            raise UserError("int8-static needs calibration texts")

    def _load(self) -> Any:
        import torch

        from onnxpress.training.modeling import load_classifier

        if self.opt.threads:
            torch.set_num_threads(self.opt.threads)
        return load_classifier(self.info.path)

    def _write(self, model: Any, staging: Path, work: Path) -> Manifest:
        import onnxruntime
        from tokenizers import Tokenizer

        from onnxpress.export.onnx_export import export_classifier_onnx
        from onnxpress.export.optimize import fuse_transformer

        info, config = self.info, model.config
        # the tokenizer as the runtime will see it: no padding or truncation baked in
        self.tokenizer = tokenizer = Tokenizer.from_file(str(info.tokenizer_file))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        tokenizer.save(str(staging / "tokenizer.json"))
        config.to_json_file(str(staging / "config.json"))  # lets Optimum's ORTModel load the artifact

        t0 = time.perf_counter()
        raw, fused = work / "raw.onnx", work / "fused.onnx"
        export_method = export_classifier_onnx(model, raw, opset=self.opt.opset)
        self.input_names = input_names = export_method["inputs"]
        num_layers = int(config.num_hidden_layers)
        fusion = fuse_transformer(raw, fused, num_heads=config.num_attention_heads, hidden_size=config.hidden_size,
                                  num_layers=num_layers)
        self.log(f"exported and fused in {time.perf_counter() - t0:.1f} s: {fusion['fused_nodes']}")
        if fusion["missing_fusions"]:
            self.log(f"warning: fusions missing vs. a fully fused BERT: {fusion['missing_fusions']}")
        self.graphs = SourceGraphs(raw=raw, fused=fused, num_layers=num_layers)
        self.work = work
        self.common_method = {"export": export_method, "fusion": fusion, "onnxruntime": onnxruntime.__version__}
        return Manifest(
            task="text-classification",
            max_length=info.max_length,
            tokenizers={"text": "tokenizer.json"},
            inputs=[TensorSpec(n, "int64", ["batch", "sequence"]) for n in input_names],
            outputs=[TensorSpec("logits", "float32", ["batch", len(info.labels)])],
            variants={},
            labels=info.labels,
            extra={
                "pad_token_id": info.pad_token_id,
                "uses_token_type_ids": "token_type_ids" in input_names,
                "padding_side": "right",
                "truncation": {"max_length": info.max_length, "source": info.max_length_source,
                               "note": "tokenizer.json has no padding/truncation set; apply them at run time"},
                "model_type": config.model_type,
                "architecture": (config.architectures or [None])[0],
                "hf_config": "config.json",
                "source_checkpoint": str(info.path.resolve()),
                "gate": {"max_accuracy_drop_points": self.opt.max_accuracy_drop,
                         "min_agreement": self.opt.min_agreement, "fp32_tolerance": self.opt.fp32_tolerance},
            },
        )

    def _validate(self, model: Any, staging: Path, manifest: Manifest) -> dict[str, Any]:
        self.rows = []
        ref = self._reference(model)
        self._probe_parity(ref)
        feeds = []
        if needs_calibration(self.variants):
            texts = calibration_texts(self.calibration_texts, self.eval_texts, self.data_description)
            feeds = static_calibration_feeds(texts, self.tokenizer, self.info, self.input_names,
                                             self.opt.calibration_batch)
        manifest.extra["reference"] = {"framework": "pytorch", "accuracy": ref.accuracy,
                                       "eval_rows": int(len(self.labels)), **self.data_description}
        manifest.extra[SAMPLE_KEY] = reference_sample(self.eval_texts, ref.logits)
        for variant in self.variants:
            attempts = ladder(variant, self.graphs, self.work, self.opt, feeds)
            manifest.variants[variant] = self._climb(variant, attempts, ref, staging)
            manifest.variants[variant].parity["validated_on"] = [CPU_EP]
            if manifest.variants[variant].precision == "int8":
                manifest.variants[variant].parity["int8_gemm"] = int8_kernel()
        for row in self.rows:
            row.setdefault("status", "")
        return {"rows": self.rows, "reference_accuracy": ref.accuracy}

    def _result(self, out: Path, manifest: Manifest, report: dict[str, Any]) -> ClassifierExportResult:
        return ClassifierExportResult(out=out, manifest=manifest, report=report)

    # -- validation ---------------------------------------------------------------------------------
    def _desc(self, text: str) -> str | None:
        return text if self.opt.progress else None

    def _batches(self, ids: Sequence[Sequence[int]]) -> list[Batch]:
        return make_batches(ids, self.input_names, self.info.pad_token_id, self.opt.max_batch, self.opt.max_tokens)

    def _reference(self, model: Any) -> _Reference:
        ids = encode(self.tokenizer, self.eval_texts, self.info.max_length)
        batches = self._batches(ids)
        t0 = time.perf_counter()
        logits = torch_logits(model, batches, self._desc("eval pytorch"))
        accuracy = float((logits.argmax(1) == self.labels).mean())
        self.log(f"PyTorch reference: accuracy {accuracy * 100:.2f}% on {len(self.labels)} texts "
                 f"({time.perf_counter() - t0:.1f} s)")
        self.rows.append({"variant": "pytorch", "attempt": "reference", "size": None, "accuracy": accuracy,
                          "accuracy_drop_points": 0.0, "argmax_agreement": 1.0, "max_abs_diff": 0.0,
                          "status": "reference"})
        return _Reference(ids, batches, logits, accuracy)

    def _probe_parity(self, ref: _Reference) -> None:
        """The graphs the variants are built from must match PyTorch (cheap: a few hundred rows)."""
        rows = np.arange(min(PROBE_ROWS, len(ref.ids)))
        probe = self._batches([ref.ids[i] for i in rows])
        for name, path in (("raw export", self.graphs.raw), ("fused fp32", self.graphs.fused)):
            self._check_fp32(name, compare(ref.logits[rows], onnx_logits(path, probe, self.opt.threads)))

    def _check_fp32(self, graph: str, parity: dict[str, Any]) -> None:
        if parity["max_abs_diff"] > self.opt.fp32_tolerance:
            raise UserError(
                f"parity check failed: the {graph} graph differs from PyTorch by {parity['max_abs_diff']:.3g} "
                f"(> {self.opt.fp32_tolerance:g}) on {parity['rows']} texts; nothing was written"
            )

    def _screen(self, ref: _Reference) -> tuple[np.ndarray, list[Batch]] | None:
        """A seeded sample that remedies are tried on first, when the evaluation set is large."""
        n = self.opt.screen_rows
        if not n or len(ref.ids) <= 2 * n:
            return None
        rows = np.sort(np.random.default_rng(0).choice(len(ref.ids), n, replace=False))
        return rows, self._batches([ref.ids[i] for i in rows])

    def _climb(self, variant: str, attempts: list[Attempt], ref: _Reference, staging: Path) -> Variant:
        """Try the ladder's attempts in order; the first that passes the gate is the variant."""
        screen = self._screen(ref) if len(attempts) > 1 else None
        chosen: Attempt | None = None
        tried: list[Attempt] = []
        for attempt in attempts:
            try:
                t0 = time.perf_counter()
                attempt.method.update(attempt.build(attempt.path))
                attempt.method["build_seconds"] = round(time.perf_counter() - t0, 2)
            except Exception as exc:  # a failed remedy is reported, the next one is tried
                attempt.reason = f"build failed: {type(exc).__name__}: {exc}"
                self.log(f"  {variant} [{attempt.name}]: {attempt.reason}")
                self.rows.append({"variant": variant, "attempt": attempt.name, "status": "failed"})
                tried.append(attempt)
                continue
            tried.append(attempt)
            if len(tried) > 1 and screen is not None:
                # A remedy is screened on a sample first; only one that passes there costs a full evaluation.
                rows, batches = screen
                self._evaluate(attempt, batches, ref.logits[rows], self.labels[rows])
                self._judge(attempt, float((ref.logits[rows].argmax(1) == self.labels[rows]).mean()), screened=True)
                if not attempt.passed:
                    attempt.reason = f"{attempt.reason} (screened on {len(rows)} rows)"
                    continue
                self.rows.pop()
            self._evaluate(attempt, ref.batches, ref.logits, self.labels)
            self._judge(attempt, ref.accuracy)
            if variant == "fp32":
                self._check_fp32("fp32", attempt.metrics)
            if attempt.passed:
                chosen = attempt
                break
            if not self.opt.remedies:
                break
        return variant_record(variant, chosen, tried, self.common_method, staging)

    def _evaluate(self, attempt: Attempt, batches: list[Batch], reference: np.ndarray, labels: np.ndarray) -> None:
        started = time.perf_counter()
        logits = onnx_logits(attempt.path, batches, self.opt.threads, self._desc(f"eval {attempt.variant}"))
        attempt.metrics = compare(reference, logits, labels)
        attempt.metrics["eval_seconds"] = round(time.perf_counter() - started, 2)

    def _judge(self, attempt: Attempt, reference_accuracy: float, screened: bool = False) -> None:
        attempt.passed, attempt.reason = gate(attempt.metrics, reference_accuracy, self.opt.max_accuracy_drop,
                                              self.opt.min_agreement)
        m = attempt.metrics
        screen_note = f" [screen: {m['rows']} rows]" if screened else ""
        self.log(
            f"  {attempt.variant} [{attempt.name}]: accuracy {m['accuracy'] * 100:.2f}% "
            f"(drop {m['accuracy_drop_points']:+.2f} pts), agreement {m['argmax_agreement'] * 100:.2f}%, "
            f"max |dlogit| {m['max_abs_diff']:.2e}{screen_note} "
            f"-> {'ok' if attempt.passed else 'REJECTED: ' + str(attempt.reason)}"
        )
        status = "ok" if attempt.passed else "rejected"
        self.rows.append(
            {"variant": attempt.variant, "attempt": attempt.name, "size": attempt.path.stat().st_size,
             **m, "status": f"{status} (screen {m['rows']} rows)" if screened else status}
        )


def export_classifier(
    checkpoint: str | Path,
    out: str | Path,
    *,
    eval_texts: Sequence[str],
    eval_labels: Sequence[int],
    calibration_texts: Sequence[str] = (),
    options: ExportOptions | None = None,
    data_description: dict[str, Any] | None = None,
) -> ClassifierExportResult:
    """Export `checkpoint` to the artifact directory `out`; see the module docstring.

    `eval_labels` are indices into the checkpoint's labels. Raises `UserError` on bad input
    or when the fp32 graph does not match PyTorch; in that case nothing is left at `out`.
    """
    exporter = ClassifierConverter(checkpoint, eval_texts=eval_texts, eval_labels=eval_labels,
                                   calibration_texts=calibration_texts, options=options,
                                   data_description=data_description)
    return exporter.convert(out)  # type: ignore[return-value]
