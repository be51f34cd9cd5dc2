"""The classifier's variants: names, files, devices, and how each is built, with its remedy ladder.

A variant is built by the first attempt of its ladder that passes the gate; each later rung
keeps more of the model in higher precision (or calibrates differently). Builds are deferred
(`Attempt.build`), so a remedy costs nothing unless the one before it failed.
"""
from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from onnxpress.export import quantize as q
from onnxpress.export.classifier_checkpoint import CheckpointInfo
from onnxpress.export.classifier_validation import encode, make_batches
from onnxpress.export.frozen_scales import quantize_int8_frozen
from onnxpress.export.manifest import model_opset
from onnxpress.runtime.artifact import Variant

if TYPE_CHECKING:
    from onnxpress.export.classifier import ExportOptions

VARIANTS = ("fp32", "int8", "int8-dynamic", "int8-static", "fp16")
FILE_NAMES = {
    "fp32": "model.onnx",
    "int8": "model.int8.onnx",
    "int8-dynamic": "model.int8-dynamic.onnx",
    "int8-static": "model.int8-static.onnx",
    "fp16": "model.fp16.onnx",
}
PRECISIONS = {"fp32": "fp32", "int8": "int8", "int8-dynamic": "int8", "int8-static": "int8", "fp16": "fp16"}
DEVICES = {"fp32": ["cpu", "cuda"], "int8": ["cpu"], "int8-dynamic": ["cpu"], "int8-static": ["cpu", "tensorrt"],
           "fp16": ["cuda"]}
# "int8" (the runtime's CPU default) is static: calibrated activation scales make a text's result
# independent of its batch neighbours. It is the dynamic graph with frozen scales
# (export/frozen_scales.py), QDQ only as a remedy; "int8-dynamic" keeps the run-time-scaled build.
CALIBRATED = ("int8", "int8-static")


FALLBACK_CALIBRATION_TEXTS = 128


def needs_calibration(variants: Sequence[str]) -> bool:
    return any(v in CALIBRATED for v in variants)


def calibration_texts(given: Sequence[str], eval_texts: Sequence[str], description: dict[str, Any]) -> Sequence[str]:
    """The calibration texts; callers that pass none (the default "int8" needs them) get the first
    evaluation texts, which only set activation ranges, and `description` says so."""
    if len(given):
        return given
    description["calibration"] = (f"first {min(FALLBACK_CALIBRATION_TEXTS, len(eval_texts))} evaluation texts "
                                  "(no calibration texts given)")
    return list(eval_texts[:FALLBACK_CALIBRATION_TEXTS])


@dataclass
class Attempt:
    """One rung of a variant's ladder: how to build it, then what validation and the gate said."""

    variant: str
    name: str
    path: Path
    build: Callable[[Path], dict[str, Any]]  # writes `path`, returns the method record
    method: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    passed: bool = False
    reason: str | None = None

    def summary(self) -> dict[str, Any]:
        return {"attempt": self.name, "passed": self.passed, "reason": self.reason, "settings": self.method,
                "metrics": self.metrics}


# Per-channel int8 weights, then the usual remedies: more of the model kept in fp32.
_EXCLUSION_LADDER = (("per-channel", ()), ("per-channel, fp32 embeddings+head", ("embeddings", "head")),
                     ("per-channel, fp32 embeddings+head+layer 0", ("embeddings", "head", "first_layer")))


@dataclass
class SourceGraphs:
    """The exported graphs every variant is built from."""

    raw: Path  # torch.onnx export: input of static quantization (QDQ before fusion)
    fused: Path  # after the transformer optimizer: fp32, dynamic int8 and fp16 start here
    num_layers: int


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


def ladder(
    variant: str,
    graphs: SourceGraphs,
    work: Path,
    opt: ExportOptions,
    calibration_feeds: Sequence[dict[str, np.ndarray]] = (),
) -> list[Attempt]:
    """The remedy ladder of `variant`: attempts in order, built only when tried."""
    fused, raw, num_layers = graphs.fused, graphs.raw, graphs.num_layers
    out: list[Attempt] = []

    def add(name: str, build: Callable[[Path], dict[str, Any]]) -> None:
        out.append(Attempt(variant, name, work / f"{variant}.{len(out)}.onnx", build))

    if variant == "fp32":
        add("fused", lambda p: (shutil.copyfile(fused, p), {"kind": "fp32", "graph": "fused"})[1])
    elif variant == "fp16":
        def fp16(p: Path) -> dict[str, Any]:
            method = q.convert_fp16(fused, p, keep_io_types=True)
            method["structure"] = q.float16_summary(p)
            method["checked_on"] = "CPUExecutionProvider (no GPU here: parity/accuracy measured on CPU, speed not)"
            return method
        add("fp16, fp32 IO", fp16)
    elif variant == "int8-dynamic":
        for name, groups in _EXCLUSION_LADDER:
            def dyn(p: Path, groups=groups) -> dict[str, Any]:
                excluded = sensitive_nodes(fused, groups, num_layers) if groups else []
                method = q.quantize_int8_dynamic(fused, p, per_channel=True, nodes_to_exclude=excluded)
                method["excluded_groups"] = list(groups)
                return _checked_quantized(p, method)
            add(name, dyn)
    elif variant in CALIBRATED:
        if variant == "int8":
            for name, groups in _EXCLUSION_LADDER:
                def frozen(p: Path, groups=groups) -> dict[str, Any]:
                    excluded = sensitive_nodes(fused, groups, num_layers) if groups else []
                    method = quantize_int8_frozen(fused, p, calibration_feeds, nodes_to_exclude=excluded)
                    method["calibration_texts"] = sum(len(f["input_ids"]) for f in calibration_feeds)
                    method["excluded_groups"] = list(groups)
                    return _checked_quantized(p, method)
                add(f"frozen scales, {name}", frozen)
        first = opt.calibration_method.lower()
        methods = [first] + [m for m in ("minmax", "percentile", "entropy") if m != first]
        act = q.CPU_STATIC_ACTIVATIONS if variant == "int8" else opt.static_activations
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
                method = q.quantize_int8_static(raw, p, q.FeedsReader(calibration_feeds), method=method_name,
                                                activation_type=act_type, op_types=("MatMul", "Gather"),
                                                nodes_to_exclude=excluded)
                method["calibration_texts"] = sum(len(f["input_ids"]) for f in calibration_feeds)
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


def static_calibration_feeds(
    texts: Sequence[str], tokenizer: Any, info: CheckpointInfo, input_names: Sequence[str], batch: int
) -> list[dict[str, np.ndarray]]:
    """Feeds for static calibration, every batch padded to the longest text.

    Equal shapes across batches: ORT's histogram calibrators (Entropy, Percentile) stack them.
    """
    ids = encode(tokenizer, texts, info.max_length)
    width = max(len(x) for x in ids)
    batches = make_batches(ids, input_names, info.pad_token_id, max_batch=batch, max_tokens=batch * width,
                           pad_to=width)
    return [b.feeds for b in batches]


def variant_record(
    variant: str, chosen: Attempt | None, tried: list[Attempt], common: dict[str, Any], staging: Path
) -> Variant:
    """The manifest entry of `variant`; moves the chosen attempt's file into `staging`."""
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
