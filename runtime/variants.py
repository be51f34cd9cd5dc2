"""Choosing the variant and device to serve, with a clear reason when the choice is impossible.

`variant="auto"` picks, per device, by precision: int8 on CPU, fp16 on CUDA, the TensorRT
build (int8 first) where that EP is usable. TensorRT also runs the fp16/fp32 variants built for
CUDA (plain float graphs; its fp16 flag follows the variant), never a dynamic-int8 CPU graph. Among variants of the same precision the one
whose name equals its precision (e.g. "int8" before "int8-static") wins, then manifest order.
`device="auto"` tries tensorrt, cuda, then cpu, taking the first that is usable *and* has a
servable variant.
"""
from __future__ import annotations

import logging

from onnxpress.errors import UserError
from onnxpress.runtime.artifact import Artifact, Variant
from onnxpress.runtime.devices import Accelerators, check_device
from onnxpress.runtime.opset import runs_opset

PRECISION_PREFERENCE = {
    "cpu": ("int8", "fp32", "fp16"),
    "cuda": ("fp16", "fp32", "int8"),
    "tensorrt": ("int8", "fp16", "fp32"),
}
AUTO_DEVICE_ORDER = ("tensorrt", "cuda", "cpu")
log = logging.getLogger("onnxpress.runtime")


def runs_on(variant: Variant, device: str) -> bool:
    """Built for `device`, or a float variant built for CUDA offered to TensorRT."""
    return device in variant.devices or (
        device == "tensorrt" and "cuda" in variant.devices and variant.precision in ("fp16", "fp32"))


def ranked(artifact: Artifact, device: str) -> list[str]:
    """Servable variants meant for `device`, best first."""
    variants = artifact.manifest.variants
    order = PRECISION_PREFERENCE[device]
    names = [n for n, v in variants.items() if v.servable and runs_on(v, device)]

    def rank(item: tuple[int, str]) -> tuple[int, int, int]:
        position, name = item
        precision = variants[name].precision
        pref = order.index(precision) if precision in order else len(order)
        return pref, 0 if name == precision else 1, position

    return [name for _, name in sorted(enumerate(names), key=rank)]


def candidates(artifact: Artifact, device: str) -> list[str]:
    """`ranked`, less the variants whose opset the installed onnxruntime does not implement."""
    return [n for n in ranked(artifact, device) if runs_opset(artifact.manifest.variants[n].opset)]


def choose(artifact: Artifact, variant: str, device: str, acc: Accelerators) -> tuple[str, str]:
    """(variant name, device) to serve, or `UserError` saying why not."""
    check_device(device)
    if variant != "auto":
        spec = artifact.variant(variant)  # raises for unknown or rejected variants
        if device == "auto":
            for dev in AUTO_DEVICE_ORDER:
                if runs_on(spec, dev) and acc.usable(dev):
                    return variant, dev
            why = "; ".join(f"{d}: {acc.why_not(d)}" for d in spec.devices if not acc.usable(d))
            raise UserError(f"variant {variant!r} runs on {', '.join(spec.devices)}, none usable here ({why})")
        if not acc.usable(device):
            raise UserError(f"device {device!r} requested but {acc.why_not(device)}")
        if not runs_on(spec, device):
            raise UserError(
                f"variant {variant!r} is built for {', '.join(spec.devices)}, not {device}; "
                f"variants for {device}: {', '.join(candidates(artifact, device)) or 'none'}"
            )
        return variant, device

    devices = AUTO_DEVICE_ORDER if device == "auto" else (device,)
    if device != "auto" and not acc.usable(device):
        raise UserError(f"device {device!r} requested but {acc.why_not(device)}")
    for dev in devices:
        if acc.usable(dev):
            names = candidates(artifact, dev)
            if names:
                _warn_if_passed_over(artifact, dev, names[0])
                return names[0], dev
    servable = artifact.servable_variants()
    if not servable:
        raise UserError(f"artifact {artifact.root} has no servable variant (all were rejected at export)")
    wanted = device if device != "auto" else "any device usable here (" + ", ".join(
        d for d in AUTO_DEVICE_ORDER if acc.usable(d)) + ")"
    too_new = [n for n in servable if not runs_opset(artifact.manifest.variants[n].opset)]
    raise UserError(f"no servable variant of {artifact.root} runs on {wanted}; servable: "
                    + ", ".join(f"{n} ({'/'.join(artifact.manifest.variants[n].devices)})" for n in servable)
                    + (f"; {_needs_newer(artifact, too_new)}" if too_new else ""))


def _warn_if_passed_over(artifact: Artifact, device: str, chosen: str) -> None:
    """Log the variants ranked above `chosen` that the installed onnxruntime is too old to run."""
    better = ranked(artifact, device)
    skipped = better[:better.index(chosen)]
    if skipped:
        log.warning("%s: %s; running %s instead", artifact.root, _needs_newer(artifact, skipped), chosen)


def _needs_newer(artifact: Artifact, names: list[str]) -> str:
    opset = max(artifact.manifest.variants[n].opset or 0 for n in names)
    return f"{', '.join(names)} {'needs' if len(names) == 1 else 'need'} a newer onnxruntime (ONNX opset {opset})"
