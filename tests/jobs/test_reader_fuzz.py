"""Property-based inputs for file scoring (issue 14): whatever the bytes, the job ends with a
`UserError` or with every input row exactly once, in the output or the errors file.

Bounded example counts keep the whole file well under a minute on a shared 2-core machine.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job_fixtures import read_rows
from onnxpress.errors import UserError
from onnxpress.runtime.jobs.score import score_file

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])
BOM = "\ufeff".encode()
HUGE = "y" * 140_000


def _bytes_of(text: str) -> bytes:
    """UTF-8, keeping lone surrogates as the (invalid) bytes a careless writer would produce."""
    return text.encode("utf-8", "surrogatepass")


texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(blacklist_categories=()), max_size=20),  # includes lone surrogates
    st.sampled_from(["", " ", "a,b", '"quoted, with comma"', 'half "quote', "line\nbreak", "\r", HUGE, "\x00"]),
)
raw_lines = st.one_of(st.binary(max_size=60), st.just(b"\xff\xfe\xfd"), st.just(b"[" * 5000))


def _score(clf, name: str, body: bytes, **kwargs) -> None:
    """Score `body` as file `name`; a UserError is fine, anything else fails; rows must reconcile."""
    with tempfile.TemporaryDirectory() as folder:
        src, out = Path(folder) / name, Path(folder) / "out.parquet"
        src.write_bytes(body)
        try:
            summary = score_file(clf, src, out, chunk_rows=3, progress=False, **kwargs)
        except UserError:
            assert not out.exists()
            return
        scored, errors = read_rows(out), read_rows(Path(folder) / "out.errors.parquet")
        assert summary.rows == summary.scored + summary.errors
        assert (len(scored), len(errors)) == (summary.scored, summary.errors)
        assert sorted(r["row"] for r in scored + errors) == list(range(summary.rows)), "each row exactly once"
        assert all(r["label"] is not None for r in scored) and all(e["error"] for e in errors)


@FUZZ
@given(body=st.binary(max_size=400))
def test_random_bytes_any_format(clf, body):
    for name in ("in.csv", "in.jsonl", "in.parquet"):
        _score(clf, name, body)


@FUZZ
@given(rows=st.lists(st.lists(texts, min_size=0, max_size=4), max_size=12), bom=st.booleans(),
       crlf=st.booleans(), noise=st.lists(raw_lines, max_size=2))
def test_csv(clf, rows, bom, crlf, noise):
    end = b"\r\n" if crlf else b"\n"
    lines = [b"id,text"] + [b",".join(_bytes_of(json.dumps(v) if "," in v or "\n" in v else v) for v in row)
                             for row in rows] + noise
    _score(clf, "in.csv", (BOM if bom else b"") + end.join(lines) + end, id_column="id")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | texts,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                      max_size=3), max_leaves=8)


@FUZZ
@given(records=st.lists(st.one_of(st.fixed_dictionaries({"text": json_values}), json_values), max_size=12),
       noise=st.lists(raw_lines, max_size=3), bom=st.booleans(), crlf=st.booleans())
def test_jsonl(clf, records, noise, bom, crlf):
    end = b"\r\n" if crlf else b"\n"
    lines = [b'{"text": "first"}'] + [_bytes_of(json.dumps(r)) for r in records] + noise
    _score(clf, "in.jsonl", (BOM if bom else b"") + end.join(lines) + end)


@FUZZ
@given(values=st.lists(st.one_of(st.none(), texts), max_size=30), binary=st.booleans(),
       damage=st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=8)), max_size=3))
def test_parquet(clf, values, binary, damage):
    column = pa.array([None if v is None else _bytes_of(v) for v in values], type=pa.binary()) if binary \
        else pa.array([None if v is None else _bytes_of(v).decode("utf-8", "replace") for v in values], pa.string())
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"text": column}), sink, row_group_size=7)
    body = bytearray(sink.getvalue().to_pybytes())
    for where, junk in damage:  # overwrite bytes anywhere: header, pages or footer
        at = int(where * (len(body) - len(junk)))
        body[at:at + len(junk)] = junk
    _score(clf, "in.parquet", bytes(body))
