"""Translating text files line by line: streaming (stdin -> stdout) and a resumable file job.

Line i of the output is the translation of line i of the input, always: blank input lines
give blank output lines, and a line that is not valid UTF-8 gives a blank line and is
reported. The file job's part is the chunk's translated lines; the merge concatenates them.
The protocol (parts, resume, verified merge) is `runtime/jobs/resumable.py`.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Iterator, Sequence

from onnxpress.errors import UserError
from onnxpress.runtime.jobs.readers import Chunk, LineReader, decode_line
from onnxpress.runtime.jobs.resumable import JobConfig, Merged, ResumableJob, part_name, run_job
from onnxpress.runtime.jobs.writers import write_lines
from onnxpress.runtime.text_tokenizer import is_blank

DEFAULT_CHUNK_LINES = 1024
SHOWN_LINES = 5  # line numbers a summary names per kind of problem


@dataclass(kw_only=True)
class TranslateConfig(JobConfig):
    beam_size: int | None = None
    chunk_lines: int = DEFAULT_CHUNK_LINES


@dataclass
class TranslateSummary:
    lines: int
    translated: int
    blank: int
    errors: list[int] = field(default_factory=list)  # 1-based line numbers that were not valid UTF-8
    truncated: int = 0  # lines longer than the model reads (only their start is translated)
    truncated_lines: list[int] = field(default_factory=list)  # the first few, 1-based
    resumed_chunks: int = 0
    output: str = ""
    seconds: float = 0.0
    rate: float = 0.0  # lines per second computed by this run (an earlier run's lines left out)

    def line(self) -> str:
        rate = f", {self.rate:.1f} lines/s" if self.rate > 0 else ""
        resumed = f" ({self.resumed_chunks} chunks from an earlier run)" if self.resumed_chunks else ""
        bad = f", {len(self.errors)} not UTF-8 (blank in output; lines {self.errors[:SHOWN_LINES]})" if self.errors else ""
        cut = (f", {self.truncated} truncated (longer than the model reads: only their start is translated; "
               f"lines {self.truncated_lines})" if self.truncated else "")
        return (f"{self.lines} lines: {self.translated} translated, {self.blank} blank{bad}{cut} -> "
                f"{self.output}{resumed}{rate}")

    def count(self, texts: list[str | None], first_line: int) -> None:
        """Add one batch of decoded lines (None = not UTF-8) starting at 1-based `first_line`."""
        self.lines += len(texts)
        self.errors.extend(first_line + k for k, t in enumerate(texts) if t is None)
        blank = sum(1 for t in texts if t is not None and is_blank(t))
        self.blank += blank
        self.translated += len(texts) - blank - texts.count(None)

    def count_truncated(self, flags: Sequence[bool], first_line: int) -> None:
        """Add the truncation flags of the lines starting at 1-based `first_line`."""
        cut = [first_line + k for k, flag in enumerate(flags) if flag]
        self.truncated += len(cut)
        self.truncated_lines.extend(cut[: max(0, SHOWN_LINES - len(self.truncated_lines))])


def translate_lines(translator: Any, texts: list[str], beam_size: int | None) -> tuple[list[str], list[bool]]:
    """One output line per text (a translation never spans lines), and which texts were truncated."""
    translations = translator.translate(texts, beam_size=beam_size)
    return [" ".join(t.text.split()) for t in translations], [t.truncated for t in translations]


def truncation(source: Any, texts: Sequence[str | None]) -> list[bool]:
    """Which texts `source` (a source tokenizer) truncates, without translating them."""
    kept = [k for k, t in enumerate(texts) if t is not None and not is_blank(t)]
    flags = [False] * len(texts)
    if kept:
        for k, cut in zip(kept, source.encode([texts[k] for k in kept], with_type_ids=False).truncated):
            flags[k] = bool(cut)
    return flags


def translate_stream(translator: Any, src: IO[bytes], dst: IO[str], *, beam_size: int | None = None,
                     batch_lines: int = 64) -> TranslateSummary:
    """Read lines from `src` (binary), write one translated line per input line to `dst`, in order.

    Lines are translated `batch_lines` at a time and flushed after each batch, so a pipe
    sees output while input is still arriving.
    """
    started = time.perf_counter()
    summary = TranslateSummary(lines=0, translated=0, blank=0, output="<stdout>")
    batch: list[str | None] = []

    def flush() -> None:
        first = summary.lines + 1
        summary.count(batch, first)
        lines, cut = translate_lines(translator, [t or "" for t in batch], beam_size)
        summary.count_truncated(cut, first)
        for text in lines:
            dst.write(text + "\n")
        dst.flush()
        batch.clear()

    for raw in src:
        batch.append(decode_line(raw))
        if len(batch) >= batch_lines:
            flush()
    if batch:
        flush()
    summary.seconds = time.perf_counter() - started
    summary.rate = summary.lines / summary.seconds if summary.seconds > 0 else 0.0
    return summary


def quantizes_per_batch(artifact: Any, variant: str) -> bool:
    """Whether `variant` scales activations per batch (dynamic int8: translator artifacts exported
    before their int8 scales were frozen), so that a sentence's text depends on its batch."""
    return artifact.manifest.variants[variant].method.get("kind") == "dynamic"


