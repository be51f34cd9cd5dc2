"""Batch jobs on Ray Data: the runtime's Classifier / Translator in a pool of Ray actors.

Two ways in:

* `classify_dataset(ds, artifact, ...)` / `translate_dataset(...)` for a Ray Dataset the
  caller already has (`datasets`): `map_batches` with a callable class that loads the model once
  per actor, `compute=ActorPoolStrategy(size=workers)`.
* `score_file_on_ray` / `translate_file_on_ray`, the CLI's `--engine ray` (`file_jobs`, `cli`):
  the local file jobs of `runtime/jobs/score.py` and `translate.py` (same readers, chunks, part
  files, resume, merge and row-count check), with each uncommitted chunk computed by the pool.

The modules: `session` (importing Ray, a private loopback-only local Ray or a cluster),
`workers` (the pool's size and threads, the variant all actors load), `shipping` (the artifact
on the workers), `datasets`, `file_jobs` and `cli`.
"""
from onnxpress.runtime.jobs.ray.cli import score_command, translate_command, workers_from_args
from onnxpress.runtime.jobs.ray.datasets import ClassifyBatches, TranslateBatches, classify_dataset, translate_dataset
from onnxpress.runtime.jobs.ray.file_jobs import (ChunkPipeline, RayScoreJob, RayTranslateJob, score_file_on_ray,
                                                  translate_file_on_ray)
from onnxpress.runtime.jobs.ray.session import INSTALL_HINT, LOOPBACK_ENV, ray_session, require_ray
from onnxpress.runtime.jobs.ray.shipping import ArtifactSource, ship_artifact
from onnxpress.runtime.jobs.ray.workers import ModelInfo, Workers, resolve_variant

__all__ = ["INSTALL_HINT", "LOOPBACK_ENV", "ArtifactSource", "ChunkPipeline", "ClassifyBatches", "ModelInfo",
           "RayScoreJob", "RayTranslateJob", "TranslateBatches", "Workers", "classify_dataset", "ray_session",
           "require_ray", "resolve_variant", "score_command", "score_file_on_ray", "ship_artifact",
           "translate_command", "translate_dataset", "translate_file_on_ray", "workers_from_args"]
