"""`--engine ray` file jobs: the local score / translate jobs with their chunks computed on Ray.

Same readers, chunks, part files, resume, merge and row-count check as the local jobs; only each
uncommitted chunk's inference runs in the actor pool of `datasets`. A killed actor is restarted
by Ray Data and its in-flight block retried, and the driver takes exactly one result per chunk,
so every row comes out once. A killed driver loses only chunks not yet committed: the same
command run again resumes from the committed part files (the protocol of `resumable.py`).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

from onnxpress.runtime.jobs.ray.datasets import CHUNK_COLUMN, chunk_groups, classify_dataset, translate_dataset
from onnxpress.runtime.jobs.ray.session import require_ray
from onnxpress.runtime.jobs.ray.workers import ModelInfo, Workers
from onnxpress.runtime.jobs.readers import Chunk
from onnxpress.runtime.jobs.resumable import part_name
from onnxpress.runtime.jobs.score import ScoreConfig, ScoreJob, ScoreSummary, part_table, run_score_job
from onnxpress.runtime.jobs.translate import (
    TranslateConfig, TranslateJob, TranslateSummary, quantizes_per_batch, run_translate_job,
)
from onnxpress.runtime.jobs.writers import write_lines

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class _Pending:
    """A chunk as the job core sees it: its index and row count (the rows are in the object store)."""

    index: int
    rows: int

    def __len__(self) -> int:
        return self.rows


class ChunkPipeline:
    """Sends a job's uncommitted chunks through an actor pool and hands back each chunk's rows.

    The input is read once on the driver; each uncommitted chunk goes into the object store as
    one block, the pool computes the blocks in any order, and `result(index)` waits for a chunk's
    rows (buffering others that arrive first) so the job core can commit parts in input order.
    """

    def __init__(self, work: Path, part_suffix: str):
        self.work, self.part_suffix = work, part_suffix
        self._results: Iterator["pa.Table"] | None = None
        self._buffer: dict[int, list["pa.Table"]] = {}
        self.rows = 0

    def start(self, chunks: Iterator[Chunk], to_table: Any, transform: Any) -> Iterator[_Pending]:
        """Read every chunk, submit the uncommitted ones (`to_table`, then `transform` on the
        Dataset), and yield them all, committed or not, in order."""
        ray = require_ray()
        refs, pending = [], []
        for chunk in chunks:
            pending.append(_Pending(chunk.index, len(chunk)))
            self.rows += len(chunk)
            if not (self.work / part_name(chunk.index, self.part_suffix)).exists():
                refs.append(ray.put(to_table(chunk)))
        if refs:
            ds = transform(ray.data.from_arrow_refs(refs))
            self._results = iter(ds.iter_batches(batch_size=None, batch_format="pyarrow"))
        yield from pending

    def result(self, chunk: _Pending) -> "pa.Table":
        import pyarrow as pa
        import pyarrow.compute as pc

        while sum(t.num_rows for t in self._buffer.get(chunk.index, [])) < chunk.rows:
            if self._results is None:
                raise RuntimeError(f"chunk {chunk.index} was never submitted")
            batch = next(self._results, None)
            if batch is None:
                raise RuntimeError(f"the Ray job ended without chunk {chunk.index}")
            for index, group in chunk_groups(batch):
                self._buffer.setdefault(index, []).append(group)
        table = pa.concat_tables(self._buffer.pop(chunk.index)).drop_columns([CHUNK_COLUMN])
        return table.take(pc.sort_indices(table, [("row", "ascending")]))


def _chunk_table(chunk: Chunk, with_ids: bool) -> "pa.Table":
    import numpy as np
    import pyarrow as pa

    n = len(chunk)
    columns = {CHUNK_COLUMN: pa.array(np.full(n, chunk.index, dtype=np.int64)),
               "row": pa.array(np.arange(chunk.start, chunk.start + n, dtype=np.int64)),
               "text": pa.array(chunk.texts, type=pa.string()),
               "error": pa.array(chunk.errors, type=pa.string())}
    if with_ids:
        columns["id"] = pa.array(chunk.ids, type=pa.string())
    return pa.table(columns)


class _OnRay:
    """What a Ray file job adds to its local job: the artifact to ship, the pool, the pipeline."""

    task = ""
    work: Path
    part_suffix: str

    def __init__(self, artifact: str | os.PathLike, config: Any, workers: Workers, transport: str = "auto"):
        super().__init__(ModelInfo(artifact, self.task, workers), config)  # type: ignore[call-arg]
        self.artifact_path, self.workers, self.transport = artifact, workers, transport
        self.pipeline = ChunkPipeline(self.work, self.part_suffix)


class RayScoreJob(_OnRay, ScoreJob):
    """`ScoreJob` whose chunks are scored by a Ray actor pool; parts, resume and merge unchanged."""

    task = "text-classification"

    def chunks(self) -> Iterator[Any]:
        workers = replace(self.workers, variant=self.classifier.variant)
        return self.pipeline.start(
            self.reader.chunks(), lambda chunk: _chunk_table(chunk, self.config.id_column is not None),
            lambda ds: classify_dataset(ds, self.artifact_path, workers=workers, transport=self.transport))

    def total_rows(self) -> int | None:
        return self.reader.total_rows or self.pipeline.rows or None

    def write_part(self, chunk: Any, fh: BinaryIO) -> None:
        import numpy as np
        import pyarrow.parquet as pq

        table = self.pipeline.result(chunk)
        rows = table.column("row").to_numpy()
        errors = table.column("error").to_pylist()
        ids = table.column("id").to_pylist() if "id" in table.column_names else None
        read = Chunk(chunk.index, int(rows[0]), [None] * len(rows), errors, ids)
        positions = [k for k, e in enumerate(errors) if e is None]
        labels = self.classifier.labels or [c[len("prob_"):] for c in table.column_names if c.startswith("prob_")]
        probs = np.stack([table.column(f"prob_{name}").to_numpy(zero_copy_only=False) for name in labels], axis=1)
        truncated = table.column("truncated").to_pylist()
        part = part_table(read, labels, probs[positions], [truncated[k] for k in positions], positions,
                           self.config.probabilities)
        pq.write_table(part, fh)


class RayTranslateJob(_OnRay, TranslateJob):
    """`TranslateJob` whose chunks are translated by a Ray actor pool."""

    task = "translation"
    translates_here = False  # the actors translate: the truncated lines are read from the tokenizer

    @functools.cached_property
    def source(self) -> Any:
        from onnxpress.runtime.translator import source_tokenizer

        return source_tokenizer(self.translator.artifact)

    def batch_limits(self) -> list[int | None] | None:
        if not quantizes_per_batch(self.translator.artifact, self.translator.variant):
            return None
        return [self.workers.max_batch_tokens, self.workers.max_batch_size]  # None: the actors' defaults

    def chunks(self) -> Iterator[Any]:
        workers = replace(self.workers, variant=self.translator.variant)
        return self.pipeline.start(
            super().chunks(), lambda chunk: _chunk_table(chunk, False),
            lambda ds: translate_dataset(ds, self.artifact_path, beam_size=self.config.beam_size,
                                         workers=workers, transport=self.transport))

    def write_part(self, chunk: Any, fh: BinaryIO) -> None:
        write_lines(fh, self.pipeline.result(chunk).column("translation").to_pylist())


def score_file_on_ray(artifact: str | os.PathLike, config: ScoreConfig, workers: Workers | None = None, *,
                      transport: str = "auto") -> ScoreSummary:
    """Score a file as `run_score` does, its chunks computed on the connected Ray cluster."""
    return run_score_job(RayScoreJob(artifact, config, workers or Workers(), transport))


def translate_file_on_ray(artifact: str | os.PathLike, config: TranslateConfig, workers: Workers | None = None, *,
                          transport: str = "auto") -> TranslateSummary:
    """Translate a file as `run_translate` does, its chunks computed on the connected Ray cluster."""
    return run_translate_job(RayTranslateJob(artifact, config, workers or Workers(), transport))
