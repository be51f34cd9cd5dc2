"""Issue 14, `onnxpress translate`: unreadable input, closed stdout, no tqdm; and the file job itself."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from job_fixtures import ENV, LEGACY_TRANSLATOR, cli, one_line_error

SENTENCES = ["Ein Mann fährt Fahrrad.", "Eine Frau liest ein Buch.", "", "Zwei Hunde spielen im Park."]
COMMON = ["--variant", "fp32", "--device", "cpu", "--threads", "1", "--beam-size", "1"]


def test_unreadable_input(tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="onnxpress-jobs-"))
    try:
        folder.chmod(0o777)
        src = folder / "secret.de"
        src.write_text("Ein Hund.\n")
        src.chmod(0o600)  # root's file: user nobody cannot read it
        res = cli("translate", LEGACY_TRANSLATOR, "--input", src, "--output", folder / "o.en", *COMMON,
                  unprivileged=True)
        one_line_error(res, f"cannot read input file {src}: Permission denied")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_beam_size_is_bounded_before_anything_loads(tmp_path):
    from onnxpress.runtime.beam_search import MAX_BEAM_SIZE

    missing = tmp_path / "no-artifact"  # the bound is checked first: no model, no input is read
    for args in (["--beam-size", str(MAX_BEAM_SIZE + 1)], ["--beam-size", "100000", "--engine", "ray"]):
        one_line_error(cli("translate", missing, *args), f"beam_size must be an integer from 1 to {MAX_BEAM_SIZE}")


def test_a_full_disk_or_an_unwritable_path_is_one_line_not_a_traceback():
    """The CLI's net for the machine's failures outside the resumable jobs' own handling: stdout on a
    full disk (/dev/full answers every write with ENOSPC), an output in a folder nothing can be made in."""
    with open("/dev/full", "w") as full:
        res = subprocess.run([sys.executable, "-m", "onnxpress", "translate", str(LEGACY_TRANSLATOR), *COMMON],
                             input="Ein Hund.\n", stdout=full, stderr=subprocess.PIPE, text=True, env=ENV,
                             timeout=300)
    one_line_error(res, "No space left on device")
    assert "run the same command again" in res.stderr  # a full disk is fixable: say what is kept
    res = cli("translate", LEGACY_TRANSLATOR, "--input", "/proc/self/status", "--output", "/proc/out.en", *COMMON)
    one_line_error(res, "/proc/out.en")


def test_closed_stdout_exits_quietly():
    """`onnxpress translate ... | head -1`: the reader goes away; no traceback, no 'Exception ignored'."""
    proc = subprocess.Popen([sys.executable, "-m", "onnxpress", "translate", str(LEGACY_TRANSLATOR), *COMMON,
                             "--batch-lines", "1"], env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdin.write(b"Ein Hund.\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip()  # one translated line arrives, then the reader leaves
    proc.stdout.close()
    try:
        for _ in range(200):
            proc.stdin.write(b"Ein Mann trinkt Kaffee.\n")
            proc.stdin.flush()
    except BrokenPipeError:
        pass  # the translator already stopped
    try:
        proc.stdin.close()
    except BrokenPipeError:
        pass
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, stderr  # 128 + SIGPIPE, as a Unix filter killed by the pipe
    assert "Traceback" not in stderr and "Exception ignored" not in stderr and "Error" not in stderr, stderr


# Hides tqdm as a runtime-only install (no extras) would, then runs the CLI.
WITHOUT_TQDM = ("-c", "import sys; sys.modules['tqdm'] = None; from onnxpress.cli import main; "
                      "raise SystemExit(main(sys.argv[1:]))")


def test_file_mode_without_tqdm(tmp_path):
    src = tmp_path / "in.de"
    src.write_text("\n".join(SENTENCES) + "\n")
    res = cli("translate", LEGACY_TRANSLATOR, "--input", src, "--output", tmp_path / "o.en", *COMMON,
              python=WITHOUT_TQDM)
    assert res.returncode == 0, res.stderr
    lines = (tmp_path / "o.en").read_text().split("\n")[:-1]
    assert len(lines) == len(SENTENCES) and lines[2] == "" and all(lines[k] for k in (0, 1, 3))


def test_score_without_tqdm(artifact_dir, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("text\nhello world\n")
    res = cli("score", artifact_dir, src, "--out", tmp_path / "o.parquet", python=WITHOUT_TQDM)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "o.parquet").exists()


@pytest.fixture(scope="module")
def translator():
    from onnxpress.runtime import Translator

    return Translator.load(LEGACY_TRANSLATOR, variant="fp32", device="cpu", threads=1)


def test_file_job_resumes_and_matches_stream(translator, tmp_path):
    """The file job equals the streaming mode line for line; a half-finished run is continued."""
    import io

    from onnxpress.runtime.jobs.translate import translate_file, translate_stream

    lines = (SENTENCES * 6)[:22] + [b"\xff\xfe bad".decode("latin-1")]
    src = tmp_path / "in.de"
    src.write_bytes(b"".join(s.encode("utf-8") + b"\n" for s in lines[:-1]) + b"\xff\xfe bad\n")
    streamed = io.StringIO()
    translate_stream(translator, io.BytesIO(src.read_bytes()), streamed, beam_size=1)
    out = tmp_path / "o.en"
    parts = tmp_path / "o.en.parts"

    class Stop(Exception):
        pass

    class DiesAfter:
        """The translator, failing after `n` calls: an interrupted run."""

        def __init__(self, n):
            self.n, self.artifact, self.variant = n, translator.artifact, translator.variant
            self.source, self.budget = translator.source, translator.budget

        def translate(self, texts, beam_size=None):
            if self.n == 0:
                raise Stop()
            self.n -= 1
            return translator.translate(texts, beam_size=beam_size)

    with pytest.raises(Stop):
        translate_file(DiesAfter(2), src, out, beam_size=1, chunk_lines=5, progress=False)
    assert len(list(parts.glob("part-*.txt"))) == 2 and not out.exists()
    summary = translate_file(translator, src, out, beam_size=1, chunk_lines=5, progress=False)
    assert summary.resumed_chunks == 2 and summary.lines == 23 and summary.errors == [23]
    assert summary.rate > 0 and not summary.truncated
    assert out.read_text() == streamed.getvalue()
    assert not parts.exists()


def test_lines_longer_than_the_model_reads_are_reported(translator, tmp_path):
    from onnxpress.runtime.jobs.translate import translate_file

    src = tmp_path / "in.de"
    long_line = " ".join(SENTENCES * 40)
    src.write_text("\n".join([SENTENCES[0], long_line, "", long_line]) + "\n")
    summary = translate_file(translator, src, tmp_path / "o.en", beam_size=1, progress=False)
    assert (summary.truncated, summary.truncated_lines) == (2, [2, 4]) and "2 truncated" in summary.line()
    assert len((tmp_path / "o.en").read_text().splitlines()) == 4

    class DiesAfterOneChunk:  # the first chunk (lines 1-2) is committed, then the run stops
        artifact, variant, source, budget = translator.artifact, translator.variant, translator.source, translator.budget
        calls = 0

        def translate(self, texts, beam_size=None):
            self.calls += 1
            if self.calls > 1:
                raise KeyboardInterrupt
            return translator.translate(texts, beam_size=beam_size)

    out = tmp_path / "resumed.en"
    with pytest.raises(KeyboardInterrupt):
        translate_file(DiesAfterOneChunk(), src, out, beam_size=1, chunk_lines=2, progress=False)
    resumed = translate_file(translator, src, out, beam_size=1, chunk_lines=2, progress=False)
    assert resumed.resumed_chunks == 1 and (resumed.truncated, resumed.truncated_lines) == (2, [2, 4])


def test_a_resumed_translation_must_use_the_same_batches_where_they_shape_the_text(tmp_path):
    """Dynamic int8 (older artifacts) quantizes per batch: a run resumed with other batch limits is
    refused. fp32 (and frozen-scale int8) give the same text in any batch: other limits resume."""
    from onnxpress.errors import UserError
    from onnxpress.runtime import Translator
    from onnxpress.runtime.jobs.resumable import open_work
    from onnxpress.runtime.jobs.translate import TranslateConfig, TranslateJob

    src = tmp_path / "in.de"
    src.write_text("\n".join(SENTENCES) + "\n")
    for variant, refused in (("int8", True), ("fp32", False)):
        config = TranslateConfig(input=src, output=tmp_path / f"o.{variant}.en", progress=False)
        for size in (64, 3):
            job = TranslateJob(Translator.load(LEGACY_TRANSLATOR, variant=variant, device="cpu", threads=1,
                                               max_batch_size=size), config)
            if size == 3 and refused:
                with pytest.raises(UserError, match="batches"):
                    open_work(job)
            else:
                open_work(job)  # the first run's work folder, or resumed
