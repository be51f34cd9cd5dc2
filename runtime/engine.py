"""One ONNX Runtime session and the ways to feed it: plain `run`, IO binding, fixed-shape buckets.

Session settings are in `onnxpress.runtime.session_setup`; the measured reasons for them are in
benchmarks/README.md ("Runtime session settings").

Every run goes through here, so every ONNX Runtime failure at run time (out of memory, a
provider failing) becomes one `InferenceError` naming the provider, the variant and the shapes.

Thread safety: `InferenceSession.run` is thread-safe; IO binding objects are not, so a fresh
binding is made per call. Fixed-shape buckets own their bound buffers and are used one caller
at a time; a session with CUDA graphs takes one exclusive path for every run, as ORT requires.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from onnxpress.errors import InferenceError, UserError
from onnxpress.runtime.cuda_graphs import PLACEMENT_CONFIG, Bucket, capture_blockers, placement
from onnxpress.runtime.devices import CPU_EP, provider_chain
from onnxpress.runtime.session_setup import config_entries, disabled_optimizers, session_options
from onnxpress.runtime.tensorrt import tensorrt_options

__all__ = ["Engine", "EngineConfig", "disabled_optimizers", "session_options"]

log = logging.getLogger("onnxpress.runtime")


@dataclass
class EngineConfig:
    device: str = "cpu"  # cpu | cuda | tensorrt (already resolved)
    threads: int | None = None
    io_binding: bool | None = None  # None: on for cuda/tensorrt, off for cpu
    cuda_graphs: bool = False  # fixed-shape buckets + one captured CUDA graph per bucket
    mem_arena: bool = True
    device_id: int = 0
    fp16: bool = False  # TensorRT without `trt_options`: allow fp16 kernels
    trt_cache_dir: str | None = None  # TensorRT without `trt_options`: engine/timing cache folder
    providers: list[Any] | None = field(default=None)  # explicit ORT providers (overrides device)
    session_config: dict[str, str] | None = None  # extra SessionOptions config entries
    trt_options: dict[str, str] | None = None  # full TensorRT options (see runtime/tensorrt.py)
    variant: str = ""  # named in error messages


class Engine:
    """A shared ONNX Runtime session; `run(feeds)` is safe to call from several threads."""

    def __init__(self, model_path: str | os.PathLike, config: EngineConfig | None = None):
        self.config = config = config or EngineConfig()
        self.device = config.device
        self.model_path = str(model_path)
        self.graph_fallback: str | None = None  # why CUDA graphs were asked for but are not used
        wants_graphs = config.cuda_graphs and config.device != "cpu"
        if wants_graphs and config.device == "tensorrt" and not config.providers:
            self.graph_fallback = "CUDA graphs need every node on the CUDA provider; TensorRT runs in front of it"
            wants_graphs = False
        self.session, self.options = self._create(wants_graphs)
        if wants_graphs and not self.graph_fallback:
            self.graph_fallback = self._graph_blockers()
            if self.graph_fallback:
                self.session, self.options = self._create(False)
        if self.graph_fallback and config.cuda_graphs:
            log.warning("%s: CUDA graphs off, ordinary runs instead: %s", self.model_path, self.graph_fallback)
        self.cuda_graphs = wants_graphs and not self.graph_fallback
        self.providers = self.session.get_providers()
        if config.device != "cpu" and self.providers[0] == CPU_EP:
            raise UserError(f"onnxruntime could not start the {config.device} provider for {model_path}")
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.io_binding = config.device != "cpu" if config.io_binding is None else config.io_binding
        self._ort_device = "cpu" if config.device == "cpu" else "cuda"
        self._run_options = self._make_run_options()
        if self.cuda_graphs:  # a run outside the buckets must not capture (graph id -1: never)
            self._run_options.add_run_config_entry("gpu_graph_id", "-1")
        self._buckets: dict[tuple[int, ...], Bucket] = {}
        self._buckets_lock = threading.Lock()
        # ORT: no concurrent Run() on a session that replays CUDA graphs
        self._exclusive = threading.Lock() if self.cuda_graphs else contextlib.nullcontext()

    # -- session -------------------------------------------------------------------
    def _create(self, cuda_graphs: bool) -> tuple[Any, Any]:
        import onnxruntime as ort

        config = self.config
        providers = config.providers or provider_chain(
            config.device, device_id=config.device_id, cuda_graph=cuda_graphs,
            trt_options=config.trt_options or tensorrt_options("fp16" if config.fp16 else "fp32",
                                                               config.trt_cache_dir),
        )
        entries = dict(config.session_config or {})
        if cuda_graphs:
            entries[PLACEMENT_CONFIG] = "1"
        options = session_options(config.threads, config.mem_arena, config=entries)
        try:
            session = ort.InferenceSession(self.model_path, sess_options=options, providers=providers,
                                           disabled_optimizers=disabled_optimizers(providers))
        except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind exception types
            first = _first_line(exc)
            if cuda_graphs and "graph capture" in first.lower():
                self.graph_fallback = f"onnxruntime refused graph capture: {first}"
                return self._create(False)
            raise UserError(f"onnxruntime {ort.__version__} cannot load {self.model_path}: {first}; if the file "
                            "was damaged, copy the artifact again or re-export it") from None
        return session, options

    def _graph_blockers(self) -> str | None:
        nodes = placement(self.session)
        if nodes is None:
            return None  # this ORT cannot tell; a failed capture at run time says so
        return "; ".join(capture_blockers(nodes)) or None

    @staticmethod
    def _make_run_options() -> Any:
        import onnxruntime as ort

        return ort.RunOptions()

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
            "cuda_graphs": self.cuda_graphs,
            "cuda_graphs_fallback": self.graph_fallback,
            "session_config": config_entries(self.config.session_config),
            "disabled_optimizers": disabled_optimizers(self.providers),
        }

    def select(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Only the inputs this model declares (e.g. no token_type_ids for models without it)."""
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise ValueError(f"model input(s) {missing} not provided (have: {sorted(feeds)})")
        return {n: feeds[n] for n in self.input_names}

    def run(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None, *,
            keep_on_device: Collection[str] = ()) -> list[Any]:
        """Run on whatever shape `feeds` have; the outputs named (all by default) in order.

        Feeds may be numpy arrays or OrtValues already on the device (`to_device`). Outputs
        come back as numpy arrays, except those in `keep_on_device`: OrtValues that stay on the
        device for the next run (IO binding).
        """
        feeds = self.select(feeds)
        names = list(outputs) if outputs is not None else self.output_names
        bound = self.io_binding or keep_on_device or any(not isinstance(v, np.ndarray) for v in feeds.values())
        with self._exclusive, self._failures_named(feeds):
            if bound:
                return self._run_bound(feeds, names, keep_on_device)
            return self.session.run(names, feeds, self._run_options)

    def to_device(self, array: np.ndarray) -> Any:
        """An OrtValue holding `array` on this engine's device, to feed several runs."""
        import onnxruntime as ort

        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self._ort_device,
                                                self.config.device_id)

    def run_fixed(self, feeds: Mapping[str, np.ndarray], output_shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
        """Run through the pre-bound buffers of this exact shape (created on first use).

        With CUDA graphs active, ORT captures one graph per bucket (`gpu_graph_id`) and replays
        it afterwards; the caller pads inputs to a small set of bucket shapes. Elsewhere the same
        path runs without graphs (it is what the CPU tests exercise).
        """
        feeds = self.select(feeds)
        key = tuple(s for n in self.input_names for s in feeds[n].shape)
        with self._buckets_lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = self._make_bucket(feeds, output_shapes)
        with self._exclusive, bucket.lock, self._failures_named(feeds):
            for name, array in feeds.items():
                bucket.inputs[name].update_inplace(np.ascontiguousarray(array))
            self.session.run_with_iobinding(bucket.binding, bucket.run_options)
            return [out.numpy().copy() for out in bucket.outputs]

    @property
    def n_buckets(self) -> int:
        return len(self._buckets)

    # -- internals -----------------------------------------------------------------
    @contextlib.contextmanager
    def _failures_named(self, feeds: Mapping[str, Any]):
        try:
            yield
        except (UserError, ValueError, TypeError):
            raise
        except Exception as exc:  # noqa: BLE001 - ORT's pybind errors share no base but Exception
            raise InferenceError(self.failure_message(exc, feeds)) from exc

    def failure_message(self, exc: BaseException, feeds: Mapping[str, Any]) -> str:
        shapes = ", ".join(f"{n}{list(_shape(v))}" for n, v in feeds.items())
        text = _first_line(exc)
        if any(w in text.lower() for w in ("out of memory", "oom", "failed to allocate", "bad_alloc")):
            hint = "out of memory: lower max_batch_tokens / max_batch_size"
        else:
            hint = "try another variant or device='cpu'"
        variant = f"variant {self.config.variant!r}, " if self.config.variant else ""
        return (f"onnxruntime run failed on {self.providers[0]} ({variant}{os.path.basename(self.model_path)}, "
                f"inputs {shapes}): {text}; {hint}")

    def _run_bound(self, feeds: dict[str, Any], outputs: list[str], keep: Collection[str]) -> list[Any]:
        binding = self.session.io_binding()  # per call: bindings are not thread-safe
        for name, value in feeds.items():
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, np.ascontiguousarray(value))  # one host->device copy
            else:
                binding.bind_ortvalue_input(name, value)
        for name in outputs:
            if name in keep:
                binding.bind_output(name, self._ort_device, self.config.device_id)
            else:
                binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding, self._run_options)
        return [value if name in keep else value.numpy() for name, value in zip(outputs, binding.get_outputs())]

    def _make_bucket(self, feeds: dict[str, np.ndarray], output_shapes: list[tuple[int, ...]]) -> Bucket:
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
        run_options = self._make_run_options()
        if self.cuda_graphs:
            # graph ids start at 1: -1 means "do not capture"
            run_options.add_run_config_entry("gpu_graph_id", str(len(self._buckets) + 1))
        return Bucket(inputs=inputs, outputs=outputs, binding=binding, run_options=run_options)


def _shape(value: Any) -> tuple[int, ...]:
    shape = getattr(value, "shape", None)
    return tuple(shape() if callable(shape) else shape or ())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
