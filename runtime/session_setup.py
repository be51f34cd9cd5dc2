"""SessionOptions the runtime uses everywhere (the export validation builds its sessions the same way).

Why each setting (figures and the commands that reproduce them: benchmarks/README.md,
"Runtime session settings"):

* `intra_op_num_threads` = `threads` (ORT's default, one per physical core, when None);
  `inter_op_num_threads` = 1 with sequential execution: BERT graphs are a chain.
* `graph_optimization_level` = ORT_ENABLE_ALL: the exported graph is already fused.
* On the CPU provider only, `SkipLayerNormFusion` is disabled: ORT's CPU SkipLayerNormalization
  kernel is slower than the Add + LayerNormalization it replaces. CUDA re-fuses at load.
* `enable_mem_pattern` = False: memory patterns are planned per input shape, and the token
  budget makes a new (batch, length) almost every call.
* `enable_cpu_mem_arena` = True by default: the token budget bounds every tensor, so the arena
  peaks on the first (longest) batch and is reused. `mem_arena=False` remains available.
* On x86 CPUs without VNNI, `session.x64quantprecision` = 1: exact int8 GEMMs instead of a kernel
  that clips pair sums (`runtime/int8_gemm.py`). A caller's `config` entry overrides it.
"""
from __future__ import annotations

from typing import Any

from onnxpress.errors import UserError
from onnxpress.runtime.devices import CPU_EP
from onnxpress.runtime.int8_gemm import precise_int8_entries

# ORT graph optimizers that make CPU runs slower (see the module docstring).
CPU_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


def disabled_optimizers(providers: list[Any]) -> list[str]:
    """Optimizers to switch off when the session runs on the CPU provider only."""
    names = [p[0] if isinstance(p, tuple) else p for p in providers]
    return list(CPU_DISABLED_OPTIMIZERS) if names == [CPU_EP] else []


def session_options(threads: int | None, mem_arena: bool = True, log_level: int = 3,
                    config: dict[str, str] | None = None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads is not None:
        if threads < 1:
            raise UserError(f"threads must be >= 1 (got {threads})")
        so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_mem_pattern = False
    so.enable_cpu_mem_arena = bool(mem_arena)
    so.log_severity_level = log_level  # errors only: no warning spam on every load
    for key, value in config_entries(config).items():
        so.add_session_config_entry(key, str(value))
    return so


def config_entries(config: dict[str, str] | None = None) -> dict[str, str]:
    """The session config entries a session gets: the exact-int8 entry where this CPU needs it
    (`runtime/int8_gemm.py`), then the caller's, which win."""
    return {**precise_int8_entries(), **{k: str(v) for k, v in (config or {}).items()}}


def spin_config(spin_us: int | None) -> dict[str, str]:
    """Session config entries for intra-op threads that spin at most `spin_us` microseconds (0: not at
    all, None: ORT's default). Idle threads that spin long take the cores from the event loop."""
    if spin_us is None:
        return {}
    if spin_us == 0:
        return {"session.intra_op.allow_spinning": "0"}
    return {"session.intra_op.spin_duration_us": str(int(spin_us))}
