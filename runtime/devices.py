"""Which accelerators are *really* usable, found without asking ONNX Runtime to try.

onnxruntime-gpu lists CUDA and TensorRT in `get_available_providers()` on any machine:
that list is what the wheel was built with. Asking it for CUDA on a machine without the
driver or libraries prints a screen of `[E:onnxruntime...] Failed to load library` errors
and silently falls back to CPU. So we check the prerequisites ourselves, quietly:
a device node under /dev, then the shared libraries the EP links against (CUDA runtime,
cuBLASLt, cuDNN; nvinfer for TensorRT), loaded with ctypes. `CUDA_VISIBLE_DEVICES` and the
driver library (libcuda.so.1) are checked first: a hidden GPU or a missing driver means CPU.

Everything here takes the provider list and the probe results as injectable arguments
so that provider selection is testable on a CPU-only machine.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Mapping

from onnxpress.errors import UserError

CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"
DEVICES = ("cpu", "cuda", "tensorrt")


@dataclass
class Accelerators:
    """What this machine can run, with a reason for everything it cannot."""

    providers: list[str]  # ORT's build-time provider list
    cuda: bool = False
    tensorrt: bool = False
    reasons: dict[str, str] = field(default_factory=dict)  # device -> why not usable

    def usable(self, device: str) -> bool:
        return device == "cpu" or (device == "cuda" and self.cuda) or (device == "tensorrt" and self.tensorrt)

    def why_not(self, device: str) -> str:
        return self.reasons.get(device, f"{device} is not usable here")


def _cuda_major() -> str:
    """CUDA major version this onnxruntime build links against ('' if unknown)."""
    try:
        from onnxruntime.capi import build_and_package_info as info

        return str(getattr(info, "cuda_version", "") or "").split(".")[0]
    except Exception:  # noqa: BLE001 - CPU wheels have no such field
        return ""


def _pip_nvidia_lib_dirs() -> list[str]:
    """Library folders of pip-installed nvidia-* wheels (nvidia/<pkg>/lib)."""
    dirs: list[str] = []
    for base in sys.path:
        dirs.extend(glob.glob(os.path.join(base, "nvidia", "*", "lib")))
        dirs.extend(glob.glob(os.path.join(base, "tensorrt_libs")))
    return dirs


def can_load(stem: str, versions: tuple[str, ...]) -> bool:
    """True if a shared library `lib<stem>.so[.<v>]` can be dlopen'ed (system or pip wheels)."""
    names = [f"lib{stem}.so.{v}" for v in versions if v] + [f"lib{stem}.so"]
    candidates = list(names)
    for folder in _pip_nvidia_lib_dirs():
        candidates.extend(os.path.join(folder, n) for n in names)
    found = ctypes.util.find_library(stem)
    if found:
        candidates.append(found)
    for name in candidates:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def _gpu_device_nodes() -> list[str]:
    return sorted(glob.glob("/dev/nvidia[0-9]*"))


def visible_gpus(env_value: str | None, physical: int) -> int:
    """GPUs CUDA will enumerate under `CUDA_VISIBLE_DEVICES=env_value` with `physical` present.

    Unset: all. Empty, "-1" or "NoDevFiles": none. A list stops at its first invalid index, as
    CUDA does; GPU-/MIG- UUIDs cannot be checked without the driver and count as visible.
    """
    if env_value is None:
        return physical
    count = 0
    for entry in (e.strip() for e in env_value.split(",")):
        if entry.startswith(("GPU-", "MIG-")):
            count += 1
            continue
        try:
            index = int(entry)
        except ValueError:
            break
        if not 0 <= index < physical:
            break
        count += 1
    return count


