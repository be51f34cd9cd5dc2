"""The measuring core: interleaved timing, percentiles, spread, thread budgets, environment.

Everything here is independent of what is being measured: a contender is anything with a
`name`, a `threads()` report and callables the runner times. The rules it enforces are the
ones peers' benchmarks get wrong:

- every contender sees the *same* inputs, in the same round, interleaved (A B C A B C ...),
  with the starting contender rotated each round so that none always runs first;
- warm-up calls are made and discarded before timing;
- thread budgets are asserted equal before and after timing;
- a short pause between timed calls lets the previous contender's spinning worker threads
  (ORT and OpenMP both spin after a run) go idle instead of stealing the next one's cores;
- results are percentiles of many calls plus *paired* ratios (same batch, same round), which
  survive the slow drift of a shared, noisy machine far better than single numbers.
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from onnxpress.runtime.int8_gemm import PRECISE_INT8_ENTRY, int8_kernel, read_cpuinfo

# A run whose per-batch repeat spread (max-min over mean, median across batches) exceeds this
# is flagged: its absolute numbers are not trustworthy, only ratios might be.
SPREAD_WARN = 0.25

# CPU flags that decide which GEMM kernels ONNX Runtime and PyTorch can use.
RELEVANT_FLAGS = (
    "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512cd",
    "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "avx512ifma", "avx512vbmi",
    "amx_tile", "amx_int8", "amx_bf16", "amx_fp16",
)

PACKAGES = (
    "onnxpress", "onnxruntime-gpu", "onnxruntime", "onnx", "torch", "transformers", "optimum",
    "optimum-onnx", "ctranslate2", "openvino", "nncf", "tokenizers", "numpy", "matplotlib", "pytest-benchmark",
)


class HarnessError(RuntimeError):
    """A benchmark precondition failed (unequal threads, diverging inputs): results would lie."""


# -- statistics ---------------------------------------------------------------------------

def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99, mean, min, max and count of a list of seconds (returned in milliseconds)."""
    if not samples:
        return {"n": 0}
    arr = np.asarray(samples, dtype=np.float64) * 1e3
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {
        "n": int(arr.size), "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99),
        "mean_ms": float(arr.mean()), "min_ms": float(arr.min()), "max_ms": float(arr.max()),
    }


def repeat_spread(samples: Sequence[float], keys: Sequence[Any]) -> float | None:
    """Run-to-run noise: for each input (key) timed more than once, (max-min)/mean; median of those.

    Inputs differ in length, so the spread of all samples mostly measures the length
    distribution; only repeats of the *same* input measure the machine's noise.
    """
    by_key: dict[Any, list[float]] = {}
    for value, key in zip(samples, keys):
        by_key.setdefault(key, []).append(value)
    spreads = [(max(v) - min(v)) / (sum(v) / len(v)) for v in by_key.values() if len(v) > 1 and sum(v) > 0]
    return float(statistics.median(spreads)) if spreads else None


def chunk_spread(values: Sequence[float]) -> float | None:
    """(max-min)/median of per-chunk rates (comparable chunks of one workload)."""
    values = [v for v in values if v > 0]
    if len(values) < 2:
        return None
    return float((max(values) - min(values)) / statistics.median(values))


def paired_ratio(reference: Sequence[float], other: Sequence[float]) -> float | None:
    """Median over pairs (same input, same round) of reference_time / other_time: >1 = faster."""
    ratios = [r / o for r, o in zip(reference, other) if o > 0]
    return float(statistics.median(ratios)) if ratios else None


# -- thread budgets -------------------------------------------------------------------------

def assert_equal_threads(reports: dict[str, dict[str, Any]], threads: int) -> None:
    """Every contender must compute with exactly `threads` threads; raise HarnessError otherwise.

    `reports` maps contender name -> its `threads()` dict, whose "compute" entry is the number
    of threads its math runs on (torch.get_num_threads(), ORT intra_op_num_threads).
    """
    wrong = {name: rep.get("compute") for name, rep in reports.items() if rep.get("compute") != threads}
    if wrong:
        detail = ", ".join(f"{n}={v}" for n, v in wrong.items())
        raise HarnessError(f"thread budgets differ from the requested {threads}: {detail}")


# -- interleaved timing ---------------------------------------------------------------------

@dataclass
class Timed:
    """Samples of one contender in one cell (mode x batch size)."""

    seconds: list[float] = field(default_factory=list)
    keys: list[int] = field(default_factory=list)  # which input each sample used
    rounds: list[int] = field(default_factory=list)
    outputs: dict[int, Any] = field(default_factory=dict)  # first output per input, for agreement


