"""Classifier checkpoint -> self-describing ONNX artifact, each variant validated and gated.

Pipeline: export (torch.onnx) -> fuse (ORT transformer optimizer) -> variants
(fp32 fused, int8 dynamic, int8 static QDQ, fp16) -> validation against PyTorch on real
texts -> accuracy gate with remedies -> artifact dir (written to a temp dir, renamed at the end).
"""
from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from onnxpress.errors import UserError
from onnxpress.export import quantize as q
from onnxpress.export.manifest import check_output_dir, model_opset, staged_directory, utc_now, versions
from onnxpress.export.optimize import fuse_transformer
from onnxpress.export.validate import (
    Batch,
    compare,
    encode,
    format_table,
    gate,
    make_batches,
    onnx_logits,
    torch_logits,
)
from onnxpress.runtime.artifact import Manifest, TensorSpec, Variant

VARIANTS = ("fp32", "int8", "int8-static", "fp16")
FILE_NAMES = {
    "fp32": "model.onnx",
    "int8": "model.int8.onnx",
    "int8-static": "model.int8-static.onnx",
    "fp16": "model.fp16.onnx",
}
PRECISIONS = {"fp32": "fp32", "int8": "int8", "int8-static": "int8", "fp16": "fp16"}
DEVICES = {"fp32": ["cpu", "cuda"], "int8": ["cpu"], "int8-static": ["cpu", "tensorrt"], "fp16": ["cuda"]}
CLASSIFIER_ARCH = re.compile(r"(ForSequenceClassification|ForMeanPooledClassification)$")
MAX_LENGTH_CAP = 512
PROBE_ROWS = 256  # parity probe of the graphs other variants are built from


@dataclass
class ExportOptions:
    variants: Sequence[str] = ("fp32", "int8")
    opset: int = 17
    max_accuracy_drop: float = 0.5  # percentage points vs. the PyTorch checkpoint
    min_agreement: float = 0.0  # argmax agreement with PyTorch required (0 = not gated)
    fp32_tolerance: float = 1e-4  # max abs logit difference allowed for the fp32 graphs
    calibration_method: str = "minmax"
    static_activations: str = "int8"  # int8 (symmetric, TensorRT-ready) or uint8 (asymmetric, CPU only)
    calibration_batch: int = 8
    remedies: bool = True
    screen_rows: int | None = 1000  # remedies are first tried on this many rows (None: always full eval)
    force: bool = False
    threads: int | None = None
    max_batch: int = 64
    max_tokens: int = 4096
    progress: bool = True
    log: Callable[[str], None] | None = None


@dataclass
class CheckpointInfo:
    path: Path
    config: Any
    labels: list[str]
    tokenizer_file: Path
    max_length: int
    max_length_source: str
    pad_token_id: int


@dataclass
class Attempt:
    variant: str
    name: str
    path: Path | None = None
    method: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    passed: bool = False
    reason: str | None = None

    def summary(self) -> dict[str, Any]:
        return {"attempt": self.name, "passed": self.passed, "reason": self.reason, "settings": self.method,
                "metrics": self.metrics}


@dataclass
class ExportResult:
    out: Path
    manifest: Manifest
    rows: list[dict[str, Any]]

    @property
    def table(self) -> str:
        return format_table(self.rows)


def parse_variants(spec: str | Sequence[str]) -> list[str]:
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise UserError(f"unknown variant {unknown[0]!r} (choose from {', '.join(VARIANTS)})")
    if not names:
        raise UserError(f"no variants requested (choose from {', '.join(VARIANTS)})")
    return list(dict.fromkeys(names))


def inspect_checkpoint(path: str | Path) -> CheckpointInfo:
    """Check that `path` is a sequence-classifier checkpoint with a fast tokenizer, without loading weights."""
    from transformers import AutoConfig

    path = Path(path)
    if not path.is_dir():
        raise UserError(f"checkpoint directory not found: {path}")
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a model checkpoint (no config.json)")
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path / 'config.json'}: {exc}") from None
    archs = config.architectures or []
    if not any(CLASSIFIER_ARCH.search(a) for a in archs):
        raise UserError(
            f"{path} is not a sequence classifier (architectures: {', '.join(archs) or 'none'}); "
            "export the checkpoint written by `onnxpress train classifier`"
        )
    tokenizer_file = path / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise UserError(f"{path} has no tokenizer.json (a fast tokenizer saved with the checkpoint is required)")
    labels = [config.id2label[i] for i in sorted(config.id2label)]
    max_length, source = _max_length(path, config)
    return CheckpointInfo(path, config, labels, tokenizer_file, max_length, source, _pad_token_id(path, config))


