"""Resumable file scoring: csv / jsonl / parquet in, parquet / csv / jsonl out.

The input is streamed in fixed chunks of `chunk_rows` rows. Each finished chunk is written
as one part file (scored rows and error rows together) with write-tmp, fsync, rename: the
rename is the commit point, so a part either exists whole or not at all. A restarted run
re-reads the input, skips chunks whose part exists, and scores the rest. At the end the
parts are merged in order into the output and the errors file, the counts are checked
(input rows = scored + errors), and the work folder is removed. A run killed at any point,
even with SIGKILL, is continued by the same command; every row appears exactly once.

Row identity: `row` is the 0-based data row number in the input; `id` is the value of the
`id_column` when one is named (as a string).

Needs the `scoring` extra (pyarrow, tqdm); both are imported inside the functions here.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from onnxpress.errors import UserError
from onnxpress.runtime.durable import atomic_write, prepare_work_dir

INPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
DEFAULT_CHUNK_ROWS = 2048
WORK_SUFFIX = ".parts"


@dataclass
class Chunk:
    """`rows` consecutive input rows: texts (None where the row has an error) and per-row errors."""

    index: int
    start: int  # row number of the first row
    texts: list[str | None]
    errors: list[str | None]
    ids: list[str | None] | None = None


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

    def line(self) -> str:
        rate = f", {self.scored / self.seconds:.0f} texts/s" if self.seconds > 0 else ""
        resumed = f" ({self.resumed_chunks} chunks from an earlier run)" if self.resumed_chunks else ""
        return (f"{self.rows} rows: {self.scored} scored -> {self.output}, {self.errors} errors -> "
                f"{self.errors_output}, {self.truncated} truncated{resumed}{rate}")


@dataclass
class ScoreSettings:
    """Everything a resumed run must share with the run it continues."""

    input: str
    input_size: int
    input_mtime_ns: int
    text_columns: list[str]
    id_column: str | None
    header: bool
    chunk_rows: int
    probabilities: bool
    artifact: str
    variant: str
    labels: list[str] = field(default_factory=list)


# -- readers ---------------------------------------------------------------------------------
def _bad_text(value: Any) -> str | None:
    """Why `value` cannot be scored, or None if it can."""
    if value is None:
        return "missing text (null)"
    if isinstance(value, bytes):
        return "not valid UTF-8"
    if not isinstance(value, str):
        return f"not text ({type(value).__name__})"
    if "\udc80" <= max(value, default="") and any("\udc80" <= ch <= "\udcff" for ch in value):
        return "not valid UTF-8"
    if not value.strip():
        return "empty text"
    return None


def _join(values: list[Any]) -> tuple[str | None, str | None]:
    """(text, error) from the values of the text column(s), joined with a space."""
    for value in values:
        if isinstance(value, bytes):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                return None, "not valid UTF-8"
    values = [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]
    if len(values) == 1:
        error = _bad_text(values[0])
        return (None, error) if error else (values[0], None)
    # several columns: an empty or null one is skipped, the rest still make a text
    errors = [e for e in (_bad_text(v) for v in values if v is not None) if e and e != "empty text"]
    if errors:
        return None, errors[0]
    text = " ".join(v for v in values if v is not None and v.strip())
    return (None, "empty text") if not text else (text, None)


def _id_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:  # undecodable bytes kept by surrogateescape
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


class _Reader:
    """Chunks of an input file plus a progress estimate (rows total, when known)."""

    def __init__(self, path: Path, text_columns: list[str], id_column: str | None, chunk_rows: int,
                 header: bool = True):
        self.path = path
        self.text_columns = text_columns
        self.id_column = id_column
        self.chunk_rows = chunk_rows
        self.header = header
        self.total_rows: int | None = None
        self.fraction_read = 0.0  # of the file's bytes, for an ETA when the row total is unknown

    def chunks(self) -> Iterator[Chunk]:
        raise NotImplementedError

    def check(self) -> None:
        """Fail fast (before any work folder exists) on a missing column or unreadable file."""
        for _ in self.chunks_head():
            break

    def chunks_head(self) -> Iterator[Chunk]:
        return self.chunks()

    def _make(self, index: int, start: int, rows: list[tuple[list[Any], Any]]) -> Chunk:
        texts, errors, ids = [], [], []
        for values, id_value in rows:
            bad = next((v for v in values if isinstance(v, _Invalid)), None)
            text, error = (None, bad.reason) if bad is not None else _join(values)
            texts.append(text)
            errors.append(error)
            ids.append(_id_str(id_value))
        return Chunk(index, start, texts, errors, ids if self.id_column else None)

    def _batched(self, rows: Iterator[tuple[list[Any], Any]]) -> Iterator[Chunk]:
        buffer: list[tuple[list[Any], Any]] = []
        index = start = 0
        for row in rows:
            buffer.append(row)
            if len(buffer) == self.chunk_rows:
                yield self._make(index, start, buffer)
                index, start, buffer = index + 1, start + len(buffer), []
        if buffer:
            yield self._make(index, start, buffer)


class _CsvReader(_Reader):
    def chunks(self) -> Iterator[Chunk]:
        size = max(self.path.stat().st_size, 1)
        with open(self.path, "rb") as raw:
            # surrogateescape keeps undecodable bytes visible per row instead of failing the file
            text = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
            reader = csv.reader(text)
            if self.header:
                try:
                    columns = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise UserError(f"cannot parse {self.path} as CSV: {exc}") from None
                if columns and columns[0].startswith("\ufeff"):
                    columns[0] = columns[0][1:]
            else:
                columns = None
            positions = self._positions(columns)

            def rows() -> Iterator[tuple[list[Any], Any]]:
                line = 0
                try:
                    for record in reader:
                        line += 1
                        if not record:
                            continue  # a blank line is not a row
                        self.fraction_read = min(raw.tell() / size, 1.0)
                        text_pos, id_pos = positions
                        if max(text_pos + ([id_pos] if id_pos is not None else [])) >= len(record):
                            yield [_Invalid(f"row has {len(record)} fields, too few")], None
                            continue
                        yield [record[i] for i in text_pos], (record[id_pos] if id_pos is not None else None)
                except csv.Error as exc:
                    raise UserError(f"{self.path}: CSV error near data row {line}: {exc}") from None

            yield from self._batched(rows())

    def _positions(self, columns: list[str] | None) -> tuple[list[int], int | None]:
        def find(name: str) -> int:
            if columns is None:
                if not name.isdigit():
                    raise UserError(f"--no-header CSV columns are numbered from 0; got column {name!r}")
                return int(name)
            if name not in columns:
                raise UserError(f"column {name!r} not found in {self.path} (columns: {', '.join(columns)})")
            return columns.index(name)

        return [find(c) for c in self.text_columns], (find(self.id_column) if self.id_column else None)


class _JsonlReader(_Reader):
    def chunks(self) -> Iterator[Chunk]:
        size = max(self.path.stat().st_size, 1)
        checked = False
        with open(self.path, "rb") as fh:

            def rows() -> Iterator[tuple[list[Any], Any]]:
                nonlocal checked
                for raw in fh:
                    if not raw.strip():
                        continue  # blank lines are not rows
                    self.fraction_read = min(fh.tell() / size, 1.0)
                    try:
                        obj = json.loads(raw.decode("utf-8"))
                    except UnicodeDecodeError:
                        yield [_Invalid("not valid UTF-8")], None
                        continue
                    except ValueError:
                        yield [_Invalid("invalid JSON")], None
                        continue
                    if not isinstance(obj, dict):
                        yield [_Invalid(f"not a JSON object ({type(obj).__name__})")], None
                        continue
                    if not checked:
                        missing = [c for c in self.text_columns + ([self.id_column] if self.id_column else [])
                                   if c not in obj]
                        if missing:
                            raise UserError(f"field {missing[0]!r} not found in the first record of {self.path} "
                                            f"(fields: {', '.join(obj) or 'none'})")
                        checked = True
                    values = [obj[c] if c in obj else _Invalid(f"no field {c!r}") for c in self.text_columns]
                    yield values, obj.get(self.id_column) if self.id_column else None

            yield from self._batched(rows())


class _Invalid:
    def __init__(self, reason: str):
        self.reason = reason


class _ParquetReader(_Reader):
    def chunks(self) -> Iterator[Chunk]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(self.path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid/OSError
            raise UserError(f"cannot read {self.path} as parquet: {exc}") from None
        schema = pf.schema_arrow
        wanted = self.text_columns + ([self.id_column] if self.id_column else [])
        for name in wanted:
            if name not in schema.names:
                raise UserError(f"column {name!r} not found in {self.path} (columns: {', '.join(schema.names)})")
        for name in self.text_columns:
            kind = schema.field(name).type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
                    or pa.types.is_large_binary(kind) or str(kind) in ("string_view", "binary_view")):
                raise UserError(f"column {name!r} of {self.path} holds {kind}, not text")
        self.total_rows = pf.metadata.num_rows
        columns = list(dict.fromkeys(wanted))
        start = 0
        for index, batch in enumerate(pf.iter_batches(batch_size=self.chunk_rows, columns=columns)):
            text_lists = [batch.column(columns.index(c)).to_pylist() for c in self.text_columns]
            ids = batch.column(columns.index(self.id_column)).to_pylist() if self.id_column else [None] * batch.num_rows
            rows = [([tl[k] for tl in text_lists], ids[k]) for k in range(batch.num_rows)]
            yield self._make(index, start, rows)
            start += batch.num_rows


def open_reader(path: str | os.PathLike, text_columns: Sequence[str], id_column: str | None = None,
                chunk_rows: int = DEFAULT_CHUNK_ROWS, header: bool = True) -> _Reader:
    path = Path(path)
    kind = INPUT_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"cannot tell the format of {path}: use .csv, .jsonl or .parquet")
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    if not os.access(path, os.R_OK):
        raise UserError(f"input file is not readable: {path}")
    if chunk_rows < 1:
        raise UserError("chunk rows must be >= 1")
    cls = {"csv": _CsvReader, "jsonl": _JsonlReader, "parquet": _ParquetReader}[kind]
    return cls(path, list(text_columns), id_column, chunk_rows, header)


# -- part files ------------------------------------------------------------------------------
def _atomic_write_parquet(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    atomic_write(path, lambda fh: pq.write_table(table, fh))


def _part_name(index: int) -> str:
    return f"part-{index:07d}.parquet"


def _part_table(chunk: Chunk, labels: list[str], probs: Any, truncated: Any, scored_pos: list[int],
                with_probs: bool) -> Any:
    import numpy as np
    import pyarrow as pa

    n = len(chunk.texts)
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


# -- output writers --------------------------------------------------------------------------
class _Writer:
    def __init__(self, path: Path, kind: str):
        self.path, self.kind = path, kind
        self.tmp = path.with_name(path.name + ".tmp")
        self._writer: Any = None
        self._fh: Any = None

    def write(self, table: Any) -> None:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        if self.kind == "parquet":
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.tmp, table.schema)
            self._writer.write_table(table)
        elif self.kind == "csv":
            if self._writer is None:
                self._writer = pacsv.CSVWriter(self.tmp, table.schema)
            self._writer.write_table(table)
        else:
            if self._fh is None:
                self._fh = open(self.tmp, "w", encoding="utf-8")
            for record in table.to_pylist():
                self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self, empty_schema: Any) -> None:
        if self._writer is None and self._fh is None:
            self.write(empty_schema.empty_table())
        if self._writer is not None:
            self._writer.close()
        if self._fh is not None:
            self._fh.close()
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.path)


def default_errors_path(out: Path) -> Path:
    return out.with_name(out.stem + ".errors" + out.suffix)


# -- the job ---------------------------------------------------------------------------------
def score_file(
    classifier: Any,
    input_path: str | os.PathLike,
    out_path: str | os.PathLike,
    text_columns: Sequence[str] = ("text",),
    *,
    id_column: str | None = None,
    errors_path: str | os.PathLike | None = None,
    probabilities: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    header: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> ScoreSummary:
    """Score `text_columns` of every input row into `out_path`; resumable (see module doc)."""
    import time

    import pyarrow.parquet as pq
    from tqdm import tqdm

    started = time.perf_counter()
    input_path, out_path = Path(input_path), Path(out_path)
    out_kind = OUTPUT_FORMATS.get(out_path.suffix.lower())
    if out_kind is None:
        raise UserError(f"cannot tell the output format of {out_path}: use .parquet, .csv or .jsonl")
    errors_path = Path(errors_path) if errors_path else default_errors_path(out_path)
    if OUTPUT_FORMATS.get(errors_path.suffix.lower()) is None:
        raise UserError(f"cannot tell the format of errors file {errors_path}: use .parquet, .csv or .jsonl")
    if not text_columns:
        raise UserError("name at least one text column")
    reader = open_reader(input_path, text_columns, id_column, chunk_rows, header)
    reader.check()
    if not out_path.parent.is_dir():
        raise UserError(f"output folder does not exist: {out_path.parent}")
    work = out_path.with_name(out_path.name + WORK_SUFFIX)
    stat = input_path.stat()
    settings = ScoreSettings(
        input=str(input_path.resolve()), input_size=stat.st_size, input_mtime_ns=stat.st_mtime_ns,
        text_columns=list(text_columns), id_column=id_column, header=header, chunk_rows=chunk_rows,
        probabilities=probabilities, artifact=str(Path(classifier.artifact.root).resolve()),
        variant=classifier.variant, labels=list(classifier.labels),
    )
    prepare_work_dir(work, asdict(settings), out_path, overwrite)

    rows = scored = errors = truncated = resumed = 0
    bar = tqdm(total=reader.total_rows, unit=" texts", disable=not progress, dynamic_ncols=True,
               desc=f"scoring {input_path.name}", file=sys.stderr)
    try:
        for chunk in reader.chunks():
            n = len(chunk.texts)
            rows += n
            part = work / _part_name(chunk.index)
            if part.exists():
                resumed += 1
                counts = pq.read_metadata(part).num_rows
                if counts != n:
                    raise UserError(f"{part} holds {counts} rows, the input chunk {n}: delete {work} and rerun")
            else:
                positions = [k for k, t in enumerate(chunk.texts) if t is not None]
                result = classifier.classify([chunk.texts[k] for k in positions])
                _atomic_write_parquet(
                    _part_table(chunk, classifier.labels, result.probs, result.truncated, positions, probabilities),
                    part)
            bar.update(n)
            if reader.total_rows is None and reader.fraction_read > 0:
                bar.total = max(rows, int(rows / reader.fraction_read))
                bar.refresh()
        bar.total = rows
        bar.refresh()
    finally:
        bar.close()

    expected_parts = -(-rows // chunk_rows) if rows else 0
    scored, errors, truncated = _merge(work, expected_parts, out_path, out_kind, errors_path)
    if scored + errors != rows:
        raise RuntimeError(f"row count mismatch: {rows} input rows but {scored} scored + {errors} errors; "
                           f"parts kept in {work}")
    shutil.rmtree(work, ignore_errors=True)
    return ScoreSummary(rows=rows, scored=scored, errors=errors, truncated=truncated, resumed_chunks=resumed,
                        output=str(out_path), errors_output=str(errors_path),
                        seconds=time.perf_counter() - started)


def _merge(work: Path, n_parts: int, out_path: Path, out_kind: str, errors_path: Path) -> tuple[int, int, int]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = _Writer(out_path, out_kind)
    err = _Writer(errors_path, OUTPUT_FORMATS[errors_path.suffix.lower()])
    scored = errors = truncated = 0
    out_schema = err_schema = None
    next_row = 0
    for index in range(n_parts):
        part = work / _part_name(index)
        if not part.exists():
            raise RuntimeError(f"missing {part} after scoring every chunk")
        table = pq.read_table(part)
        rows = table.column("row").to_numpy()
        if len(rows) and (rows[0] != next_row or (rows[1:] != rows[:-1] + 1).any()):
            raise RuntimeError(f"{part} does not continue the row sequence at {next_row}")
        next_row += len(rows)
        is_error = pc.is_valid(table.column("error"))
        good = table.filter(pc.invert(is_error)).drop_columns(["error"])
        bad_cols = ["row"] + (["id"] if "id" in table.column_names else []) + ["error"]
        bad = table.filter(is_error).select(bad_cols)
        out_schema, err_schema = good.schema, bad.schema
        scored += good.num_rows
        errors += bad.num_rows
        truncated += int(pc.sum(good.column("truncated")).as_py() or 0)
        if good.num_rows:
            out.write(good)
        if bad.num_rows:
            err.write(bad)
    import pyarrow as pa

    empty = pa.schema([("row", pa.int64()), ("label", pa.string()), ("score", pa.float32())])
    out.close(out_schema or empty)
    err.close(err_schema or pa.schema([("row", pa.int64()), ("error", pa.string())]))
    return scored, errors, truncated
