"""The one loading path of `Classifier` and `Translator`: artifact -> checked files -> engine settings.

`choose_for` picks variant and device (auto choice against the machine); `open_variant` takes
them as given (export validation runs fp16/GPU variants on CPU through it) and does the rest:
task check, variant lookup, opset check, sha256 verification of every file it hands out.
`token_budget` and `engine_config` turn the caller's options into a `TokenBudget` and an
`EngineConfig` with TensorRT options derived from the variant.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from onnxpress.errors import UserError
from onnxpress.runtime.artifact import Artifact, TensorSpec, Variant
from onnxpress.runtime.devices import Accelerators, check_device, detect
from onnxpress.runtime.engine import EngineConfig
from onnxpress.runtime.opset import check_opset
from onnxpress.runtime.tensorrt import DimRange, model_cache_dir, profile_shapes, tensorrt_options
from onnxpress.runtime.token_budget import TokenBudget
from onnxpress.runtime.variants import choose

MISSING_ONNXRUNTIME = 'onnxruntime is not installed: pip install "onnxpress[cpu]" (or [gpu] on a CUDA machine)'


def require_onnxruntime() -> None:
    """A base install (no cpu/gpu extra) has no onnxruntime: say which extra to install."""
    try:
        import onnxruntime  # noqa: F401
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "onnxruntime":
            raise
        raise UserError(MISSING_ONNXRUNTIME) from None


@dataclass(frozen=True)
class OpenedVariant:
    """A variant ready to serve: its spec, the device, and its verified model files by role."""

    artifact: Artifact
    name: str
    spec: Variant
    device: str
    models: dict[str, Path]
    verify: bool = True

    def file(self, name: str) -> Path:
        """Another artifact file (a tokenizer), checked like the models."""
        return self.artifact.file(name, verify=self.verify)

    def model_sha256(self, role: str) -> str:
        return self.artifact.manifest.files[self.spec.files[role]]["sha256"]


def open_artifact(path: str | os.PathLike | Artifact, task: str) -> Artifact:
    """The artifact at `path` (or `path` itself), refused unless it holds a `task` model."""
    artifact = path if isinstance(path, Artifact) else Artifact.open(path)
    if artifact.manifest.task != task:
        raise UserError(f"{artifact.root} is a {artifact.manifest.task} artifact, not {task}")
    return artifact


def choose_for(artifact: Artifact, variant: str, device: str,
               accelerators: Accelerators | None = None) -> tuple[str, str]:
    """(variant, device) to serve: the auto choice against this machine (or the injected probe)."""
    require_onnxruntime()
    return choose(artifact, variant, device, accelerators or detect())


def open_variant(artifact: Artifact, variant: str, device: str, roles: Sequence[str],
                 verify: bool = True) -> OpenedVariant:
    """Variant `variant` on `device`, taken as given: no auto choice, no device check."""
    require_onnxruntime()
    check_device(device)
    if device == "auto" or variant == "auto":
        raise UserError("open() takes a resolved variant and device; use load() for 'auto'")
    spec = artifact.variant(variant)  # unknown or rejected variants are refused here
    missing = [role for role in roles if role not in spec.files]
    if missing:
        raise UserError(f"variant {variant!r} of {artifact.root} lists no {' / '.join(missing)} file; "
                        "re-export the artifact")
    check_opset(spec.opset, artifact.manifest.versions.get("onnxruntime"))
    models = {role: artifact.file(spec.files[role], verify=verify) for role in roles}
    return OpenedVariant(artifact, variant, spec, device, models, verify)


def token_budget(max_batch_tokens: int | None, max_batch_size: int | None, default_tokens: int,
                 default_size: int, pad_to_multiple: int = 1) -> TokenBudget:
    """The caller's limits, defaults where None; 0 or negative is a mistake, not "default"."""
    for name, value in (("max_batch_tokens", max_batch_tokens), ("max_batch_size", max_batch_size)):
        if value is None:
            continue
        try:
            number = int(value) if not isinstance(value, bool) else 0
        except (TypeError, ValueError):
            number = 0
        if number < 1:
            raise UserError(f"{name} must be an integer >= 1 (got {value!r}); leave it unset for the default")
    return TokenBudget(max_batch_tokens=int(max_batch_tokens or default_tokens),
                       max_batch_size=int(max_batch_size or default_size), pad_to_multiple=pad_to_multiple)


def engine_config(opened: OpenedVariant, threads: int | None, *, role: str = "model",
                  io_binding: bool | None = None, cuda_graphs: bool = False, mem_arena: bool = True,
                  session_config: dict[str, str] | None = None, budget: TokenBudget | None = None,
                  profile_inputs: Sequence[TensorSpec] = (),
                  profile_dims: Mapping[str, DimRange] | None = None) -> EngineConfig:
    """Engine settings for one model of `opened`: TensorRT options from its precision and caches,
    optimization profiles from the token budget (`profile_dims`: ranges of other named axes).

    The CPU arena is kept and never shrunk: the token budget bounds every tensor, and shrinking
    after each run grows RSS through malloc fragmentation instead (benchmarks/README.md, "Memory soak").
    """
    device, spec = opened.device, opened.spec
    trt = None
    if device == "tensorrt":
        profiles = (profile_shapes(profile_inputs, budget, opened.artifact.manifest.max_length, profile_dims)
                    if budget is not None and profile_inputs else None)
        trt = tensorrt_options(spec.precision, model_cache_dir(opened.model_sha256(role), "tensorrt"), profiles)
    return EngineConfig(
        device=device, threads=threads, io_binding=io_binding, cuda_graphs=cuda_graphs, mem_arena=mem_arena,
        fp16=spec.precision == "fp16", session_config=session_config, trt_options=trt, variant=opened.name,
    )
