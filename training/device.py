"""Where training runs: the torch device for `--device`, and its mixed-precision context."""
from __future__ import annotations

import torch

from onnxpress.errors import UserError


def pick_device(name: str) -> torch.device:
    """`auto` (CUDA when torch sees one), `cpu` or `cuda`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA device")
    if name not in ("cpu", "cuda"):
        raise UserError(f"unknown device {name!r} (auto, cpu or cuda)")
    return torch.device(name)


def autocast(device: torch.device):
    """bf16 (else fp16) autocast on CUDA; full precision on CPU."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


def needs_grad_scaling(device: torch.device) -> bool:
    """fp16 autocast (CUDA without bf16) needs a GradScaler; bf16 and fp32 do not."""
    return device.type == "cuda" and not torch.cuda.is_bf16_supported()
