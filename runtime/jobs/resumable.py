"""The resumable-job protocol, written once: chunk -> part file -> verified merge, restartable.

A job (`ResumableJob`) reads its input in deterministic chunks and turns each chunk into one
part file in a work folder beside the output (`OUT.parts/part-NNNNNNN<suffix>`), written with
tmp + fsync + rename: the rename is the commit point, so a part exists whole or not at all.
`run_job` drives it:

1. open the work folder: a folder whose `settings.json` equals this run's settings (the job's
   own settings plus the input's fingerprint) is resumed and its half-written `*.tmp` dropped;
   other settings are refused with what differs (`overwrite=True` discards it and starts over);
2. for each chunk: skip it when its part exists and holds as many rows, else process and commit;
3. check that the input did not change while it was read; merge the parts, in order, into
   staging files in the work folder, fsynced; check that rows in = rows out + error rows;
   rename each staged file onto its output; remove the folder.

A run killed at any point (even SIGKILL, even during the merge) is continued by running it
again: every row appears exactly once. An input that changed since the interrupted run
(size, mtime or content hash) is refused rather than silently restarted, because the parts
already committed describe the old content; the message says how to start over.
"""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Generic, Iterator, Protocol, Self, TypeVar

from onnxpress.errors import UserError
from onnxpress.runtime.jobs.durable import atomic_write, atomic_write_text, fsync_dir
from onnxpress.runtime.jobs.progress import Progress

WORK_SUFFIX = ".parts"
WORK_FORMAT = 2  # layout of settings.json / parts; a folder of another format is not resumed
HASH_WHOLE_BELOW = 8 << 20  # inputs up to this are hashed whole; larger ones by head + tail
HASH_SPAN = 1 << 20
_FIXABLE_OS_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


class ChunkLike(Protocol):
    """A chunk as the core sees it: its position in the input and its number of rows."""

    index: int

    def __len__(self) -> int: ...


ChunkT = TypeVar("ChunkT", bound=ChunkLike)


@dataclass(kw_only=True)
class JobConfig:
    """What every file job is told: where to read, where to write, and how to behave."""

    input: Path
    output: Path
    overwrite: bool = False
    progress: bool = True

    @classmethod
    def from_args(cls, args: Any, **overrides: Any) -> Self:
        """The config from an argparse namespace whose option names match the fields."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in vars(args).items() if k in names and v is not None}
        return cls(**{**values, **overrides})

    def __post_init__(self) -> None:
        self.input, self.output = Path(self.input), Path(self.output)


@dataclass
class Merged:
    """What a merge wrote: rows to the outputs and error rows (their sum must be the input's rows)."""

    rows: int
    errors: int = 0


@dataclass
class JobResult:
    rows: int
    merged: Merged
    resumed_chunks: int
    seconds: float
    resumed_rows: int = 0  # rows of the chunks an earlier run had committed

    @property
    def rows_per_second(self) -> float:
        """Rows this run computed, per second (an earlier run's rows left out)."""
        return (self.rows - self.resumed_rows) / self.seconds if self.seconds > 0 else 0.0


class ResumableJob(ABC, Generic[ChunkT]):
    """What one kind of job supplies; `run_job` does the rest."""

    part_suffix = ".part"
    unit = " rows"

    def __init__(self, input_path: Path, outputs: list[Path], description: str):
        self.input_path = input_path
        self.outputs = outputs  # final files; the first names the work folder
        self.description = description

    @property
    def work(self) -> Path:
        return self.outputs[0].with_name(self.outputs[0].name + WORK_SUFFIX)

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Everything a resumed run must share with the run it continues (JSON-serialisable)."""

    @abstractmethod
    def chunks(self) -> Iterator[ChunkT]:
        """The input's chunks, the same on every run of the same settings."""

    @abstractmethod
    def write_part(self, chunk: ChunkT, fh: BinaryIO) -> None:
        """Process `chunk` and write its part file's content to `fh`."""

    @abstractmethod
    def part_rows(self, part: Path) -> int:
        """How many input rows a committed part file accounts for."""

    @abstractmethod
    def merge(self, parts: list[Path], staged: list[Path]) -> Merged:
        """Write `parts` in order into `staged` (one per output), each fsynced."""

    def total_rows(self) -> int | None:
        return None

    def fraction_read(self) -> float:
        return 0.0


def input_fingerprint(path: Path) -> dict[str, Any]:
    """Identity of an input file: size, mtime and sha256 (whole, or first + last MiB when large)."""
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        if stat.st_size <= HASH_WHOLE_BELOW:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(fh.read(HASH_SPAN))
            fh.seek(-HASH_SPAN, os.SEEK_END)
            digest.update(fh.read(HASH_SPAN))
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "sha256": digest.hexdigest(), "hashed": "whole" if stat.st_size <= HASH_WHOLE_BELOW else "head+tail"}