class TranslateJob(ResumableJob[Chunk]):
    part_suffix = ".txt"
    unit = " lines"

    def __init__(self, translator: Any, config: TranslateConfig):
        if config.output.resolve() == config.input.resolve():
            raise UserError("output file is the input file")
        if not config.output.parent.is_dir():
            raise UserError(f"output folder does not exist: {config.output.parent}")
        self.reader = LineReader(config.input, config.chunk_lines)
        super().__init__(config.input, [config.output], f"translating {config.input.name}")
        self.translator, self.config = translator, config
        self.summary = TranslateSummary(lines=0, translated=0, blank=0, output=str(config.output))

    translates_here = True  # write_part translates (and so learns the truncated lines) in this process

    @property
    def source(self) -> Any:
        """The source tokenizer: it tells which lines are truncated in chunks not translated here."""
        return self.translator.source

    def batch_limits(self) -> list[int | None] | None:
        """The batch limits where they shape the text (a dynamically quantized variant), else None."""
        if not quantizes_per_batch(self.translator.artifact, self.translator.variant):
            return None
        budget = self.translator.budget
        return [budget.max_batch_tokens, budget.max_batch_size]

    def settings(self) -> dict[str, Any]:
        return {"chunk_lines": self.config.chunk_lines, "beam_size": self.config.beam_size,
                "artifact": str(Path(self.translator.artifact.root).resolve()), "variant": self.translator.variant,
                "batches": self.batch_limits()}

    def chunks(self) -> Iterator[Chunk]:
        for chunk in self.reader.chunks():
            self.summary.count(chunk.texts, chunk.start + 1)
            if not self.translates_here or (self.work / part_name(chunk.index, self.part_suffix)).exists():
                self.summary.count_truncated(truncation(self.source, chunk.texts), chunk.start + 1)
            yield chunk

    def total_rows(self) -> int | None:
        return self.reader.total_rows

    def write_part(self, chunk: Chunk, fh: BinaryIO) -> None:
        lines, cut = translate_lines(self.translator, [t or "" for t in chunk.texts], self.config.beam_size)
        self.summary.count_truncated(cut, chunk.start + 1)
        write_lines(fh, lines)

    def part_rows(self, part: Path) -> int:
        with open(part, "rb") as fh:
            return sum(1 for _ in fh)

    def merge(self, parts: list[Path], staged: list[Path]) -> Merged:
        from onnxpress.runtime.jobs.durable import fsync_file

        written = 0
        with open(staged[0], "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    for raw in fh:
                        out.write(raw)
                        written += 1
        fsync_file(staged[0])
        return Merged(rows=written)


def run_translate(translator: Any, config: TranslateConfig) -> TranslateSummary:
    """Translate every line of `config.input` into `config.output`; resumable after any interruption."""
    return run_translate_job(TranslateJob(translator, config))


def run_translate_job(job: TranslateJob) -> TranslateSummary:
    """Run a built translate job (this process's, or one whose chunks run elsewhere) to its summary."""
    result = run_job(job, overwrite=job.config.overwrite, progress=job.config.progress)
    job.summary.resumed_chunks, job.summary.seconds = result.resumed_chunks, result.seconds
    job.summary.rate = result.rows_per_second
    return job.summary


def translate_file(translator: Any, input_path: str | os.PathLike, out_path: str | os.PathLike, *,
                   beam_size: int | None = None, chunk_lines: int = DEFAULT_CHUNK_LINES,
                   overwrite: bool = False, progress: bool = True) -> TranslateSummary:
    """`run_translate` with keyword arguments (the API before `TranslateConfig`)."""
    return run_translate(translator, TranslateConfig(input=Path(input_path), output=Path(out_path),
                                                     beam_size=beam_size, chunk_lines=chunk_lines,
                                                     overwrite=overwrite, progress=progress))
