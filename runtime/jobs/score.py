"""File scoring: every row of a csv / jsonl / parquet file through a classifier, resumable.

The job's specifics only: the part file is a parquet table of one chunk's rows (scored and
error rows together, `row` = 0-based input row, `id` = the id column as text); the merge
splits it into the output and the errors file. The protocol is `runtime/jobs/resumable.py`.
Needs pyarrow (the `scoring` extra).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Sequence

from onnxpress.errors import UserError
from onnxpress.runtime.jobs.readers import Chunk, RowReader, open_reader
from onnxpress.runtime.jobs.resumable import JobConfig, Merged, ResumableJob, run_job
from onnxpress.runtime.jobs.writers import TableWriter, output_format

DEFAULT_CHUNK_ROWS = 2048


@dataclass(kw_only=True)
class ScoreConfig(JobConfig):
    text_columns: list[str] = field(default_factory=lambda: ["text"])
    id_column: str | None = None
    errors: Path | None = None  # default: OUTPUT stem + ".errors" + OUTPUT suffix
    probabilities: bool = False
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    header: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.errors = Path(self.errors) if self.errors else default_errors_path(self.output)

    def reader(self) -> RowReader:
        return open_reader(self.input, self.text_columns, self.id_column, self.chunk_rows, self.header)


@dataclass
class ScoreSummary:
    rows: int
    scored: int
    errors: int
    truncated: int
    resumed_chunks: int
    output: str
    errors_output: str
    seconds: float = 0.0
    rate: float = 0.0  # rows per second computed by this run (an earlier run's rows left out)

    def line(self) -> str:
        rate = f", {self.rate:.0f} rows/s" if self.rate > 0 else ""
        resumed = f" ({self.resumed_chunks} chunks from an earlier run)" if self.resumed_chunks else ""
        return (f"{self.rows} rows: {self.scored} scored -> {self.output}, {self.errors} errors -> "
                f"{self.errors_output}, {self.truncated} truncated{resumed}{rate}")


def default_errors_path(out: Path) -> Path:
    return out.with_name(out.stem + ".errors" + out.suffix)


def check_paths(config: ScoreConfig) -> None:
    """Refuse output paths that would lose data: unknown formats, or two roles on one file."""
    out, errors = config.output, config.errors
    assert errors is not None
    for path, role in ((out, "output"), (errors, "errors file")):
        if output_format(path) is None:
            raise UserError(f"cannot tell the {role} format of {path}: use .parquet, .csv or .jsonl")
        if not path.parent.is_dir():
            raise UserError(f"{role} folder does not exist: {path.parent}")
        if _same_file(path, config.input):
            raise UserError(f"the {role} {path} is the input file")
    if _same_file(out, errors):
        raise UserError(f"the errors file {errors} is the output file: name another with --errors")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class ScoreJob(ResumableJob[Chunk]):
    part_suffix = ".parquet"
    unit = " texts"

    def __init__(self, classifier: Any, config: ScoreConfig):
        check_paths(config)
        assert config.errors is not None
        self.reader = config.reader()
        self.reader.check()
        super().__init__(config.input, [config.output, config.errors], f"scoring {config.input.name}")
        self.classifier, self.config = classifier, config
        self.truncated = 0

    def settings(self) -> dict[str, Any]:
        c = self.config
        return {"text_columns": list(c.text_columns), "id_column": c.id_column, "header": c.header,
                "chunk_rows": c.chunk_rows, "probabilities": c.probabilities,
                "artifact": str(Path(self.classifier.artifact.root).resolve()),
                "variant": self.classifier.variant, "labels": list(self.classifier.labels)}

    def chunks(self) -> Iterator[Chunk]:
        return self.reader.chunks()

    def total_rows(self) -> int | None:
        return self.reader.total_rows

    def fraction_read(self) -> float:
        return self.reader.fraction_read

    def write_part(self, chunk: Chunk, fh: BinaryIO) -> None:
        import pyarrow.parquet as pq

        positions = [k for k, t in enumerate(chunk.texts) if t is not None]
        result = self.classifier.classify([chunk.texts[k] for k in positions])
        table = part_table(chunk, list(self.classifier.labels), result.probs, result.truncated, positions,
                            self.config.probabilities)
        pq.write_table(table, fh)

    def part_rows(self, part: Path) -> int:
        import pyarrow.parquet as pq

        return pq.read_metadata(part).num_rows

    def merge(self, parts: list[Path], staged: list[Path]) -> Merged:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        out = TableWriter(staged[0], output_format(self.outputs[0]) or "parquet")
        err = TableWriter(staged[1], output_format(self.outputs[1]) or "parquet")
        merged = Merged(rows=0, errors=0)
        out_schema = err_schema = None
        next_row = 0
        for part in parts:
            table = pq.read_table(part)
            rows = table.column("row").to_numpy()
            if len(rows) and (rows[0] != next_row or (rows[1:] != rows[:-1] + 1).any()):
                raise RuntimeError(f"{part} does not continue the row sequence at {next_row}")
            next_row += len(rows)
            is_error = pc.is_valid(table.column("error"))
            good = table.filter(pc.invert(is_error)).drop_columns(["error"])
            bad = table.filter(is_error).select(["row"] + (["id"] if "id" in table.column_names else []) + ["error"])
            out_schema, err_schema = good.schema, bad.schema
            merged.rows += good.num_rows
            merged.errors += bad.num_rows
            self.truncated += int(pc.sum(good.column("truncated")).as_py() or 0)
            if good.num_rows:
                out.write(good)
            if bad.num_rows:
                err.write(bad)
        out.close(out_schema or pa.schema([("row", pa.int64()), ("label", pa.string()), ("score", pa.float32())]))
        err.close(err_schema or pa.schema([("row", pa.int64()), ("error", pa.string())]))
        return merged


def part_table(chunk: Chunk, labels: list[str], probs: Any, truncated: Any, scored_pos: list[int],
               with_probs: bool) -> Any:
    """A chunk's part file: its rows, the scored ones (at `scored_pos`) with their labels, scores
    and probabilities, the others with their read errors."""
    import numpy as np
    import pyarrow as pa

    n = len(chunk)
    label_col: list[str | None] = [None] * n
    score_col = np.full(n, np.nan, dtype=np.float32)
    trunc_col: list[bool | None] = [None] * n
    prob_cols = np.full((n, len(labels)), np.nan, dtype=np.float32)
    if scored_pos:
        top = probs.argmax(axis=1)
        pos = np.asarray(scored_pos)
        score_col[pos] = probs[np.arange(len(top)), top]
        prob_cols[pos] = probs
        for k, p in enumerate(scored_pos):
            label_col[p] = labels[top[k]]
            trunc_col[p] = bool(truncated[k])
    columns: dict[str, Any] = {"row": pa.array(np.arange(chunk.start, chunk.start + n, dtype=np.int64))}
    if chunk.ids is not None:
        columns["id"] = pa.array(chunk.ids, type=pa.string())
    columns["label"] = pa.array(label_col, type=pa.string())
    columns["score"] = pa.array(score_col, mask=np.isnan(score_col))
    columns["truncated"] = pa.array(trunc_col, type=pa.bool_())
    if with_probs:
        for j, name in enumerate(labels):
            columns[f"prob_{name}"] = pa.array(prob_cols[:, j], mask=np.isnan(prob_cols[:, j]))
    columns["error"] = pa.array(chunk.errors, type=pa.string())
    return pa.table(columns)


def run_score(classifier: Any, config: ScoreConfig) -> ScoreSummary:
    """Score every row of `config.input` into `config.output` (and errors); resumable."""
    return run_score_job(ScoreJob(classifier, config))


def run_score_job(job: ScoreJob) -> ScoreSummary:
    """Run a built score job (this process's, or one whose chunks run elsewhere) to its summary."""
    config = job.config
    result = run_job(job, overwrite=config.overwrite, progress=config.progress)
    return ScoreSummary(rows=result.rows, scored=result.merged.rows, errors=result.merged.errors,
                        truncated=job.truncated, resumed_chunks=result.resumed_chunks, output=str(config.output),
                        errors_output=str(config.errors), seconds=result.seconds, rate=result.rows_per_second)


def score_file(classifier: Any, input_path: str | os.PathLike, out_path: str | os.PathLike,
               text_columns: Sequence[str] = ("text",), *, id_column: str | None = None,
               errors_path: str | os.PathLike | None = None, probabilities: bool = False,
               chunk_rows: int = DEFAULT_CHUNK_ROWS, header: bool = True, overwrite: bool = False,
               progress: bool = True) -> ScoreSummary:
    """`run_score` with keyword arguments (the API before `ScoreConfig`)."""
    return run_score(classifier, ScoreConfig(
        input=Path(input_path), output=Path(out_path), text_columns=list(text_columns), id_column=id_column,
        errors=Path(errors_path) if errors_path else None, probabilities=probabilities, chunk_rows=chunk_rows,
        header=header, overwrite=overwrite, progress=progress))
