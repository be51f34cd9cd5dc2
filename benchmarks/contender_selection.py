"""Which contenders a run compares: the peers asked for (skipped when their package is absent)
and the artifact's servable variants, checked against the artifact and the checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from onnxpress.errors import UserError

from onnxpress.benchmarks.bench_config import CUDA_ONLY_PEERS, DEVICES, GPU_PEERS, PEER_CHOICES, BenchConfig
from onnxpress.benchmarks.contenders import Contender, Onnxpress, OptimumORT, TorchCompiled, TorchEager
from onnxpress.benchmarks.contenders.torch_peers import TorchFp16

PEER_MODULES = {"optimum-fp32": ("optimum.onnxruntime",), "optimum-int8": ("optimum.onnxruntime",),
                "ctranslate2-int8": ("ctranslate2",), "openvino-int8": ("openvino", "nncf")}


def resolve_checkpoint(cfg: BenchConfig, manifest: Any) -> Path | None:
    """--checkpoint, else the source checkpoint the artifact's manifest records (if it exists)."""
    if cfg.checkpoint is not None:
        if not (Path(cfg.checkpoint) / "config.json").is_file():
            raise UserError(f"--checkpoint {cfg.checkpoint} is not a model checkpoint (no config.json)")
        return Path(cfg.checkpoint)
    extra = manifest.extra or {}
    for key in ("source_checkpoint", "checkpoint", "source"):
        value = extra.get(key)
        if isinstance(value, dict):
            value = value.get("path")
        if isinstance(value, str):
            path = Path(value)
            if not path.is_absolute():
                path = (Path(cfg.artifact) / path) if (Path(cfg.artifact) / path).is_dir() else Path.cwd() / path
            if (path / "config.json").is_file():
                return path
    return None


def check_device(device: str, peers: list[str], accelerators: Any = None) -> None:
    """Refuse, in one line, a device this machine cannot run or a peer that cannot run on it.

    `accelerators` (an `onnxpress.runtime.devices.Accelerators`) injects the machine probe (tests).
    """
    if device not in DEVICES:
        raise UserError(f"unknown --device {device!r} (choose from {', '.join(DEVICES)})")
    if device == "cpu":
        cuda_only = [p for p in peers if p in CUDA_ONLY_PEERS]
        if cuda_only:
            raise UserError(f"--against {','.join(cuda_only)} is CUDA autocast: it needs --device cuda or tensorrt")
        return
    from onnxpress.runtime.devices import detect

    acc = accelerators or detect()
    if not acc.usable(device):
        raise UserError(f"--device {device} is not usable here: {acc.why_not(device)}")
    cpu_only = [p for p in peers if p not in GPU_PEERS]
    if cpu_only:
        raise UserError(f"--against {','.join(cpu_only)}: CPU-only in this harness; on --device {device} "
                        f"compare with {', '.join(GPU_PEERS)} (or --against '')")


def build_contenders(cfg: BenchConfig, artifact: Any, accelerators: Any = None) -> list[Contender]:
    """The peers of `cfg.against` first, then one onnxpress contender per chosen servable variant."""
    from onnxpress.runtime.variants import runs_on

    manifest = artifact.manifest
    peers = [p.strip() for p in cfg.against if p.strip()]
    unknown = [p for p in peers if p not in PEER_CHOICES]
    if unknown:
        raise UserError(f"unknown --against {', '.join(unknown)} (choose from {', '.join(PEER_CHOICES)})")
    check_device(cfg.device, peers, accelerators)
    checkpoint = resolve_checkpoint(cfg, manifest) if peers else None
    if peers and checkpoint is None:
        raise UserError(f"--against {','.join(peers)} needs the training checkpoint: pass --checkpoint DIR "
                        "(the artifact's manifest does not record where it came from)")
    contenders: list[Contender] = []
    ml, art = manifest.max_length, cfg.artifact
    cache = Path(cfg.out) / "cache"
    torch_device = "cpu" if cfg.device == "cpu" else "cuda"
    if "torch" in peers:
        contenders.append(TorchEager(checkpoint, ml, art, device=torch_device))
    if "torch-sorted" in peers:
        contenders.append(TorchEager(checkpoint, ml, art, sort=True, device=torch_device))
    if "torch-fp16" in peers:
        contenders.append(TorchFp16(checkpoint, ml, art, device=torch_device))
    if "torch-compile" in peers:
        contenders.append(TorchCompiled(checkpoint, ml, art, sort=True))
    if "optimum" in peers or "optimum-fp32" in peers:
        contenders.append(OptimumORT(checkpoint, ml, cache, quantize=False, artifact=art))
    if "optimum" in peers or "optimum-int8" in peers:
        contenders.append(OptimumORT(checkpoint, ml, cache, quantize=True, artifact=art))
    if "ctranslate2" in peers:
        from onnxpress.benchmarks.ct2_contender import CTranslate2Int8

        contenders.append(CTranslate2Int8(checkpoint, ml, art, cache))
    if "openvino" in peers:
        from onnxpress.benchmarks.openvino_contender import OpenVINOInt8

        contenders.append(OpenVINOInt8(checkpoint, ml, art, cache))
    servable = [name for name, v in manifest.variants.items() if v.servable and runs_on(v, cfg.device)]
    if cfg.variants:
        missing = [v for v in cfg.variants if v not in manifest.variants]
        if missing:
            raise UserError(f"artifact has no variant {', '.join(missing)} (it has: {', '.join(manifest.variants)})")
        rejected = [v for v in cfg.variants if not manifest.variants[v].servable]
        if rejected:
            raise UserError(f"variant(s) {', '.join(rejected)} were rejected at export and are not servable")
        chosen = list(cfg.variants)
    else:
        chosen = servable
    if not chosen:
        raise UserError(f"{cfg.artifact} has no servable variant for device {cfg.device!r}")
    contenders += [Onnxpress(art, v, cfg.device) for v in chosen]
    return contenders


def missing_modules(name: str) -> str | None:
    """Why peer `name` cannot run here (its optional package is not installed), or None."""
    import importlib.util

    absent = [m for m in PEER_MODULES.get(name, ()) if importlib.util.find_spec(m.split(".")[0]) is None
              or importlib.util.find_spec(m) is None]
    return f"not installed: {', '.join(absent)}" if absent else None