def probe_machine(
    env: Mapping[str, str] | None = None,
    device_nodes: list[str] | None = None,
    loadable: Callable[[str, tuple[str, ...]], bool] = None,  # type: ignore[assignment]
    cuda_major: str | None = None,
) -> tuple[bool, str, bool, str]:
    """(cuda_ok, cuda_reason, trt_ok, trt_reason): device nodes, CUDA_VISIBLE_DEVICES, the driver
    (libcuda.so.1), then the libraries the EPs link against. Every fact is injectable for tests."""
    env = os.environ if env is None else env
    nodes = _gpu_device_nodes() if device_nodes is None else device_nodes
    loadable = loadable or can_load
    major = _cuda_major() if cuda_major is None else cuda_major

    def no(reason: str) -> tuple[bool, str, bool, str]:
        return False, reason, False, reason

    if not nodes:
        return no("no NVIDIA GPU device (/dev/nvidia*) on this machine")
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible_gpus(visible, len(nodes)) == 0:
        return no(f"the GPU is hidden: CUDA_VISIBLE_DEVICES={visible!r} makes no device visible")
    if not loadable("cuda", ("1",)):
        return no("the NVIDIA driver library libcuda.so.1 is not loadable (driver missing or not mounted)")
    missing = [lib for lib, versions in (("cudart", (major,)), ("cublasLt", (major,)), ("cudnn", ("9",)))
               if not loadable(lib, versions)]
    if missing:
        return no(f"CUDA libraries not loadable: {', '.join('lib' + m for m in missing)} "
                  f"(onnxruntime-gpu needs CUDA {major or '?'} and cuDNN 9)")
    trt_ok = loadable("nvinfer", ("10",))
    return True, "", trt_ok, "" if trt_ok else "TensorRT library libnvinfer is not loadable"


@lru_cache(maxsize=1)
def _probe_this_machine() -> tuple[bool, str, bool, str]:
    return probe_machine()


def detect(
    providers: list[str] | None = None,
    probe: tuple[bool, str, bool, str] | None = None,
) -> Accelerators:
    """Usable accelerators. `providers` (ORT's list) and `probe` (see `probe_machine`) are injectable."""
    if providers is None:
        import onnxruntime

        providers = list(onnxruntime.get_available_providers())
    cuda_ok, cuda_why, trt_ok, trt_why = probe if probe is not None else _probe_this_machine()
    acc = Accelerators(providers=list(providers))
    if CUDA_EP not in providers:
        acc.reasons["cuda"] = "this onnxruntime build has no CUDAExecutionProvider (install onnxruntime-gpu)"
    elif not cuda_ok:
        acc.reasons["cuda"] = cuda_why
    else:
        acc.cuda = True
    if TRT_EP not in providers:
        acc.reasons["tensorrt"] = "this onnxruntime build has no TensorrtExecutionProvider"
    elif not acc.cuda:
        acc.reasons["tensorrt"] = acc.reasons["cuda"]
    elif not trt_ok:
        acc.reasons["tensorrt"] = trt_why
    else:
        acc.tensorrt = True
    return acc


def check_device(device: str) -> None:
    if device not in ("auto",) + DEVICES:
        raise UserError(f"unknown device {device!r} (choose from auto, {', '.join(DEVICES)})")


def provider_chain(device: str, *, device_id: int = 0, cuda_graph: bool = False,
                   trt_options: Mapping[str, str] | None = None) -> list[str | tuple[str, dict[str, str]]]:
    """ORT `providers=` argument for a resolved device, most specific first, CPU last.

    CUDA graphs are requested on the CUDA provider only for device "cuda": behind TensorRT the
    graph would span two providers, which ORT refuses to capture. `trt_options` come from
    `onnxpress.runtime.tensorrt.tensorrt_options` (precision flags, caches, profiles).
    """
    cuda_opts: dict[str, str] = {"device_id": str(device_id), "arena_extend_strategy": "kSameAsRequested"}
    if device == "cpu":
        return [CPU_EP]
    if device == "cuda":
        if cuda_graph:
            cuda_opts["enable_cuda_graph"] = "1"
        return [(CUDA_EP, cuda_opts), CPU_EP]
    if device == "tensorrt":
        trt_opts = {"device_id": str(device_id), **(trt_options or {})}
        return [(TRT_EP, trt_opts), (CUDA_EP, cuda_opts), CPU_EP]
    raise UserError(f"unknown device {device!r}")
