"""Output writers for file jobs: tables to parquet / csv / jsonl, lines to text.

Writers write where they are told (a staging path inside the job's work folder) and fsync on
close; renaming into place is the job core's commit (`runtime/jobs/resumable.py`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO, Iterable

from onnxpress.runtime.jobs.durable import fsync_file

OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}


def output_format(path: Path) -> str | None:
    """"parquet", "csv", "jsonl", or None when the suffix names no table format."""
    return OUTPUT_FORMATS.get(path.suffix.lower())


class TableWriter:
    """Appends pyarrow tables of one schema to a parquet, csv or jsonl file."""

    def __init__(self, path: Path, kind: str):
        self.path, self.kind = path, kind
        self._writer: Any = None
        self._fh: Any = None

    def write(self, table: Any) -> None:
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            if self._writer is None:
                self._writer = pq.ParquetWriter(self.path, table.schema)
            self._writer.write_table(table)
        elif self.kind == "csv":
            import pyarrow.csv as pacsv

            if self._writer is None:
                self._writer = pacsv.CSVWriter(self.path, table.schema)
            self._writer.write_table(table)
        else:
            if self._fh is None:
                self._fh = open(self.path, "w", encoding="utf-8")
            for record in table.to_pylist():
                self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self, empty_schema: Any) -> None:
        """Finish the file (an empty table of `empty_schema` when nothing was written) and fsync it."""
        if self._writer is None and self._fh is None:
            self.write(empty_schema.empty_table())
        if self._writer is not None:
            self._writer.close()
        if self._fh is not None:
            self._fh.close()
        fsync_file(self.path)


def write_lines(fh: BinaryIO, lines: Iterable[str]) -> int:
    """Write each of `lines` (no newline inside) as one UTF-8 line; returns how many."""
    n = 0
    for line in lines:
        fh.write(line.encode("utf-8") + b"\n")
        n += 1
    return n
