"""The CLI's `--engine ray`: `onnxpress score ... --engine ray` and `onnxpress translate ... --engine ray`."""
from __future__ import annotations

import sys
from typing import Any

from onnxpress.errors import UserError
from onnxpress.runtime.jobs.ray.file_jobs import score_file_on_ray, translate_file_on_ray
from onnxpress.runtime.jobs.ray.session import ray_session, require_ray
from onnxpress.runtime.jobs.ray.workers import ModelInfo, Workers
from onnxpress.runtime.jobs.score import ScoreConfig, check_paths
from onnxpress.runtime.jobs.translate import TranslateConfig


def workers_from_args(args: Any, ray: Any) -> Workers:
    """The pool from `--workers` (default: the cluster's CPUs / threads), `--threads-per-worker`,
    `--device` (cuda: one GPU per actor), `--variant` and the batch flags."""
    if args.device not in ("auto", "cpu", "cuda"):
        raise UserError(f"--engine ray runs on cpu or cuda, not {args.device}")
    threads = args.threads_per_worker
    count = args.workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
    return Workers(workers=count, threads=threads, gpus=1.0 if args.device == "cuda" else 0.0, variant=args.variant,
                   max_batch_tokens=args.max_batch_tokens, max_batch_size=args.max_batch_size)


def _pool(artifact: str, task: str, workers: Workers) -> str:
    variant = ModelInfo(artifact, task, workers).variant
    return f"[{variant} on Ray: {workers.workers} actors x {workers.threads} threads]"


def score_command(args: Any) -> int:
    """`onnxpress score ... --engine ray`."""
    require_ray(local=args.address is None)  # before reading: says how to install Ray
    config = ScoreConfig.from_args(args)
    check_paths(config)
    config.reader().check()  # before starting Ray
    with ray_session(args.address) as ray:
        workers = workers_from_args(args, ray)
        summary = score_file_on_ray(args.artifact, config, workers)
    print(f"{summary.line()} {_pool(args.artifact, 'text-classification', workers)}", file=sys.stderr)
    return 0


def translate_command(args: Any) -> int:
    """`onnxpress translate --input ... --output ... --engine ray`."""
    if not (args.input and args.output):
        raise UserError("--engine ray translates files: give --input and --output")
    require_ray(local=args.address is None)  # before reading: says how to install Ray
    config = TranslateConfig.from_args(args)
    with ray_session(args.address) as ray:
        workers = workers_from_args(args, ray)
        summary = translate_file_on_ray(args.artifact, config, workers)
    print(f"{summary.line()} {_pool(args.artifact, 'translation', workers)}", file=sys.stderr)
    return 0
