"""Issue 14, file scoring: inputs and paths that used to lose data or end in a traceback."""
from __future__ import annotations

import os
import shutil
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from job_fixtures import cli, one_line_error, read_rows, texts
from onnxpress.errors import UserError
from onnxpress.runtime.jobs.readers import MAX_TEXT_CHARS
from onnxpress.runtime.jobs.score import score_file


def _csv(path, rows):
    path.write_text("text\n" + "\n".join(rows) + "\n")
    return path


def test_errors_file_equal_to_output_is_refused(clf, tmp_path):
    src = _csv(tmp_path / "in.csv", texts(5))
    out = tmp_path / "s.parquet"
    with pytest.raises(UserError, match="errors file .* is the output file"):
        score_file(clf, src, out, errors_path=out, progress=False)
    with pytest.raises(UserError, match="errors file .* is the output file"):
        score_file(clf, src, out, errors_path=tmp_path / "." / "s.parquet", progress=False)
    assert not out.exists() and not (tmp_path / "s.parquet.parts").exists()


def test_errors_file_equal_to_input_is_refused(clf, tmp_path):
    src = _csv(tmp_path / "in.csv", texts(5))
    before = src.read_bytes()
    with pytest.raises(UserError, match="errors file .* is the input file"):
        score_file(clf, src, tmp_path / "s.parquet", errors_path=src, overwrite=True, progress=False)
    with pytest.raises(UserError, match="output .* is the input file"):
        score_file(clf, src, src.with_suffix(".csv"), overwrite=True, progress=False)
    assert src.read_bytes() == before


def test_existing_errors_file_needs_overwrite(clf, tmp_path):
    src = _csv(tmp_path / "in.csv", texts(5) + [" "])
    errors = tmp_path / "keep.jsonl"
    errors.write_text('{"precious": true}\n')
    with pytest.raises(UserError, match="keep.jsonl already exists"):
        score_file(clf, src, tmp_path / "s.parquet", errors_path=errors, progress=False)
    assert errors.read_text() == '{"precious": true}\n'
    s = score_file(clf, src, tmp_path / "s.parquet", errors_path=errors, overwrite=True, progress=False)
    assert (s.scored, s.errors) == (5, 1) and read_rows(errors) == [{"row": 5, "error": "empty text"}]


def test_cli_errors_equal_to_output(artifact_dir, tmp_path):
    src = _csv(tmp_path / "in.csv", texts(5))
    out = tmp_path / "s.parquet"
    one_line_error(cli("score", artifact_dir, src, "--out", out, "--errors", out), "is the output file")


def test_deeply_nested_jsonl_line_is_one_bad_row(clf, tmp_path):
    src = tmp_path / "in.jsonl"
    good = texts(4)
    src.write_text('{"text": "%s"}\n%s\n{"text": "%s"}\n{"text": "%s"}\n{"text": "%s"}\n'
                   % (good[0], "[" * 100_000, good[1], good[2], good[3]))
    s = score_file(clf, src, tmp_path / "o.parquet", progress=False)
    assert (s.rows, s.scored, s.errors) == (5, 4, 1)
    assert read_rows(tmp_path / "o.errors.parquet") == [{"row": 1, "error": "invalid JSON (nested too deep)"}]


def _corrupt_row_group(path, group):
    """Overwrite the first page header of `group`'s text column: the footer stays valid."""
    meta = pq.ParquetFile(path).metadata.row_group(group).column(0)
    with open(path, "r+b") as fh:
        fh.seek(meta.data_page_offset)
        fh.write(b"\xff" * 64)


def test_corrupt_parquet_row_group_gives_error_rows(clf, tmp_path):
    rows = texts(40, 1)
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": rows}), src, row_group_size=10)
    _corrupt_row_group(src, 1)
    pq.ParquetFile(src)  # the footer still reads
    s = score_file(clf, src, tmp_path / "o.parquet", chunk_rows=8, progress=False)
    assert (s.rows, s.scored, s.errors) == (40, 30, 10)
    errors = read_rows(tmp_path / "o.errors.parquet")
    assert [e["row"] for e in errors] == list(range(10, 20))
    assert all(e["error"].startswith("unreadable parquet row group 1") for e in errors)
    scored = read_rows(tmp_path / "o.parquet")
    assert [r["label"] for r in scored] == [p.label for p in clf.predict(rows[:10] + rows[20:])]