def run_job(job: ResumableJob[Any], *, overwrite: bool = False, progress: bool = True) -> JobResult:
    """Run or resume `job` to completion (see the module docstring for the protocol)."""
    started = time.perf_counter()
    work = job.work
    try:
        fingerprint = open_work(job, overwrite)
        rows, resumed, resumed_rows, n_parts = _run_chunks(job, progress)
        if input_fingerprint(job.input_path) != fingerprint:
            raise UserError(f"{job.input_path} changed while it was being read; committed parts are kept in "
                            f"{work}: restore it and rerun, or pass --overwrite to start over")
        parts = [work / part_name(i, job.part_suffix) for i in range(n_parts)]
        staged = [work / f"merged-{k}{out.suffix}" for k, out in enumerate(job.outputs)]
        merged = job.merge(parts, staged)
        if merged.rows + merged.errors != rows:
            raise RuntimeError(f"row count mismatch: {rows} input rows but {merged.rows} written + "
                               f"{merged.errors} errors; parts kept in {work}")
        for source, target in zip(staged, job.outputs):
            os.replace(source, target)
            fsync_dir(target.parent)
    except OSError as exc:
        if exc.errno not in _FIXABLE_OS_ERRORS:
            raise
        where = exc.filename or work
        raise UserError(f"{where}: {exc.strerror}; committed parts are kept in {work}: "
                        f"fix that and run the same command again to continue") from None
    shutil.rmtree(work, ignore_errors=True)
    return JobResult(rows=rows, merged=merged, resumed_chunks=resumed, seconds=time.perf_counter() - started,
                     resumed_rows=resumed_rows)


def part_name(index: int, suffix: str) -> str:
    return f"part-{index:07d}{suffix}"


def _run_chunks(job: ResumableJob[Any], progress: bool) -> tuple[int, int, int, int]:
    """(input rows, chunks found committed, their rows, chunks) after every chunk has a part."""
    rows = resumed = resumed_rows = n_parts = 0
    with Progress(job.total_rows(), job.unit, job.description, progress) as bar:
        for chunk in job.chunks():
            if chunk.index != n_parts:
                raise RuntimeError(f"chunk {chunk.index} arrived where {n_parts} was expected")
            n_parts += 1
            rows += len(chunk)
            part = job.work / part_name(chunk.index, job.part_suffix)
            if part.exists():
                resumed += 1
                resumed_rows += len(chunk)
                if job.part_rows(part) != len(chunk):
                    raise UserError(f"{part} does not hold the {len(chunk)} rows of its input chunk: "
                                    f"delete {job.work} (or pass --overwrite) to start over")
            else:
                atomic_write(part, lambda fh, chunk=chunk: job.write_part(chunk, fh))
            bar.advance(len(chunk), rows, job.fraction_read())
    return rows, resumed, resumed_rows, n_parts


def open_work(job: ResumableJob[Any], overwrite: bool = False) -> dict[str, Any]:
    """Resume `job`'s work folder when its settings match, else start a fresh one (step 1 above).

    Returns the input's fingerprint as recorded.
    """
    work = job.work
    for path in job.outputs:
        if path.is_dir():
            raise UserError(f"the output {path} is a folder: name a file")
    for folder in dict.fromkeys(p.parent for p in job.outputs):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UserError(f"cannot write to the output folder {folder}: permission denied")
    settings = {"format": WORK_FORMAT, "job": job.settings(), "input": input_fingerprint(job.input_path)}
    meta = work / "settings.json"
    if work.is_dir() and meta.is_file():
        try:
            previous = json.loads(meta.read_text(encoding="utf-8"))
        except ValueError:
            previous = None
        if previous == settings:
            for stale in work.glob("*.tmp"):
                stale.unlink()  # a part being written when the run was killed
            return settings["input"]
        if not overwrite:
            raise UserError(f"{work} holds an interrupted run that cannot be continued: "
                            f"{_difference(previous, settings)}; delete it or pass --overwrite to start over")
    else:
        existing = next((p for p in job.outputs if p.exists()), None)
        if existing is not None and not overwrite:
            raise UserError(f"{existing} already exists (delete it or pass --overwrite)")
    if work.exists():
        shutil.rmtree(work)  # other settings (with --overwrite), or killed before settings were committed
    work.mkdir()
    atomic_write_text(meta, json.dumps(settings, indent=1))
    return settings["input"]


def _difference(previous: Any, current: dict[str, Any]) -> str:
    """What makes an earlier run's settings unusable, in words."""
    if not isinstance(previous, dict) or previous.get("format") != WORK_FORMAT:
        return "it was started by another onnxpress version"
    before, now = previous.get("input") or {}, current["input"]
    if before.get("path") != now["path"]:
        return f"it read {before.get('path')}"
    if before != now:
        what = []
        if before.get("size") != now["size"]:
            what.append(f"size {before.get('size')} -> {now['size']} bytes")
        if before.get("sha256") != now["sha256"]:
            what.append("content differs")
        if before.get("mtime_ns") != now["mtime_ns"]:
            what.append("modified since")
        return f"the input changed since ({', '.join(what) or 'its fingerprint differs'})"
    old_job = previous.get("job") or {}
    changed = [f"{k} {old_job.get(k)!r} -> {v!r}" for k, v in current["job"].items() if old_job.get(k) != v]
    return "it used other settings (" + ", ".join(changed or ["unknown"]) + ")"
