"""Translating text files line by line: streaming (stdin -> stdout) and resumable batch mode.

Line i of the output is the translation of line i of the input, always: blank input lines
give blank output lines, and a line that is not valid UTF-8 gives a blank line and is
reported. Batch mode follows the same commit protocol as `onnxpress score`
(`runtime/scoring.py`): the input is cut into chunks of `chunk_lines` lines, each chunk is
written as a part file (tmp, fsync, rename), a restarted run skips the parts that exist,
and the final merge checks that the output has exactly as many lines as the input.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

from onnxpress.errors import UserError
from onnxpress.runtime.durable import atomic_write_text, prepare_work_dir

DEFAULT_CHUNK_LINES = 1024
WORK_SUFFIX = ".parts"


@dataclass
class TranslateSummary:
    lines: int
    translated: int
    blank: int
    errors: list[int] = field(default_factory=list)  # 1-based line numbers that were not valid UTF-8
    resumed_chunks: int = 0
    output: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        rate = f", {self.translated / self.seconds:.1f} sentences/s" if self.seconds > 0 else ""
        resumed = f" ({self.resumed_chunks} chunks from an earlier run)" if self.resumed_chunks else ""
        bad = f", {len(self.errors)} not UTF-8 (blank in output; lines {self.errors[:5]})" if self.errors else ""
        return f"{self.lines} lines: {self.translated} translated, {self.blank} blank{bad} -> {self.output}{resumed}{rate}"


def _decode(raw: bytes) -> tuple[str, bool]:
    """(text, ok): the line without its end; ok=False when it is not valid UTF-8."""
    raw = raw.rstrip(b"\n").rstrip(b"\r")
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return "", False


def _one_line(text: str) -> str:
    return " ".join(text.split())  # a translation never spans lines


def _translate_lines(translator: Any, texts: list[str], beam_size: int | None) -> list[str]:
    return [_one_line(t.text) for t in translator.translate(texts, beam_size=beam_size)]


def translate_stream(translator: Any, src: IO[bytes], dst: IO[str], *, beam_size: int | None = None,
                     batch_lines: int = 64) -> TranslateSummary:
    """Read lines from `src` (binary), write one translated line per input line to `dst`, in order.

    Lines are translated `batch_lines` at a time and flushed after each batch, so a pipe
    sees output while input is still arriving.
    """
    started = time.perf_counter()
    summary = TranslateSummary(lines=0, translated=0, blank=0, output="<stdout>")
    batch: list[str] = []

    def flush() -> None:
        for text in _translate_lines(translator, batch, beam_size):
            dst.write(text + "\n")
        dst.flush()
        batch.clear()

    for raw in src:
        summary.lines += 1
        text, ok = _decode(raw)
        if not ok:
            summary.errors.append(summary.lines)
        if not text.strip():
            summary.blank += ok
        else:
            summary.translated += 1
        batch.append(text)
        if len(batch) >= batch_lines:
            flush()
    if batch:
        flush()
    summary.seconds = time.perf_counter() - started
    return summary


# -- batch mode ------------------------------------------------------------------------------

@dataclass
class _Settings:
    input: str
    input_size: int
    input_mtime_ns: int
    chunk_lines: int
    artifact: str
    variant: str
    beam_size: int | None


def _chunks(path: Path, chunk_lines: int) -> Iterator[list[bytes]]:
    with open(path, "rb") as fh:
        chunk: list[bytes] = []
        for raw in fh:
            chunk.append(raw)
            if len(chunk) == chunk_lines:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def translate_file(translator: Any, input_path: str | os.PathLike, out_path: str | os.PathLike, *,
                   beam_size: int | None = None, chunk_lines: int = DEFAULT_CHUNK_LINES,
                   overwrite: bool = False, progress: bool = True) -> TranslateSummary:
    """Translate every line of `input_path` into `out_path`; resumable after any interruption."""
    from tqdm import tqdm

    started = time.perf_counter()
    input_path, out_path = Path(input_path), Path(out_path)
    if not input_path.is_file():
        raise UserError(f"input file not found: {input_path}")
    if chunk_lines < 1:
        raise UserError("--chunk-lines must be >= 1")
    if not out_path.parent.is_dir():
        raise UserError(f"output folder does not exist: {out_path.parent}")
    if out_path.resolve() == input_path.resolve():
        raise UserError("output file is the input file")
    work = out_path.with_name(out_path.name + WORK_SUFFIX)
    stat = input_path.stat()
    settings = _Settings(input=str(input_path.resolve()), input_size=stat.st_size, input_mtime_ns=stat.st_mtime_ns,
                         chunk_lines=chunk_lines, artifact=str(Path(translator.artifact.root).resolve()),
                         variant=translator.variant, beam_size=beam_size)
    prepare_work_dir(work, asdict(settings), out_path, overwrite)

    total = _count_lines(input_path)
    summary = TranslateSummary(lines=0, translated=0, blank=0, output=str(out_path))
    bar = tqdm(total=total, unit=" lines", disable=not progress, dynamic_ncols=True,
               desc=f"translating {input_path.name}", file=sys.stderr)
    n_chunks = 0
    try:
        for index, chunk in enumerate(_chunks(input_path, chunk_lines)):
            n_chunks += 1
            start = summary.lines
            decoded = [_decode(raw) for raw in chunk]
            summary.lines += len(chunk)
            summary.errors.extend(start + k + 1 for k, (_, ok) in enumerate(decoded) if not ok)
            texts = [text for text, _ in decoded]
            n_text = sum(1 for t in texts if t.strip())
            summary.translated += n_text
            summary.blank += sum(1 for (t, ok) in decoded if ok and not t.strip())
            part = work / f"part-{index:07d}.txt"
            if part.exists():
                summary.resumed_chunks += 1
                with open(part, "rb") as fh:
                    if sum(1 for _ in fh) != len(chunk):
                        raise UserError(f"{part} does not hold {len(chunk)} lines: delete {work} and rerun")
            else:
                lines = _translate_lines(translator, texts, beam_size)
                atomic_write_text(part, "".join(line + "\n" for line in lines))
            bar.update(len(chunk))
    finally:
        bar.close()

    tmp = out_path.with_name(out_path.name + ".tmp")
    written = 0
    with open(tmp, "wb") as out:
        for index in range(n_chunks):
            with open(work / f"part-{index:07d}.txt", "rb") as fh:
                for raw in fh:
                    out.write(raw)
                    written += 1
        out.flush()
        os.fsync(out.fileno())
    if written != summary.lines:
        raise RuntimeError(f"line count mismatch: {summary.lines} input lines, {written} output lines; "
                           f"parts kept in {work}")
    os.replace(tmp, out_path)
    shutil.rmtree(work, ignore_errors=True)
    summary.seconds = time.perf_counter() - started
    return summary
