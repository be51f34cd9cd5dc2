"""Exact int8 GEMMs on x86 CPUs whose fast u8 x s8 kernel saturates.

Without VNNI (SSE4.1, AVX2, AVX-512 without VNNI), ONNX Runtime's u8 x s8 GEMM multiplies with
VPMADDUBSW, which adds each pair of products in int16 and clips the sum: two large activations
against two large weights (255 x 127 x 2 > 32767) lose the excess. VNNI and AMX kernels
accumulate in int32 and never clip. The session entry `session.x64quantprecision=1` makes
ONNX Runtime store such weights as uint8 (+128, the same values) at load and use its u8 x u8
kernel: the integers a VNNI machine computes, somewhat slower. Every session the runtime opens
sets it on those CPUs, so an int8 artifact's GEMMs give the same integers on any x86 CPU
(figures: benchmarks/README.md, "int8 on CPUs without VNNI").

The entry is left off on VNNI/AMX machines: ONNX Runtime's own gate (`MlasPlatformU8S8Overflow`)
compares its u8 x u8 and u8 x s8 kernel tables, which differ there too, so it could still convert
the weights and run the slower kernel where the fast one is exact.
"""
from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

PRECISE_INT8_ENTRY = "session.x64quantprecision"
# Any of these gives MLAS an int8 kernel that accumulates in int32 (vpdpbusd, tdpbusd).
INT32_DOT_PRODUCT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


def read_cpuinfo(path: str | Path = "/proc/cpuinfo") -> tuple[str | None, set[str] | None]:
    """(model name, flags) of the first CPU in `path`; None for what it does not say (or no file)."""
    model: str | None = None
    flags: set[str] | None = None
    try:
        text = Path(path).read_text()
    except OSError:
        return None, None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and flags is None:
            flags = set(value.split())
    return model, flags


def _numpy_flags() -> set[str] | None:
    """VNNI as NumPy's own CPU probe sees it (for systems without /proc/cpuinfo)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return None
    return {"avx512_vnni"} if features.get("AVX512VNNI") else set()


def u8s8_saturates(machine: str, flags: set[str] | None) -> bool:
    """Whether ONNX Runtime's u8 x s8 GEMM clips pair sums on this CPU (x86 without VNNI/AMX).
    Unknown flags on x86 count as saturating: exact answers are worth a slower kernel."""
    if machine.lower() not in X86_MACHINES:
        return False
    return flags is None or not (flags & INT32_DOT_PRODUCT_FLAGS)


@lru_cache(maxsize=1)
def saturating_cpu() -> bool:
    """`u8s8_saturates` for this machine."""
    flags = read_cpuinfo()[1]
    if flags is None:
        flags = _numpy_flags()
    return u8s8_saturates(platform.machine(), flags)


def precise_int8_entries(saturates: bool | None = None) -> dict[str, str]:
    """The session config entries that keep int8 GEMMs exact here (empty where they already are)."""
    if saturates is None:
        saturates = saturating_cpu()
    return {PRECISE_INT8_ENTRY: "1"} if saturates else {}


def int8_kernel() -> str:
    """Which int8 GEMM this machine's sessions run (recorded beside an int8 variant's validation)."""
    return "u8 x u8 (exact; this CPU's u8 x s8 kernel clips)" if saturating_cpu() else "u8 x s8"
