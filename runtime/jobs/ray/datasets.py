"""The Dataset API: the runtime's models as Ray Data callable classes, one model per actor.

Each actor sets OMP_NUM_THREADS to its CPU share and plans each block (or, for a file job, each
chunk of it, exactly as the local job plans it) under the runtime's token budget by
`Classifier.classify`. Rows without usable text get a reason in `error` and nulls elsewhere.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterator

from onnxpress.runtime.jobs.ray.shipping import ArtifactSource, ship_artifact
from onnxpress.runtime.jobs.ray.workers import ModelInfo, Workers
from onnxpress.runtime.jobs.readers import Chunk, join_texts
from onnxpress.runtime.jobs.score import part_table
from onnxpress.runtime.jobs.translate import translate_lines

if TYPE_CHECKING:
    import pyarrow as pa
    import ray.data

CHUNK_COLUMN = "_chunk"  # internal: which file-job chunk a row belongs to


def _limit_threads(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)  # anything OpenMP-based in the actor stays in its share


def chunk_groups(batch: "pa.Table") -> Iterator[tuple[Any, "pa.Table"]]:
    """The batch split by file-job chunk (each chunk planned alone, exactly as the local job
    does); a batch without chunk ids is one group."""
    import pyarrow.compute as pc

    if CHUNK_COLUMN not in batch.column_names:
        yield None, batch
        return
    for index in pc.unique(batch.column(CHUNK_COLUMN)).to_pylist():
        yield index, batch.filter(pc.equal(batch.column(CHUNK_COLUMN), index))


def _texts_and_errors(table: "pa.Table", text_column: str) -> tuple[list[str | None], list[str | None]]:
    """Usable texts (None where not) and reasons, by the readers' rules; an existing `error`
    column (the file job's read errors) is kept."""
    values = table.column(text_column).to_pylist()
    earlier = table.column("error").to_pylist() if "error" in table.column_names else [None] * len(values)
    texts, errors = [], []
    for value, error in zip(values, earlier):
        text, reason = (None, error) if error is not None else join_texts([value])
        texts.append(text)
        errors.append(reason)
    return texts, errors


class ClassifyBatches:
    """A Ray Data callable class: appends label, score, truncated, prob_<label> and error columns."""

    def __init__(self, source: ArtifactSource, text_column: str, variant: str, options: dict[str, Any]):
        from onnxpress.runtime.classifier import Classifier

        _limit_threads(options["threads"])
        self.text_column = text_column
        self.classifier = Classifier.load(source.local_path(), variant=variant, **options)

    def __call__(self, batch: "pa.Table") -> "pa.Table":
        import pyarrow as pa

        return pa.concat_tables([self._score(group) for _, group in chunk_groups(batch)])

    def _score(self, table: "pa.Table") -> "pa.Table":
        texts, errors = _texts_and_errors(table, self.text_column)
        positions = [k for k, t in enumerate(texts) if t is not None]
        result = self.classifier.classify([texts[k] for k in positions])
        scored = part_table(Chunk(0, 0, texts, errors), list(self.classifier.labels), result.probs, result.truncated,
                            positions, with_probs=True)
        for name in scored.column_names[1:]:  # the local job's columns but `row`: the caller's rows keep theirs
            table = _set_column(table, name, scored.column(name))
        return table


class TranslateBatches:
    """A Ray Data callable class: appends `translation` (one line) and `error` columns."""

    def __init__(self, source: ArtifactSource, text_column: str, variant: str, options: dict[str, Any],
                 beam_size: int | None):
        from onnxpress.runtime.translator import Translator

        _limit_threads(options["threads"])
        self.text_column, self.beam_size = text_column, beam_size
        self.translator = Translator.load(source.local_path(), variant=variant, **options)

    def __call__(self, batch: "pa.Table") -> "pa.Table":
        import pyarrow as pa

        return pa.concat_tables([self._translate(group) for _, group in chunk_groups(batch)])

    def _translate(self, table: "pa.Table") -> "pa.Table":
        import pyarrow as pa

        values = table.column(self.text_column).to_pylist()
        if CHUNK_COLUMN in table.column_names:  # a file chunk: blank and undecodable lines give blank lines
            errors: list[str | None] = [None] * len(values)
            texts = [v or "" for v in values]
        else:
            texts, errors = _texts_and_errors(table, self.text_column)
            texts = [t or "" for t in texts]
        lines, _ = translate_lines(self.translator, texts, self.beam_size)
        table = _set_column(table, "translation", pa.array(lines, type=pa.string()))
        return _set_column(table, "error", pa.array(errors, type=pa.string()))


def _set_column(table: "pa.Table", name: str, column: Any) -> "pa.Table":
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, column)
    return table.append_column(name, column)


def classify_dataset(ds: "ray.data.Dataset", artifact: str | os.PathLike, *, text_column: str = "text",
                     workers: Workers | None = None, transport: str = "auto") -> "ray.data.Dataset":
    """`ds` with label, score, truncated, prob_<label> and error columns added (lazy, like any
    `map_batches`). A row without usable text gets its reason in `error` and nulls elsewhere."""
    workers = workers or Workers()
    variant = ModelInfo(artifact, "text-classification", workers).variant
    options = {**workers.load_options(), "max_batch_tokens": workers.max_batch_tokens,
               "max_batch_size": workers.max_batch_size}
    return ds.map_batches(ClassifyBatches, fn_constructor_args=(ship_artifact(artifact, transport), text_column,
                                                                variant, options), **workers.map_args())


def translate_dataset(ds: "ray.data.Dataset", artifact: str | os.PathLike, *, text_column: str = "text",
                      beam_size: int | None = None, workers: Workers | None = None,
                      transport: str = "auto") -> "ray.data.Dataset":
    """`ds` with `translation` and `error` columns added (lazy)."""
    workers = workers or Workers()
    variant = ModelInfo(artifact, "translation", workers).variant
    options = {**workers.load_options(), "max_batch_size": workers.max_batch_size}
    return ds.map_batches(TranslateBatches, fn_constructor_args=(ship_artifact(artifact, transport), text_column,
                                                                 variant, options, beam_size),
                          **workers.map_args())
