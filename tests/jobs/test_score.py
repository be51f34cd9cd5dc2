"""File scoring: formats, bad rows, ids, several text columns, user errors, resume in process."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from job_fixtures import DiesAfter, Stop, cli, one_line_error, read_rows, texts
from onnxpress.errors import UserError
from onnxpress.runtime.jobs.score import score_file
from runtime_fixtures import LABELS




def test_csv_with_bad_rows(clf, tmp_path):
    good = texts(50)
    src = tmp_path / "in.csv"
    lines = ["id,text"] + [f"k{i},{t}" for i, t in enumerate(good)]
    lines[5] = "k4,"  # empty
    lines[9] = "k8,   "  # whitespace only
    lines[12] = "k11"  # too few fields
    lines[15] = "k14,\u200b\ufeff"  # zero-width space and BOM only: nothing to read
    body = ("\n".join(lines) + "\n").encode()
    body = body.replace(b"k20," + good[20].encode(), b"k20,caf\xe9 bad bytes")  # undecodable
    body = body.replace(b"k30,", b"k\xff30,")  # undecodable id: kept, with a replacement character
    src.write_bytes(body)
    out = tmp_path / "out.parquet"
    s = score_file(clf, src, out, ["text"], id_column="id", chunk_rows=16, progress=False)
    assert (s.rows, s.scored, s.errors) == (50, 45, 5)
    errors = {r["row"]: r["error"] for r in read_rows(tmp_path / "out.errors.parquet")}
    assert errors == {4: "empty text", 8: "empty text", 11: "row has 1 fields, too few", 14: "empty text",
                      20: "not valid UTF-8"}
    rows = read_rows(out)
    assert [r["row"] for r in rows] == [i for i in range(50) if i not in errors]
    assert [r["id"] for r in rows] == [f"k{r['row']}" if r["row"] != 30 else "k\ufffd30" for r in rows]
    expected = clf.predict([good[r["row"]] for r in rows])
    assert [(r["label"], pytest.approx(r["score"], abs=1e-6)) for r in rows] == [tuple(p) for p in expected]
    assert not (tmp_path / "out.parquet.parts").exists()


def test_jsonl_to_jsonl_with_probabilities(clf, tmp_path):
    src = tmp_path / "in.jsonl"
    records = [json.dumps({"text": t}) for t in texts(20)]
    records[3] = json.dumps({"text": 17})
    records[4] = "{not json"
    records[5] = json.dumps(["a list"])
    records[6] = json.dumps({"other": "x"})
    records[7] = json.dumps({"text": None})
    src.write_text("\n".join(records) + "\n\n")  # trailing blank line is not a row
    out = tmp_path / "out.jsonl"
    s = score_file(clf, src, out, ["text"], probabilities=True, progress=False)
    assert (s.rows, s.scored, s.errors) == (20, 15, 5)
    errors = {r["row"]: r["error"] for r in read_rows(tmp_path / "out.errors.jsonl")}
    assert errors == {3: "not text (int)", 4: "invalid JSON", 5: "not a JSON object (list)",
                      6: "no field 'text'", 7: "missing text (null)"}
    row = read_rows(out)[0]
    probs = [row[f"prob_{name}"] for name in LABELS]
    assert sum(probs) == pytest.approx(1, abs=1e-5) and row["score"] == pytest.approx(max(probs))


def test_parquet_two_text_columns_to_csv(clf, tmp_path):
    titles, bodies = texts(30, 1), texts(30, 2)
    bodies[2] = None
    titles[3], bodies[3] = "", ""
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"title": titles, "body": bodies, "n": list(range(30))}), src, row_group_size=7)
    out = tmp_path / "out.csv"
    s = score_file(clf, src, out, ["title", "body"], id_column="n", chunk_rows=8, progress=False)
    assert (s.rows, s.scored, s.errors) == (30, 29, 1)  # a null body alone is skipped, not an error
    rows = read_rows(out)
    assert [r["row"] for r in rows] == [i for i in range(30) if i != 3]
    assert [str(r["id"]) for r in rows] == [str(r["row"]) for r in rows]  # csv reads ids back as ints
    expected = clf.predict([titles[0] + " " + bodies[0], titles[2]])
    assert [rows[0]["label"], rows[2]["label"]] == [p.label for p in expected]
    assert rows[2]["score"] == pytest.approx(expected[1].score, abs=1e-6)


def test_user_errors(clf, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("text\nhello\n")
    with pytest.raises(UserError, match="column 'body' not found.*columns: text"):
        score_file(clf, src, tmp_path / "o.parquet", ["body"], progress=False)
    assert not (tmp_path / "o.parquet.parts").exists(), "a failed check leaves no work folder behind"
    with pytest.raises(UserError, match="format"):
        score_file(clf, tmp_path / "in.txt", tmp_path / "o.parquet", progress=False)
    with pytest.raises(UserError, match="not found"):
        score_file(clf, tmp_path / "missing.csv", tmp_path / "o.parquet", progress=False)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(UserError, match="cannot read"):
        score_file(clf, bad, tmp_path / "o.parquet", progress=False)
    score_file(clf, src, tmp_path / "o.parquet", progress=False)
    with pytest.raises(UserError, match="already exists"):
        score_file(clf, src, tmp_path / "o.parquet", progress=False)


def test_resume_after_crash_in_process(clf, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": texts(100)}), src)
    ref = tmp_path / "ref.parquet"
    score_file(clf, src, ref, chunk_rows=10, progress=False)
    out = tmp_path / "out.parquet"
    with pytest.raises(Stop):
        score_file(DiesAfter(clf, 4), src, out, chunk_rows=10, progress=False)
    assert len(list((tmp_path / "out.parquet.parts").glob("part-*.parquet"))) == 4
    with pytest.raises(UserError, match="other settings"):
        score_file(clf, src, out, chunk_rows=20, progress=False)
    s = score_file(clf, src, out, chunk_rows=10, progress=False)
    assert s.resumed_chunks == 4 and s.rows == 100
    assert pq.read_table(out).equals(pq.read_table(ref))


def test_cli_one_line_errors(artifact_dir, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("text\nhello\n")
    cases = [
        ([tmp_path / "nope", src, "--out", tmp_path / "o.parquet"], "artifact directory not found"),
        ([artifact_dir, src, "--out", tmp_path / "o.parquet", "--text-column", "body"], "column 'body' not found"),
        ([artifact_dir, tmp_path / "gone.csv", "--out", tmp_path / "o.parquet"], "input file not found"),
        ([artifact_dir, src, "--out", tmp_path / "o.xlsx"], "output format"),
        ([artifact_dir, src, "--out", tmp_path / "o.parquet", "--variant", "int4"], "rejected"),
    ]
    for args, message in cases:
        one_line_error(cli("score", *args), message)
