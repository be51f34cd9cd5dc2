"""Independent batches run side by side: how a small model uses more than one core.

A decoder step of a small translator is a few tiny GEMMs plus per-op overhead and the numpy search
between steps, so a second intra-op thread mostly waits (on the 2-core machine it made the demo
model slower); a small encoder's ops on a batch of short texts split no better. Two batches run
at once, each on its own thread with a one-thread session run, keep both cores busy:
`InferenceSession.run` is thread-safe and releases the GIL, so one batch's Python (search,
padding) runs while the other computes. A large model's GEMMs split well across intra-op threads
instead. `split_threads` applies the measured rule (benchmarks/README.md, "Translator" and
"Parallel batches"); the batches, and so the results, are the same either way. The price: one
batch alone (a single short request) runs on one thread.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

from onnxpress.errors import UserError

T = TypeVar("T")
R = TypeVar("R")

# Models up to this many weights run parallel batches. Measured faster than intra-op threads at
# both translator presets (decoder graphs of ~1.4M and ~4.3M weights) and on MiniLM-L6 (22.7M,
# int8 and fp32) (benchmarks/README.md, "Translator", "Parallel batches"); larger ones are
# unmeasured and keep one batch at a time, whose latency intra-op threads shorten.
PARALLEL_MAX_PARAMETERS = 30_000_000


BYTES_PER_WEIGHT = {"fp32": 4, "fp16": 2, "int8": 1}


def model_parameters(model_path: str | os.PathLike, precision: str) -> int:
    """Approximate weight count of an ONNX graph: its file size over the bytes per weight."""
    return os.path.getsize(model_path) // BYTES_PER_WEIGHT.get(precision, 4)


def split_threads(threads: int | None, parameters: int, workers: int | str | None = "auto") -> tuple[int, int]:
    """(parallel batches, intra-op threads per session) for a CPU thread budget.

    threads None means one per available core (kept as None, ORT's default, for one batch). workers "auto" (or None): all threads as parallel
    batches for a model of at most PARALLEL_MAX_PARAMETERS weights, else one batch at a time
    with every thread intra-op; an int asks for that many batches, sharing the threads.
    """
    budget = len(os.sched_getaffinity(0)) if threads is None else int(threads)
    if budget < 1:
        raise UserError(f"threads must be >= 1 (got {threads})")
    if workers in ("auto", None):
        n = budget if parameters <= PARALLEL_MAX_PARAMETERS else 1
    else:
        try:
            n = int(workers)
        except (TypeError, ValueError):
            raise UserError(f"workers must be 'auto' or an integer >= 1 (got {workers!r})") from None
        if n < 1:
            raise UserError(f"workers must be 'auto' or an integer >= 1 (got {workers!r})")
    return n, (threads if n == 1 else max(1, budget // n))  # one batch: the session's own default


def runs_for(device: str, threads: int | None, model_path: str | os.PathLike, precision: str,
             workers: int | str | None = "auto") -> tuple["ParallelRuns", int | None]:
    """The parallel batches for a model on `device` and the intra-op threads of its session(s):
    `split_threads` on CPU, by the model's size; one batch with `threads` unchanged elsewhere."""
    if device != "cpu":
        return ParallelRuns(1), threads
    n, per_session = split_threads(threads, model_parameters(model_path, precision), workers)
    return ParallelRuns(n), per_session


class ParallelRuns:
    """`map(fn, items)` on up to `workers` threads, results in item order (sequential for 1)."""

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise UserError(f"workers must be >= 1 (got {workers})")
        self.workers = int(workers)
        self._pool = (ThreadPoolExecutor(self.workers, thread_name_prefix="onnxpress-batch")
                      if self.workers > 1 else None)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """fn over items; if calls raise, the exception of the first failing item (in item order) is raised."""
        if self._pool is None or len(items) < 2:
            return [fn(item) for item in items]
        return list(self._pool.map(fn, items))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"ParallelRuns(workers={self.workers})"