def run_interleaved(
    calls: dict[str, Callable[[int], Any]],
    n_inputs: int,
    *,
    warmup: int = 2,
    min_rounds: int = 5,
    max_rounds: int = 100,
    time_budget_s: float = 20.0,
    gap_s: float = 0.002,
    fit_inputs: bool = False,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, Timed]:
    """Time `calls[name](i)` for every contender, interleaved, input i cycling over `n_inputs`.

    Round r uses input r % n_inputs for all contenders, in an order rotated by r. Stops after
    `max_rounds`, or once `time_budget_s` has passed and at least `min_rounds` are done.
    Warm-up calls (on inputs 0..warmup-1) are not recorded.

    `fit_inputs`: estimate a round's cost from the last warm-up calls and use only as many
    distinct inputs as the budget can time twice each (and at least one more round than
    inputs), so that every input is repeated and the repeat spread can be measured.
    """
    names = list(calls)
    round_est = 0.0
    for name in names:
        for i in range(warmup):
            t0 = time.perf_counter()
            calls[name](i % n_inputs)
            if i == warmup - 1:
                round_est += time.perf_counter() - t0 + gap_s
    if fit_inputs and round_est > 0:
        n_inputs = max(1, min(n_inputs, int(time_budget_s / round_est) // 2))
        min_rounds = max(min_rounds, n_inputs + 1)
    results = {name: Timed() for name in names}
    start = time.perf_counter()
    for r in range(max_rounds):
        if r >= min_rounds and time.perf_counter() - start > time_budget_s:
            break
        key = r % n_inputs
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            if gap_s:
                time.sleep(gap_s)
            t0 = time.perf_counter()
            out = calls[name](key)
            elapsed = time.perf_counter() - t0
            timed = results[name]
            timed.seconds.append(elapsed)
            timed.keys.append(key)
            timed.rounds.append(r)
            timed.outputs.setdefault(key, out)
        if on_round:
            on_round(r)
    return results


def agreement(outputs_a: dict[int, Sequence[Any]], outputs_b: dict[int, Sequence[Any]]) -> float | None:
    """Fraction of identical predictions over the inputs both contenders saw."""
    same = total = 0
    for key in outputs_a.keys() & outputs_b.keys():
        a, b = list(outputs_a[key]), list(outputs_b[key])
        total += len(a)
        same += sum(int(x == y) for x, y in zip(a, b))
    return same / total if total else None


# -- environment ----------------------------------------------------------------------------

def cpu_info(path: str = "/proc/cpuinfo") -> dict[str, Any]:
    """CPU model, the GEMM-relevant flags it has (and lacks), and logical CPU counts."""
    model, flags = read_cpuinfo(path)
    model, flags = model or platform.processor() or "unknown", flags or set()
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = os.cpu_count()
    return {
        "model": model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "flags": sorted(f for f in RELEVANT_FLAGS if f in flags),
        "flags_missing": sorted(f for f in RELEVANT_FLAGS if f not in flags),
        "all_flags_count": len(flags),
    }


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(repo: Path | None = None) -> str | None:
    repo = repo or Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def memory_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        return None
    return None


def capture_environment() -> dict[str, Any]:
    """Everything needed to judge or reproduce a figure: machine, load, versions, thread env."""
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_info(),
        "int8_gemm": int8_kernel(),
        "memory_gib": memory_total_gib(),
        "load_average_1_5_15": list(load) if load else None,
        "nice": os.nice(0) if hasattr(os, "nice") else None,
        "thread_env": {k: os.environ[k] for k in (
            "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "TOKENIZERS_PARALLELISM",
        ) if k in os.environ},
        "versions": package_versions(),
        "git_commit": git_commit(),
    }


def ort_session_options(session: Any) -> dict[str, Any]:
    """The settings of an onnxruntime.InferenceSession that change its speed, as recorded."""
    so = session.get_session_options()
    entries = {}
    for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning",
                "session.dynamic_block_base", "session.intra_op_thread_affinities", PRECISE_INT8_ENTRY):
        try:
            value = so.get_session_config_entry(key)
        except Exception:  # noqa: BLE001 - unset entries raise in some ORT versions
            value = None
        if value:
            entries[key] = value
    return {
        "providers": session.get_providers(),
        "intra_op_num_threads": so.intra_op_num_threads,
        "inter_op_num_threads": so.inter_op_num_threads,
        "execution_mode": str(so.execution_mode),
        "graph_optimization_level": str(so.graph_optimization_level),
        "enable_cpu_mem_arena": so.enable_cpu_mem_arena,
        "enable_mem_pattern": so.enable_mem_pattern,
        "config_entries": entries,
    }


def warn_spread(label: str, spread: float | None, threshold: float = SPREAD_WARN) -> str | None:
    """A warning string (also printed to stderr at once) when `spread` exceeds `threshold`."""
    if spread is None or spread <= threshold:
        return None
    message = (f"{label}: run-to-run spread {spread:.0%} exceeds {threshold:.0%}; the machine is "
               "noisy, trust ratios more than absolute figures (or re-run when it is quiet)")
    print(f"warning: {message}", file=sys.stderr, flush=True)
    return message