def _max_length(path: Path, config: Any) -> tuple[int, str]:
    limit = int(getattr(config, "max_position_embeddings", MAX_LENGTH_CAP) or MAX_LENGTH_CAP)
    training = path / "training.json"
    if training.is_file():
        value = json.loads(training.read_text()).get("max_length")
        if value:
            return min(int(value), limit), "training.json"
    tok_config = path / "tokenizer_config.json"
    if tok_config.is_file():
        value = json.loads(tok_config.read_text()).get("model_max_length")
        if isinstance(value, (int, float)) and value > 0:
            return int(min(value, MAX_LENGTH_CAP, limit)), "tokenizer_config.json (capped)"
    return min(MAX_LENGTH_CAP, limit), "default"


def _pad_token_id(path: Path, config: Any) -> int:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tok_config = path / "tokenizer_config.json"
    if tok_config.is_file():
        pad = json.loads(tok_config.read_text()).get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        if pad and tokenizer.token_to_id(pad) is not None:
            return int(tokenizer.token_to_id(pad))
    if tokenizer.padding and tokenizer.padding.get("pad_id") is not None:
        return int(tokenizer.padding["pad_id"])
    return int(config.pad_token_id or 0)


# -- sensitive nodes, for the remedy ladder ------------------------------------------------------
_LAYER = re.compile(r"layer\.(\d+)/")


