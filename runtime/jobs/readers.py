"""Input readers for file jobs: csv / jsonl / parquet rows and plain text lines, in fixed chunks.

A reader never fails on one bad row: a row it cannot use (invalid UTF-8, broken JSON, a field
over the size limit, an unreadable Parquet row group, ...) comes out as a row with an error, so
every job can reconcile rows in = rows out + error rows. It raises `UserError` only for what
stops the whole file: a missing file or column, a file that is not in the named format.

Row identity: a chunk's `start` is the 0-based number of its first data row.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator, Iterator, Sequence

from onnxpress.errors import UserError
from onnxpress.runtime.text_tokenizer import is_blank

INPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
MAX_TEXT_CHARS = 128 * 1024  # a longer text is an error row: the model sees only its first few hundred tokens
CSV_FIELD_LIMIT = 16 * 1024 * 1024  # parse fields up to this, so a long one costs one row, not the file
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class Chunk:
    """Consecutive input rows: texts (None where the row has an error) and per-row errors."""

    index: int
    start: int
    texts: list[str | None]
    errors: list[str | None]
    ids: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.texts)


class _Invalid:
    """A value that already failed: the row is an error with this reason."""

    def __init__(self, reason: str):
        self.reason = reason


def _bad_text(value: Any) -> str | None:
    """Why `value` cannot be scored, or None if it can."""
    if value is None:
        return "missing text (null)"
    if isinstance(value, bytes):
        return "not valid UTF-8"
    if not isinstance(value, str):
        return f"not text ({type(value).__name__})"
    if len(value) > MAX_TEXT_CHARS:
        return f"text over {MAX_TEXT_CHARS} characters"
    if _SURROGATE.search(value):  # undecodable bytes kept by surrogateescape, or a lone JSON \ud800 escape
        return "not valid UTF-8"
    if is_blank(value):
        return "empty text"
    return None


def join_texts(values: list[Any]) -> tuple[str | None, str | None]:
    """(text, error) from the values of the text column(s), joined with a space."""
    for value in values:
        if isinstance(value, _Invalid):
            return None, value.reason
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
    text = " ".join(v for v in values if v is not None and not is_blank(v))
    if not text:
        return None, "empty text"
    return (None, f"text over {MAX_TEXT_CHARS} characters") if len(text) > MAX_TEXT_CHARS else (text, None)


def _id_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _printable(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _printable(value: str) -> str:
    """`value` with undecodable bytes and lone surrogates replaced, so it can be written as UTF-8."""
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")


Row = tuple[list[Any], Any]  # (values of the text columns, id value)


class RowReader:
    """Chunks of `chunk_rows` rows of one input file, plus a progress estimate."""

    def __init__(self, path: Path, text_columns: list[str], id_column: str | None, chunk_rows: int,
                 header: bool = True):
        self.path = path
        self.text_columns = text_columns
        self.id_column = id_column
        self.chunk_rows = chunk_rows
        self.header = header
        self.total_rows: int | None = None
        self.fraction_read = 0.0  # of the file's bytes, for an ETA when the row total is unknown

    def rows(self) -> Generator[Row, None, None]:
        raise NotImplementedError

    def check(self) -> None:
        """Fail fast (before any work folder exists) on a missing column or unreadable file."""
        rows = self.rows()
        try:
            next(rows, None)
        finally:
            rows.close()  # closes the file now

    def chunks(self) -> Iterator[Chunk]:
        buffer: list[Row] = []
        index = start = 0
        for row in self.rows():
            buffer.append(row)
            if len(buffer) == self.chunk_rows:
                yield self._chunk(index, start, buffer)
                index, start, buffer = index + 1, start + len(buffer), []
        if buffer:
            yield self._chunk(index, start, buffer)

    def _chunk(self, index: int, start: int, rows: list[Row]) -> Chunk:
        texts, errors, ids = [], [], []
        for values, id_value in rows:
            text, error = join_texts(values)
            texts.append(text)
            errors.append(error)
            ids.append(_id_str(id_value))
        return Chunk(index, start, texts, errors, ids if self.id_column else None)


CSV_ERROR_HINTS = {
    "unexpected end of data": " (a quoted field that never closes: this record ran from its line to the end of "
                              "the file)",
}


class CsvReader(RowReader):
    def rows(self) -> Generator[Row, None, None]:
        size = max(self.path.stat().st_size, 1)
        csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))  # process-wide; only ever raised
        with open(self.path, "rb") as raw:
            # surrogateescape keeps undecodable bytes visible per row instead of failing the file
            # strict: a quote that never closes is an error, not a field that swallows the rest of the file
            reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline=""),
                                strict=True)
            columns = None
            if self.header:
                try:
                    columns = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise UserError(f"cannot parse {self.path} as CSV: {exc}") from None
                if columns and columns[0].startswith("\ufeff"):
                    columns[0] = columns[0][1:]
            text_pos, id_pos = self._positions(columns)
            needed = max(text_pos + ([id_pos] if id_pos is not None else []))
            fields = len(columns) if columns is not None else None  # a row with more lost a comma's worth
            while True:
                try:
                    record = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:  # e.g. a field over CSV_FIELD_LIMIT: this record only
                    yield [_Invalid(f"CSV error: {exc}" + CSV_ERROR_HINTS.get(str(exc), ""))], None
                    continue
                if not record:
                    continue  # a blank line is not a row
                self.fraction_read = min(raw.tell() / size, 1.0)
                if fields is None:  # --no-header: the first row says how many fields a row has
                    fields = len(record)
                    if needed >= fields:
                        raise UserError(f"--no-header: column {needed} asked for, but the first row of {self.path} "
                                        f"has {fields} field(s), numbered from 0")
                if needed >= len(record):
                    yield [_Invalid(f"row has {len(record)} fields, too few")], None
                    continue
                if len(record) > fields:
                    yield [_Invalid(f"row has {len(record)} fields, {fields} expected (an unquoted comma?)")], None
                    continue
                yield [record[i] for i in text_pos], (record[id_pos] if id_pos is not None else None)

    def _positions(self, columns: list[str] | None) -> tuple[list[int], int | None]:
        def find(name: str) -> int:
            if columns is None:
                if not name.isdigit():
                    raise UserError(f"--no-header CSV columns are numbered from 0; got column {name!r}")
                return int(name)
            if name not in columns:
                shown = ", ".join(map(_printable, columns))
                raise UserError(f"column {name!r} not found in {self.path} (columns: {shown})")
            if columns.count(name) > 1:
                raise UserError(f"column {name!r} appears {columns.count(name)} times in the header of {self.path}")
            return columns.index(name)

        return [find(c) for c in self.text_columns], (find(self.id_column) if self.id_column else None)


class JsonlReader(RowReader):
    def rows(self) -> Generator[Row, None, None]:
        size = max(self.path.stat().st_size, 1)
        checked = False
        with open(self.path, "rb") as fh:
            for raw in fh:
                if not raw.strip():
                    continue  # blank lines are not rows
                self.fraction_read = min(fh.tell() / size, 1.0)
                obj = _parse_json(raw)
                if isinstance(obj, _Invalid):
                    yield [obj], None
                    continue
                if not checked:
                    missing = [c for c in self.text_columns + ([self.id_column] if self.id_column else [])
                               if c not in obj]
                    if missing:
                        raise UserError(f"field {missing[0]!r} not found in the first record of {self.path} "
                                        f"(fields: {', '.join(map(repr, obj)) or 'none'})")
                    checked = True
                values = [obj[c] if c in obj else _Invalid(f"no field {c!r}") for c in self.text_columns]
                yield values, obj.get(self.id_column) if self.id_column else None


def _parse_json(raw: bytes) -> dict[str, Any] | _Invalid:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return _Invalid("not valid UTF-8")
    except RecursionError:
        return _Invalid("invalid JSON (nested too deep)")
    except ValueError:
        return _Invalid("invalid JSON")
    if not isinstance(obj, dict):
        return _Invalid(f"not a JSON object ({type(obj).__name__})")
    return obj


class ParquetReader(RowReader):
    def _open(self) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(self.path)
            schema = pf.schema_arrow
        except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid/OSError/...
            raise UserError(f"cannot read {self.path} as parquet: {exc}") from None
        for name in self.text_columns + ([self.id_column] if self.id_column else []):
            if name not in schema.names:
                raise UserError(f"column {name!r} not found in {self.path} (columns: {', '.join(schema.names)})")
        for name in self.text_columns:
            kind = schema.field(name).type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
                    or pa.types.is_large_binary(kind) or str(kind) in ("string_view", "binary_view")):
                raise UserError(f"column {name!r} of {self.path} holds {kind}, not text")
        return pf

    def rows(self) -> Generator[Row, None, None]:
        pf = self._open()
        self.total_rows = pf.metadata.num_rows
        columns = list(dict.fromkeys(self.text_columns + ([self.id_column] if self.id_column else [])))
        done = 0
        for group in range(pf.metadata.num_row_groups):
            expected, read = pf.metadata.row_group(group).num_rows, 0
            try:
                for batch in pf.iter_batches(batch_size=self.chunk_rows, row_groups=[group], columns=columns):
                    texts = [batch.column(columns.index(c)).to_pylist() for c in self.text_columns]
                    ids = (batch.column(columns.index(self.id_column)).to_pylist() if self.id_column
                           else [None] * batch.num_rows)
                    for k in range(batch.num_rows):
                        yield [t[k] for t in texts], ids[k]
                    read += batch.num_rows
            except Exception as exc:  # noqa: BLE001 - a corrupt page: its rows are errors, the file goes on
                reason = _Invalid(f"unreadable parquet row group {group}: {str(exc).splitlines()[0][:200]}")
                for _ in range(max(expected - read, 0)):
                    yield [reason], None
            done += max(expected, read)
            self.fraction_read = done / max(self.total_rows, 1)


def open_reader(path: str | os.PathLike, text_columns: Sequence[str], id_column: str | None = None,
                chunk_rows: int = 2048, header: bool = True) -> RowReader:
    """The reader for `path`'s format (by suffix); checks that the file exists and can be read."""
    path = Path(path)
    kind = INPUT_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"cannot tell the format of {path}: use .csv, .jsonl or .parquet")
    check_readable(path)
    if chunk_rows < 1:
        raise UserError("chunk rows must be >= 1")
    if not text_columns:
        raise UserError("name at least one text column")
    cls = {"csv": CsvReader, "jsonl": JsonlReader, "parquet": ParquetReader}[kind]
    return cls(path, list(text_columns), id_column, chunk_rows, header)


