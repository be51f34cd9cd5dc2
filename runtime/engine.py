"""One ONNX Runtime session and the ways to feed it: plain `run`, IO binding, fixed-shape buckets.

Session options are chosen deliberately (see `session_options`):

* `intra_op_num_threads` = `threads` (ORT's default, one per physical core, when None);
  `inter_op_num_threads` = 1 with sequential execution: BERT graphs are a chain, and a
  second pool only adds threads that compete for the same cores.
* `graph_optimization_level` = ORT_ENABLE_ALL: the exported graph is already fused, so the
  remaining online passes are cheap (they are part of the measured cold start).
* On the CPU provider, ORT's `SkipLayerNormFusion` is disabled: its CPU SkipLayerNormalization
  kernel is ~3.7x slower than the Add + LayerNormalization it replaces (6.7 vs 1.8 ms for
  4,096 x 384 rows, 2 threads), which cost 15% of MiniLM int8 throughput on AG News (212 vs
  244 texts/s). Exports keep Add + LayerNormalization for this reason; CUDA re-fuses at load.
* `enable_mem_pattern` = False: memory patterns pre-plan allocations *per input shape*;
  with a new (batch, length) almost every call they only add planning work and cached plans.
* `enable_cpu_mem_arena` = True by default. The arena never gives memory back, but the token
  budget bounds every tensor (batch * length <= max_batch_tokens) and batches run longest
  first, so the arena reaches its peak on the first batch and is reused after that. Measured
  (MiniLM-L6 int8, 2 threads, first 1,000 AG News test texts, fresh process each): peak RSS
  142 MiB with the arena vs 156 MiB without at 1,024 tokens, 172 vs 214 MiB at 2,048 — glibc
  malloc fragments more than the arena does, so turning the arena off does not help here.
  `mem_arena=False` remains available; a smaller `max_batch_tokens` is the better lever.

Thread safety: `InferenceSession.run` is thread-safe, so `run()` may be called from many
threads at once; IO binding objects are not, so a fresh binding is made per call. The
fixed-shape path (CUDA graphs) owns pre-allocated device buffers per bucket and is
serialized with a lock, as CUDA graphs require.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onnxpress.errors import UserError
from onnxpress.runtime.devices import CPU_EP, provider_chain

# Highest ai.onnx opset each onnxruntime minor release implements (ORT's Versioning.md).
# For anything newer than this table, or an opset above it, ORT's own schema registry is asked
# (about 0.4 s, so only when the fast table cannot answer).
MAX_OPSET = {
    (1, 14): 18, (1, 15): 19, (1, 16): 19, (1, 17): 20, (1, 18): 21, (1, 19): 21,
    (1, 20): 21, (1, 21): 22, (1, 22): 22, (1, 23): 23,
}


def ort_version() -> tuple[int, int]:
    import onnxruntime

    major, minor = onnxruntime.__version__.split(".")[:2]
    return int(major), int(minor)


def max_supported_opset() -> int:
    """Highest ai.onnx opset the installed onnxruntime knows (from its schema registry)."""
    from onnxruntime.capi import _pybind_state as C

    return max(s.since_version for s in C.get_all_operator_schema() if s.domain in ("", "ai.onnx"))


def check_opset(opset: int | None, artifact_ort: str | None = None) -> None:
    """Refuse a model whose opset the installed onnxruntime does not implement."""
    if not opset:
        return
    version = ort_version()
    known = MAX_OPSET.get(version)
    if known is None and version > max(MAX_OPSET):
        known = MAX_OPSET[max(MAX_OPSET)]  # newer releases implement at least this much
        if int(opset) > known:
            known = max_supported_opset()
    if known is None:
        known = 17  # older than the table: be conservative
    if int(opset) > known:
        built = f" (the artifact was validated with onnxruntime {artifact_ort})" if artifact_ort else ""
        raise UserError(
            f"the model uses ONNX opset {opset} but onnxruntime {'.'.join(map(str, version))} "
            f"implements opsets up to {known}{built}; upgrade onnxruntime or re-export with a lower opset"
        )


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
    for key, value in (config or {}).items():  # e.g. {"session.intra_op.allow_spinning": "0"}
        so.add_session_config_entry(key, str(value))
    return so


@dataclass
class _Bucket:
    """Pre-allocated inputs/outputs of one fixed shape, bound once (the CUDA-graph unit)."""

    inputs: dict[str, Any]
    outputs: list[Any]
    binding: Any
    run_options: Any


@dataclass
class EngineConfig:
    device: str = "cpu"  # cpu | cuda | tensorrt (already resolved)
    threads: int | None = None
    io_binding: bool | None = None  # None: on for cuda/tensorrt, off for cpu
    cuda_graphs: bool = False  # fixed-shape buckets + one captured CUDA graph per bucket
    mem_arena: bool = True
    device_id: int = 0
    fp16: bool = False  # TensorRT: allow fp16 kernels
    trt_cache_dir: str | None = None
    providers: list[Any] | None = field(default=None)  # explicit ORT providers (overrides device)
    session_config: dict[str, str] | None = None  # extra SessionOptions config entries


# ORT graph optimizers that make CPU runs slower (see the module docstring).
CPU_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


def disabled_optimizers(providers: list[Any]) -> list[str]:
    """Optimizers to switch off when the session runs on the CPU provider only."""
    names = [p[0] if isinstance(p, tuple) else p for p in providers]
    return list(CPU_DISABLED_OPTIMIZERS) if names == [CPU_EP] else []


class Engine:
    """A shared ONNX Runtime session; `run(feeds)` is safe to call from several threads."""

    def __init__(self, model_path: str | os.PathLike, config: EngineConfig | None = None):
        import onnxruntime as ort

        self.config = config = config or EngineConfig()
        self.device = config.device
        providers = config.providers or provider_chain(
            config.device, device_id=config.device_id, fp16=config.fp16,
            cuda_graph=config.cuda_graphs and config.device != "cpu", trt_cache_dir=config.trt_cache_dir,
        )
        self.options = session_options(config.threads, config.mem_arena, config=config.session_config)
        try:
            self.session = ort.InferenceSession(str(model_path), sess_options=self.options, providers=providers,
                                                disabled_optimizers=disabled_optimizers(providers))
        except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"onnxruntime {ort.__version__} cannot load {model_path}: {first}"
            ) from None
        self.providers = self.session.get_providers()
        if config.device != "cpu" and self.providers[0] == CPU_EP:
            raise UserError(f"onnxruntime could not start the {config.device} provider for {model_path}")
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.io_binding = config.device != "cpu" if config.io_binding is None else config.io_binding
        self._ort_device = "cpu" if config.device == "cpu" else "cuda"
        self._buckets: dict[tuple[int, ...], _Bucket] = {}
        self._static_lock = threading.Lock()

    # -- public ------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The exact settings in effect (for reports and benchmark logs)."""
        so = self.options
        return {
            "providers": self.providers,
            "intra_op_num_threads": so.intra_op_num_threads,
            "inter_op_num_threads": so.inter_op_num_threads,
            "graph_optimization_level": str(so.graph_optimization_level),
            "enable_mem_pattern": so.enable_mem_pattern,
            "enable_cpu_mem_arena": so.enable_cpu_mem_arena,
            "io_binding": self.io_binding,
            "cuda_graphs": self.config.cuda_graphs,
            "session_config": dict(self.config.session_config or {}),
            "disabled_optimizers": disabled_optimizers(self.providers),
        }

    def select(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Only the inputs this model declares (e.g. no token_type_ids for models without it)."""
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise ValueError(f"model input(s) {missing} not provided (have: {sorted(feeds)})")
        return {n: feeds[n] for n in self.input_names}

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run on whatever shape `feeds` have; returns the outputs as numpy arrays."""
        feeds = self.select(feeds)
        if self.io_binding:
            return self._run_bound(feeds)
        return self.session.run(self.output_names, feeds)

    def run_fixed(self, feeds: dict[str, np.ndarray], output_shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
        """Run through the pre-bound buffers of this exact shape (created on first use).

        With `cuda_graphs` on a GPU, ORT captures one CUDA graph per bucket (`gpu_graph_id`)
        and replays it afterwards; the caller pads inputs to a small set of bucket shapes.
        On CPU the same path runs without graphs (it is what the tests exercise).
        """
        feeds = self.select(feeds)
        key = tuple(s for n in self.input_names for s in feeds[n].shape)
        with self._static_lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = self._make_bucket(feeds, output_shapes)
            for name, array in feeds.items():
                bucket.inputs[name].update_inplace(np.ascontiguousarray(array))
            self.session.run_with_iobinding(bucket.binding, bucket.run_options)
            return [out.numpy().copy() for out in bucket.outputs]

    @property
    def n_buckets(self) -> int:
        return len(self._buckets)

    # -- internals -----------------------------------------------------------------
    def _run_bound(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        binding = self.session.io_binding()  # per call: bindings are not thread-safe
        for name, array in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))  # one host->device copy
        for name in self.output_names:
            binding.bind_output(name, self._ort_device, self.config.device_id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def _make_bucket(self, feeds: dict[str, np.ndarray], output_shapes: list[tuple[int, ...]]) -> _Bucket:
        import onnxruntime as ort

        device, device_id = self._ort_device, self.config.device_id
        binding = self.session.io_binding()
        inputs = {}
        for name, array in feeds.items():
            value = ort.OrtValue.ortvalue_from_shape_and_type(array.shape, array.dtype, device, device_id)
            binding.bind_ortvalue_input(name, value)
            inputs[name] = value
        out_types = {o.name: o.type for o in self.session.get_outputs()}
        outputs = []
        for name, shape in zip(self.output_names, output_shapes):
            dtype = np.float16 if "float16" in out_types[name] else np.float32
            value = ort.OrtValue.ortvalue_from_shape_and_type(shape, dtype, device, device_id)
            binding.bind_ortvalue_output(name, value)
            outputs.append(value)
        run_options = ort.RunOptions()
        if self.config.cuda_graphs and device != "cpu":
            # graph ids start at 1: -1 means "do not capture"
            run_options.add_run_config_entry("gpu_graph_id", str(len(self._buckets) + 1))
        return _Bucket(inputs=inputs, outputs=outputs, binding=binding, run_options=run_options)
