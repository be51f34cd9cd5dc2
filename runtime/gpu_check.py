"""GPU self-check at first load for variants whose accuracy was validated on the CPU provider only.

ORT's CPU kernels upcast many fp16 ops, so an fp16 (or int8) variant that passed the export gate
on CPU may still drift on a GPU. At first load on a GPU such a variant runs the artifact's stored
reference sample and is refused, with the numbers, when its outputs leave the tolerance. The
result is cached per model hash, variant, device and onnxruntime version in
`~/.cache/onnxpress/gpu-check/` (outside the artifact, which may be read-only).

The sample is `manifest.extra["reference_sample"]`, written by export. Classifier:
`{"texts": [...], "expected": [[...], ...], "tolerance": 0.02}` (probabilities of the PyTorch fp32
reference, one row per text; `compare_to_sample`). Translator: `{"texts": [...], "tokens":
[[...], ...], "log_probs": [...], "tolerance": 0.05, "max_token_mismatch": 0.2}` (PyTorch greedy
token ids without </s> and their summed log-probabilities; `compare_translations`). Without it the
check is skipped with a logged note.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from onnxpress.errors import UserError
from onnxpress.runtime.devices import CPU_EP
from onnxpress.runtime.tensorrt import model_cache_dir

log = logging.getLogger("onnxpress.runtime")
SAMPLE_KEY = "reference_sample"
DEFAULT_TOLERANCE = 0.02

DEFAULT_SCORE_TOLERANCE = 0.05  # summed log-probability of a greedy translation
DEFAULT_MAX_TOKEN_MISMATCH = 0.2  # share of sample sentences whose greedy tokens may differ

Outputs = Callable[[list[str]], Any]
Compare = Callable[[Outputs, dict[str, Any]], dict[str, Any]]


def validated_providers(variant: Any) -> set[str]:
    """Providers the export validated `variant` on (from its parity record; CPU when unsaid)."""
    parity = variant.parity or {}
    named = parity.get("validated_on") or parity.get("provider") or CPU_EP
    return set([named] if isinstance(named, str) else named)


def needs_gpu_check(variant: Any, providers: list[str]) -> bool:
    """True when the session runs on a GPU provider the variant was never validated on."""
    return bool(providers) and providers[0] != CPU_EP and providers[0] not in validated_providers(variant)


def compare_to_sample(outputs: Outputs, sample: dict[str, Any]) -> dict[str, Any]:
    """Run the sample's texts and measure the largest difference from its expected outputs."""
    try:
        texts = [str(t) for t in sample["texts"]]
        expected = np.asarray(sample["expected"], dtype=np.float32)
        tolerance = float(sample.get("tolerance", DEFAULT_TOLERANCE))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"malformed extra.{SAMPLE_KEY} in the manifest ({exc}); re-export the artifact") from None
    got = np.asarray(outputs(texts), dtype=np.float32)
    if got.shape != expected.shape:
        raise UserError(f"extra.{SAMPLE_KEY} expects outputs {expected.shape}, the model gives {got.shape}; "
                        "re-export the artifact")
    diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
    return {"rows": len(texts), "max_abs_diff": diff, "tolerance": tolerance, "passed": diff <= tolerance,
            "detail": f"max |diff| {diff:.3g} > {tolerance:g} over {len(texts)} texts"}


def compare_translations(outputs: Outputs, sample: dict[str, Any]) -> dict[str, Any]:
    """Greedy-decode the sample's texts; compare token ids and summed log-probabilities with PyTorch's.

    Fails when more than `max_token_mismatch` of the sentences decode differently, or when a
    sentence with the same tokens differs in log-probability by more than `tolerance`.
    """
    try:
        texts = [str(t) for t in sample["texts"]]
        tokens = [[int(t) for t in row] for row in sample["tokens"]]
        log_probs = [float(x) for x in sample["log_probs"]]
        tolerance = float(sample.get("tolerance", DEFAULT_SCORE_TOLERANCE))
        max_mismatch = float(sample.get("max_token_mismatch", DEFAULT_MAX_TOKEN_MISMATCH))
        if not len(texts) == len(tokens) == len(log_probs):
            raise ValueError("texts, tokens and log_probs differ in length")
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"malformed extra.{SAMPLE_KEY} in the manifest ({exc}); re-export the artifact") from None
    got = outputs(texts)
    same = [list(g_tokens) == want for (g_tokens, _), want in zip(got, tokens)]
    diffs = [abs(float(g_lp) - want) for (_, g_lp), want, ok in zip(got, log_probs, same) if ok]
    mismatch = 1.0 - float(np.mean(same)) if same else 0.0
    diff = max(diffs, default=0.0)
    passed = mismatch <= max_mismatch and diff <= tolerance
    return {"rows": len(texts), "max_abs_diff": diff, "tolerance": tolerance, "token_mismatch": mismatch,
            "max_token_mismatch": max_mismatch, "passed": passed,
            "detail": (f"greedy tokens differ on {mismatch:.0%} of {len(texts)} sentences (allowed "
                       f"{max_mismatch:.0%}), max |log-prob diff| {diff:.3g} (tolerance {tolerance:g})")}


def cache_file(model: Any) -> str:
    import onnxruntime

    manifest = model.artifact.manifest
    spec = manifest.variants[model.variant]
    sha = manifest.files[next(iter(spec.files.values()))]["sha256"]
    folder = model_cache_dir(sha, "gpu-check")
    return os.path.join(folder, f"{model.variant}-{model.device}-ort{onnxruntime.__version__}.json")


def run_gpu_check(model: Any, outputs: Outputs, cache_path: str,
                  compare: Compare = compare_to_sample) -> dict[str, Any] | None:
    """Check `model` against its artifact's sample (cached in `cache_path`); refuse when it drifts.

    `compare(outputs, sample)` measures the model (`compare_to_sample`, `compare_translations`).
    Returns the result, or None when the artifact stores no sample.
    """
    if os.path.isfile(cache_path):
        with open(cache_path) as fh:
            result = json.load(fh)
    else:
        sample = (model.artifact.manifest.extra or {}).get(SAMPLE_KEY)
        if sample is None:
            log.info("%s: no extra.%s in the manifest; GPU self-check of %s on %s skipped",
                     model.artifact.root, SAMPLE_KEY, model.variant, model.device)
            return None
        result = compare(outputs, sample)
        from onnxpress.runtime.durable import atomic_write_text

        atomic_write_text(Path(cache_path), json.dumps(result))
    if not result["passed"]:
        raise UserError(
            f"variant {model.variant!r} on {model.device} leaves the tolerance on the artifact's reference "
            f"sample: {result.get('detail') or describe(result)} (it was validated on CPU only); "
            f"serve it on cpu or choose another variant "
            f"(result cached in {cache_path})"
        )
    return result


def describe(result: dict[str, Any]) -> str:
    return f"max |diff| {result['max_abs_diff']:.3g} > {result['tolerance']:g} over {result['rows']} texts"


def ensure_gpu_checked(model: Any, outputs: Outputs, compare: Compare = compare_to_sample,
                       providers: list[str] | None = None) -> dict[str, Any] | None:
    """`run_gpu_check` when `model` runs on a GPU provider its variant was not validated on
    (`providers`: the session's, read from `model.engine` unless given)."""
    spec = model.artifact.manifest.variants[model.variant]
    active = model.engine.providers if providers is None else providers
    if not needs_gpu_check(spec, active):
        return None
    return run_gpu_check(model, outputs, cache_file(model), compare)