def check_readable(path: Path) -> None:
    if path.is_dir():
        raise UserError(f"the input {path} is a folder: name a file")
    if path.exists() and not path.is_file():
        raise UserError(f"the input {path} is not a regular file (a pipe or device): a resumable job needs a "
                        "file it can read again")
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UserError(f"cannot read input file {path}: {exc.strerror}") from None


# -- plain text, one item per line -----------------------------------------------------------
def decode_line(raw: bytes) -> str | None:
    """The line without its end, or None when it is not valid UTF-8."""
    try:
        return raw.rstrip(b"\n").rstrip(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        return None


class LineReader:
    """Chunks of `chunk_lines` lines of a text file; blank lines are rows (they map to blank output)."""

    def __init__(self, path: Path, chunk_lines: int):
        check_readable(path)
        if chunk_lines < 1:
            raise UserError("chunk lines must be >= 1")
        self.path, self.chunk_lines = path, chunk_lines
        with open(path, "rb") as fh:
            self.total_rows: int | None = sum(1 for _ in fh)
        self.fraction_read = 0.0

    def chunks(self) -> Iterator[Chunk]:
        with open(self.path, "rb") as fh:
            index = start = 0
            while True:
                raw = [line for _, line in zip(range(self.chunk_lines), fh)]
                if not raw:
                    return
                texts = [decode_line(line) for line in raw]
                yield Chunk(index, start, texts, [None if t is not None else "not valid UTF-8" for t in texts])
                index, start = index + 1, start + len(raw)