def test_csv_field_over_128k_is_one_bad_row(clf, tmp_path):
    rows = texts(10, 2)
    rows[3] = "word " * (MAX_TEXT_CHARS // 4)  # 160 KiB, over the csv module's default 128 KiB limit
    rows[6] = '"' + "quoted, over lines\n" * 8000 + '"'
    src = _csv(tmp_path / "in.csv", rows)
    s = score_file(clf, src, tmp_path / "o.parquet", chunk_rows=4, progress=False)
    assert (s.rows, s.scored, s.errors) == (10, 8, 2)
    errors = {e["row"]: e["error"] for e in read_rows(tmp_path / "o.errors.parquet")}
    assert errors == {3: f"text over {MAX_TEXT_CHARS} characters", 6: f"text over {MAX_TEXT_CHARS} characters"}


@pytest.mark.parametrize("flag", ["--max-batch-tokens", "--max-batch-size", "--chunk-rows", "--threads"])
@pytest.mark.parametrize("value", ["0", "-5"])
def test_batch_flags_must_be_positive(artifact_dir, tmp_path, flag, value):
    src = _csv(tmp_path / "in.csv", texts(3))
    res = cli("score", artifact_dir, src, "--out", tmp_path / "o.parquet", flag, value)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"argument {flag}: must be >= 1, got {value}" in res.stderr
    assert not (tmp_path / "o.parquet").exists()


@pytest.fixture
def open_dir():
    """A folder the unprivileged test user can read (pytest's tmp_path is root-only)."""
    path = tempfile.mkdtemp(prefix="onnxpress-jobs-")
    os.chmod(path, 0o755)
    yield __import__("pathlib").Path(path)
    shutil.rmtree(path, ignore_errors=True)


def test_read_only_output_folder(artifact_dir, open_dir):
    art = open_dir / "clf"
    shutil.copytree(artifact_dir, art)
    for path in [art, *art.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    src = _csv(open_dir / "in.csv", texts(3))
    out_dir = open_dir / "ro"
    out_dir.mkdir(mode=0o555)
    os.chmod(out_dir, 0o555)
    res = cli("score", art, src, "--out", out_dir / "o.parquet", unprivileged=True)
    one_line_error(res, "cannot write to the output folder")


def test_an_output_that_is_a_folder_is_refused_before_any_work(clf, tmp_path):
    src = _csv(tmp_path / "in.csv", texts(5))
    folder = tmp_path / "s.csv"
    folder.mkdir()
    (folder / "keep").write_text("precious")
    with pytest.raises(UserError, match="is a folder"):
        score_file(clf, src, folder, overwrite=True, progress=False)
    assert (folder / "keep").read_text() == "precious" and not (tmp_path / "s.csv.parts").exists()


def test_an_input_that_is_a_folder_says_so(clf, tmp_path):
    (tmp_path / "in.csv").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        score_file(clf, tmp_path / "in.csv", tmp_path / "s.csv", progress=False)


def test_csv_rows_with_extra_fields_are_error_rows_not_truncated_texts(clf, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,text\n1,fine text\n2,has,extra,fields\n3,\"quoted, comma\"\n")
    s = score_file(clf, src, tmp_path / "s.csv", id_column="id", progress=False)
    assert (s.scored, s.errors) == (2, 1)
    assert "4 fields, 2 expected" in read_rows(tmp_path / "s.errors.csv")[0]["error"]


def test_a_quote_that_never_closes_is_an_error_row_not_a_text_that_swallows_the_file(clf, tmp_path):
    """Lenient CSV parsing read the rest of the file into that one field: 4 data lines, 2 rows scored
    and nothing said. Now that record is an error row saying why, and malformed quoting likewise."""
    src = tmp_path / "in.csv"
    src.write_text('id,text\n1,fine text\n2,"abc"def\n3,also fine\n4,"unterminated\n5,next row\n6,another\n')
    s = score_file(clf, src, tmp_path / "s.csv", id_column="id", progress=False)
    assert (s.rows, s.scored, s.errors) == (4, 2, 2)
    assert [str(r["id"]) for r in read_rows(tmp_path / "s.csv")] == ["1", "3"]
    errors = {e["row"]: e["error"] for e in read_rows(tmp_path / "s.errors.csv")}  # rows numbered from 0
    assert "',' expected after '\"'" in errors[1]  # quoted text glued to more text
    assert "a quoted field that never closes" in errors[3] and "to the end of the file" in errors[3]


def test_a_header_naming_the_text_column_twice_is_refused(clf, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("text,text\na,b\n")
    with pytest.raises(UserError, match="appears 2 times"):
        score_file(clf, src, tmp_path / "s.csv", progress=False)


def test_no_header_column_past_the_first_row_is_refused(clf, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("1,some text,x\n2,more text,y\n")
    with pytest.raises(UserError, match="column 7 asked for, but the first row .* has 3 field"):
        score_file(clf, src, tmp_path / "s.csv", text_columns=["7"], header=False, progress=False)
    s = score_file(clf, src, tmp_path / "s.csv", text_columns=["1"], header=False, progress=False)
    assert s.scored == 2


def test_the_rate_after_a_resume_counts_only_this_runs_rows(clf, tmp_path):
    from onnxpress.runtime.jobs.resumable import JobResult, Merged

    done = JobResult(rows=1000, merged=Merged(rows=1000), resumed_chunks=9, seconds=2.0, resumed_rows=900)
    assert done.rows_per_second == 50.0