def sensitive_nodes(model_path: str | Path, groups: Sequence[str], num_layers: int) -> list[str]:
    """Names of nodes in `groups` ("embeddings", "head", "first_layer", "last_layer") of a BERT graph."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    wanted_layers = set()
    if "first_layer" in groups:
        wanted_layers.add(0)
    if "last_layer" in groups:
        wanted_layers.add(num_layers - 1)
    names, attention_index = [], 0
    for node in graph.node:
        layer = None
        if node.op_type in ("Attention", "MultiHeadAttention"):
            layer, attention_index = attention_index, attention_index + 1  # fused nodes lose the scope name
        elif m := _LAYER.search(node.name):
            layer = int(m.group(1))
        if layer is not None and layer in wanted_layers:
            names.append(node.name)
        elif "embeddings" in groups and (node.op_type == "EmbedLayerNormalization" or "/embeddings/" in node.name):
            names.append(node.name)
        elif "head" in groups and ("/classifier/" in node.name or "/pooler/" in node.name):
            names.append(node.name)
    return names


# -- the exporter -----------------------------------------------------------------------------------
class _Exporter:
    def __init__(self, info: CheckpointInfo, options: ExportOptions, work: Path):
        self.info = info
        self.opt = options
        self.work = work
        self.log = options.log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.rows: list[dict[str, Any]] = []

    def desc(self, text: str) -> str | None:
        return text if self.opt.progress else None

    def evaluate(self, attempt: Attempt, batches: list[Batch], reference: np.ndarray, labels: np.ndarray) -> None:
        started = time.perf_counter()
        logits = onnx_logits(attempt.path, batches, self.opt.threads, self.desc(f"eval {attempt.variant}"))
        attempt.metrics = compare(reference, logits, labels)
        attempt.metrics["eval_seconds"] = round(time.perf_counter() - started, 2)

    def judge(self, attempt: Attempt, reference_accuracy: float, screened: bool = False) -> None:
        attempt.passed, attempt.reason = gate(
            attempt.metrics, reference_accuracy, self.opt.max_accuracy_drop, self.opt.min_agreement
        )
        m = attempt.metrics
        screen_note = f" [screen: {m['rows']} rows]" if screened else ""
        self.log(
            f"  {attempt.variant} [{attempt.name}]: accuracy {m['accuracy'] * 100:.2f}% "
            f"(drop {m['accuracy_drop_points']:+.2f} pts), agreement {m['argmax_agreement'] * 100:.2f}%, "
            f"max |dlogit| {m['max_abs_diff']:.2e}{screen_note} "
            f"-> {'ok' if attempt.passed else 'REJECTED: ' + attempt.reason}"
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
) -> ExportResult:
    """Export `checkpoint` to the artifact directory `out`; see the module docstring.

    `eval_labels` are indices into the checkpoint's labels. Raises `UserError` on bad input
    or when the fp32 graph does not match PyTorch; in that case nothing is left at `out`.
    """
    opt = options or ExportOptions()
    variants = parse_variants(opt.variants)
    out = Path(out)
    info = inspect_checkpoint(checkpoint)
    if len(eval_texts) == 0 or len(eval_texts) != len(eval_labels):
        raise UserError(f"need evaluation texts with one label each (got {len(eval_texts)} texts, {len(eval_labels)} labels)")
    labels = np.asarray(eval_labels, dtype=np.int64)
    if labels.min() < 0 or labels.max() >= len(info.labels):
        raise UserError(f"evaluation labels must be indices 0..{len(info.labels) - 1} of the model's labels")
    if "int8-static" in variants and len(calibration_texts) == 0:
        raise UserError("int8-static needs calibration texts")
    if opt.static_activations not in ("int8", "uint8"):
        raise UserError(f"unknown activation type {opt.static_activations!r} for int8-static (int8 or uint8)")
    if opt.calibration_method.lower() not in q.CALIBRATION_METHODS:
        raise UserError(
            f"unknown calibration method {opt.calibration_method!r} (choose from {', '.join(q.CALIBRATION_METHODS)})"
        )
    check_output_dir(out, opt.force)

    with tempfile.TemporaryDirectory(prefix="onnxpress-export-") as tmp, staged_directory(out) as staging:
        manifest = _run(info, variants, opt, Path(tmp), staging, eval_texts, labels, calibration_texts,
                        data_description or {})
        rows = manifest.extra.pop("_rows")
        manifest.save(staging)
    return ExportResult(out=out, manifest=manifest, rows=rows)


def _run(
    info: CheckpointInfo,
    variants: list[str],
    opt: ExportOptions,
    work: Path,
    staging: Path,
    eval_texts: Sequence[str],
    labels: np.ndarray,
    calibration_texts: Sequence[str],
    data_description: dict[str, Any],
) -> Manifest:
    import onnxruntime
    import torch
    from tokenizers import Tokenizer

    from onnxpress.export.onnx_export import export_classifier_onnx
    from onnxpress.training.modeling import load_classifier

    ex = _Exporter(info, opt, work)
    log = ex.log
    if opt.threads:
        torch.set_num_threads(opt.threads)
    model = load_classifier(info.path)
    config = model.config
    num_layers = int(config.num_hidden_layers)

    # 1. tokenizer, as the runtime will see it: no padding or truncation baked in
    tokenizer = Tokenizer.from_file(str(info.tokenizer_file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    tokenizer.save(str(staging / "tokenizer.json"))
    config.to_json_file(str(staging / "config.json"))  # lets Optimum's ORTModel load the artifact

    # 2. export + fuse
    t0 = time.perf_counter()
    raw = work / "raw.onnx"
    export_method = export_classifier_onnx(model, raw, opset=opt.opset)
    input_names = export_method["inputs"]
    fused = work / "fused.onnx"
    fusion = fuse_transformer(raw, fused, num_heads=config.num_attention_heads, hidden_size=config.hidden_size,
                              num_layers=num_layers)
    log(f"exported and fused in {time.perf_counter() - t0:.1f} s: {fusion['fused_nodes']}")
    if fusion["missing_fusions"]:
        log(f"warning: fusions missing vs. a fully fused BERT: {fusion['missing_fusions']}")

    # 3. reference logits from PyTorch on the evaluation texts
    ids = encode(tokenizer, eval_texts, info.max_length)
    batches = make_batches(ids, input_names, info.pad_token_id, opt.max_batch, opt.max_tokens)
    t0 = time.perf_counter()
    reference = torch_logits(model, batches, ex.desc("eval pytorch"))
    reference_accuracy = float((reference.argmax(1) == labels).mean())
    log(f"PyTorch reference: accuracy {reference_accuracy * 100:.2f}% on {len(labels)} texts "
        f"({time.perf_counter() - t0:.1f} s)")
    ex.rows.append({"variant": "pytorch", "attempt": "reference", "size": None, "accuracy": reference_accuracy,
                    "accuracy_drop_points": 0.0, "argmax_agreement": 1.0, "max_abs_diff": 0.0, "status": "reference"})

    # 4. parity probe of the graphs the variants are built from (cheap, always)
    probe_rows = np.arange(min(PROBE_ROWS, len(ids)))
    probe = make_batches([ids[i] for i in probe_rows], input_names, info.pad_token_id, opt.max_batch, opt.max_tokens)
    probe_ref = reference[probe_rows]
    for name, path in (("raw export", raw), ("fused fp32", fused)):
        parity = compare(probe_ref, onnx_logits(path, probe, opt.threads))
        if parity["max_abs_diff"] > opt.fp32_tolerance:
            raise UserError(
                f"parity check failed: the {name} graph differs from PyTorch by {parity['max_abs_diff']:.3g} "
                f"(> {opt.fp32_tolerance:g}) on {parity['rows']} texts; nothing was written"
            )
    common_method = {"export": export_method, "fusion": fusion, "onnxruntime": onnxruntime.__version__}

    # 5. variants, each with its remedy ladder
    screen = None
    if opt.screen_rows and len(ids) > 2 * opt.screen_rows:
        rows_s = np.sort(np.random.default_rng(0).choice(len(ids), opt.screen_rows, replace=False))
        screen = (rows_s, make_batches([ids[i] for i in rows_s], input_names, info.pad_token_id, opt.max_batch,
                                       opt.max_tokens))
    built: dict[str, Variant] = {}
    for variant in variants:
        attempts = _attempts(variant, ex, fused, raw, calibration_texts, tokenizer, input_names, num_layers)
        chosen: Attempt | None = None
        tried: list[Attempt] = []
        for attempt in attempts:
            build = attempt.method.pop("_build")
            try:
                t0 = time.perf_counter()
                attempt.method.update(build())
                attempt.method["build_seconds"] = round(time.perf_counter() - t0, 2)
            except Exception as exc:  # a failed remedy is reported, the next one is tried
                attempt.reason = f"build failed: {type(exc).__name__}: {exc}"
                log(f"  {variant} [{attempt.name}]: {attempt.reason}")
                ex.rows.append({"variant": variant, "attempt": attempt.name, "status": "failed"})
                tried.append(attempt)
                continue
            tried.append(attempt)
            if len(tried) > 1 and screen is not None:
                # A remedy is screened on a sample first; only one that passes there costs a full evaluation.
                rows_s, batches_s = screen
                ex.evaluate(attempt, batches_s, reference[rows_s], labels[rows_s])
                ex.judge(attempt, float((reference[rows_s].argmax(1) == labels[rows_s]).mean()), screened=True)
                if not attempt.passed:
                    attempt.reason = f"{attempt.reason} (screened on {len(rows_s)} rows)"
                    continue
                ex.rows.pop()
            ex.evaluate(attempt, batches, reference, labels)
            ex.judge(attempt, reference_accuracy)
            if variant == "fp32" and attempt.metrics["max_abs_diff"] > opt.fp32_tolerance:
                raise UserError(
                    f"parity check failed: fp32 differs from PyTorch by {attempt.metrics['max_abs_diff']:.3g} "
                    f"(> {opt.fp32_tolerance:g}) on {attempt.metrics['rows']} texts; nothing was written"
                )
            if attempt.passed:
                chosen = attempt
                break
            if not opt.remedies:
                break
        built[variant] = _variant_record(variant, chosen, tried, common_method, staging)
    for row in ex.rows:
        row.setdefault("status", "")

    manifest = Manifest(
        task="text-classification",
        max_length=info.max_length,
        tokenizers={"text": "tokenizer.json"},
        inputs=[TensorSpec(n, "int64", ["batch", "sequence"]) for n in input_names],
        outputs=[TensorSpec("logits", "float32", ["batch", len(info.labels)])],
        variants=built,
        labels=info.labels,
        versions=versions(),
        created=utc_now(),
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
            "reference": {"framework": "pytorch", "accuracy": reference_accuracy, "eval_rows": int(len(labels)),
                          **data_description},
            "gate": {"max_accuracy_drop_points": opt.max_accuracy_drop, "min_agreement": opt.min_agreement,
                     "fp32_tolerance": opt.fp32_tolerance},
            "_rows": ex.rows,
        },
    )
    return manifest


def _attempts(
    variant: str,
    ex: _Exporter,
    fused: Path,
    raw: Path,
    calibration_texts: Sequence[str],
    tokenizer: Any,
    input_names: Sequence[str],
    num_layers: int,
) -> list[Attempt]:
    """The remedy ladder of `variant`: attempts in order, each with a deferred `_build`."""
    work, opt = ex.work, ex.opt
    out: list[Attempt] = []

    def add(name: str, build: Callable[[Path], dict[str, Any]]) -> None:
        path = work / f"{variant}.{len(out)}.onnx"
        out.append(Attempt(variant, name, path, {"_build": lambda: build(path)}))

    if variant == "fp32":
        add("fused", lambda p: (shutil.copyfile(fused, p), {"kind": "fp32", "graph": "fused"})[1])
    elif variant == "fp16":
        def fp16(p: Path) -> dict[str, Any]:
            method = q.convert_fp16(fused, p, keep_io_types=True)
            method["structure"] = q.float16_summary(p)
            method["checked_on"] = "CPUExecutionProvider (no GPU here: parity/accuracy measured on CPU, speed not)"
            return method
        add("fp16, fp32 IO", fp16)
    elif variant == "int8":
        ladder = [("per-channel", ()), ("per-channel, fp32 embeddings+head", ("embeddings", "head")),
                  ("per-channel, fp32 embeddings+head+layer 0", ("embeddings", "head", "first_layer"))]
        for name, groups in ladder:
            def dyn(p: Path, groups=groups) -> dict[str, Any]:
                excluded = sensitive_nodes(fused, groups, num_layers) if groups else []
                method = q.quantize_int8_dynamic(fused, p, per_channel=True, nodes_to_exclude=excluded)
                method["excluded_groups"] = list(groups)
                return _checked_quantized(p, method)
            add(name, dyn)
    elif variant == "int8-static":
        feeds = _calibration_feeds(calibration_texts, tokenizer, ex.info, input_names, opt.calibration_batch)
        first = opt.calibration_method.lower()
        methods = [first] + [m for m in ("minmax", "percentile", "entropy") if m != first]
        act = opt.static_activations
        # Symmetric int8 activations are what TensorRT consumes; asymmetric uint8 ones (U8S8, what
        # ORT advises for x86) halve the logit error on CPU but make the build CPU-only.
        ladder = [(m, m, act, ()) for m in methods]
        if act == "int8":
            ladder.append((f"{first}, uint8 activations (CPU only)", first, "uint8", ()))
        ladder += [
            (f"{first}, {ladder[-1][2]} activations, fp32 embeddings+head", first, ladder[-1][2],
             ("embeddings", "head")),
            (f"{first}, {ladder[-1][2]} activations, fp32 embeddings+head+layer 0", first, ladder[-1][2],
             ("embeddings", "head", "first_layer")),
        ]
        for label, method_name, act_type, groups in ladder:
            def static(p: Path, method_name=method_name, act_type=act_type, groups=groups) -> dict[str, Any]:
                excluded = sensitive_nodes(raw, groups, num_layers) if groups else []
                method = q.quantize_int8_static(raw, p, q.FeedsReader(feeds), method=method_name,
                                                activation_type=act_type, op_types=("MatMul", "Gather"),
                                                nodes_to_exclude=excluded)
                method["calibration_texts"] = len(calibration_texts)
                method["excluded_groups"] = list(groups)
                return _checked_quantized(p, method)
            add(label, static)
    if not opt.remedies:
        out = out[:1]
    return out


def _checked_quantized(path: Path, method: dict[str, Any]) -> dict[str, Any]:
    """Record what got quantized; an attempt whose exclusions left nothing quantized is no int8 model."""
    method["quantization"] = q.quantization_summary(path)
    if method["quantization"]["quantized_weight_nodes"] == 0:
        raise ValueError("no weight was quantized (every quantizable node excluded)")
    return method


def _calibration_feeds(
    texts: Sequence[str], tokenizer: Any, info: CheckpointInfo, input_names: Sequence[str], batch: int
) -> list[dict[str, np.ndarray]]:
    # Equal shapes across batches: ORT's histogram calibrators (Entropy, Percentile) stack them.
    ids = encode(tokenizer, texts, info.max_length)
    width = max(len(x) for x in ids)
    batches = make_batches(ids, input_names, info.pad_token_id, max_batch=batch, max_tokens=batch * width,
                           pad_to=width)
    return [b.feeds for b in batches]


def _variant_record(
    variant: str, chosen: Attempt | None, tried: list[Attempt], common: dict[str, Any], staging: Path
) -> Variant:
    attempts = [a.summary() for a in tried]
    if chosen is None:
        last = tried[-1] if tried else None
        return Variant(
            files={},
            precision=PRECISIONS[variant],
            devices=DEVICES[variant],
            opset=0,
            servable=False,
            method={**common, "attempts": attempts},
            reason=f"rejected by the accuracy gate after {len(tried)} attempt(s); last: "
            f"{last.reason if last else 'none'}",
        )
    file_name = FILE_NAMES[variant]
    assert chosen.path is not None
    shutil.move(str(chosen.path), staging / file_name)
    metrics = dict(chosen.metrics)
    parity = {k: metrics.pop(k) for k in ("rows", "max_abs_diff", "mean_abs_diff", "argmax_agreement")}
    parity["against"] = "pytorch fp32 checkpoint, same token ids"
    parity["provider"] = "CPUExecutionProvider"
    devices = DEVICES[variant]
    if chosen.method.get("activation_type") == "uint8":
        devices = ["cpu"]  # TensorRT takes symmetric int8 activations only
    return Variant(
        files={"model": file_name},
        precision=PRECISIONS[variant],
        devices=devices,
        opset=model_opset(staging / file_name),
        servable=True,
        method={**common, **chosen.method, "attempt": chosen.name, "attempts": attempts},
        parity=parity,
        metrics=metrics,
    )
