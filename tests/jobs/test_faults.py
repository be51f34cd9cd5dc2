"""Faults during file jobs (issue 14): a full disk, a changed input, SIGKILL at random points,
a failure during the final merge. Each ends in a clear error; the rerun finishes with every
row exactly once and the same results as an uninterrupted run."""
from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from job_fixtures import ENV, DiesAfter, Stop, cli, one_line_error, texts
from onnxpress.errors import UserError
from onnxpress.runtime.jobs.score import score_file

ROWS, PARTS = 1500, 15
SLOW_RUN = ["--chunk-rows", "100", "--max-batch-size", "2", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def reference(artifact_dir, tmp_path_factory):
    """An input of ROWS rows (PARTS chunks) and its uninterrupted CLI result."""
    tmp_path = tmp_path_factory.mktemp("reference")
    src = tmp_path / "in.csv"
    src.write_text("text\n" + "\n".join(texts(ROWS, 3)) + "\n")
    ref = tmp_path / "ref.parquet"
    res = cli("score", artifact_dir, src, "--out", ref, *SLOW_RUN)
    assert res.returncode == 0, res.stderr
    return src, pq.read_table(ref)


def _parts(out):
    return len(list(out.with_name(out.name + ".parts").glob("part-*.parquet")))


def _assert_every_row_once(out, expected):
    table = pq.read_table(out)
    assert table.column("row").to_pylist() == list(range(expected.num_rows)), "each row exactly once, in order"
    assert table.equals(expected)


def _finish_and_compare(artifact_dir, src, out, expected):
    res = cli("score", artifact_dir, src, "--out", out, *SLOW_RUN)
    assert res.returncode == 0, res.stderr
    assert "chunks from an earlier run" in res.stderr
    _assert_every_row_once(out, expected)
    assert not out.with_name(out.name + ".parts").exists()


def _kill_at_random_points(artifact_dir, src, out, kills: int, seed: int) -> int:
    """Start the job and SIGKILL it at random moments, `kills` times or until a run writes its output
    before its kill lands (a loaded machine may delay the kill). Kill points follow the job's own
    progress and stop short of its last part. Returns the kills that landed mid-run."""
    rng, hits = random.Random(seed), 0
    for _ in range(kills):
        proc = subprocess.Popen([sys.executable, "-m", "onnxpress", "score", str(artifact_dir), str(src), "--out",
                                 str(out), *SLOW_RUN], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if rng.random() < 0.25:  # early: start-up, the work folder, the first part (the whole job takes < 1 s idle)
            target, deadline, extra = _parts(out) + 1, time.time() + rng.uniform(0.0, 1.5), 0.0
        else:
            target, deadline = min(_parts(out) + rng.randint(1, 3), PARTS - 1), time.time() + 60
            extra = rng.uniform(0.0, 0.05)  # mid-part: the .tmp of the next part may be half written
        while proc.poll() is None and _parts(out) < target and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(extra)
        proc.send_signal(signal.SIGSTOP)  # frozen where it is: the kill lands here, not a moment later
        hit = proc.poll() is None and not out.exists()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        hits += hit
        if not hit:
            break
    return hits


@pytest.mark.parametrize("kills", [pytest.param(3, id="3-kills"),
                                   pytest.param(10, id="10-kills", marks=pytest.mark.slow)])
def test_sigkill_at_random_points_then_rerun(artifact_dir, reference, tmp_path, kills):
    src, expected = reference
    out = tmp_path / "out.parquet"
    hits = _kill_at_random_points(artifact_dir, src, out, kills, seed=kills)
    assert hits >= 1, "the job finished before any kill landed: make it slower"
    if out.exists():  # a run wrote its output before its kill landed, resuming the parts of the killed runs
        _assert_every_row_once(out, expected)
    else:
        _finish_and_compare(artifact_dir, src, out, expected)


def test_ctrl_c_twice_exits_130_and_the_rerun_resumes(artifact_dir, reference, tmp_path):
    """Two SIGINTs in a row (a hurried user, or `timeout`, which signals the process and then its
    group): one line, exit 130, no traceback or abort; the rerun continues from the kept parts."""
    src, expected = reference
    out = tmp_path / "out.parquet"
    proc = subprocess.Popen([sys.executable, "-m", "onnxpress", "score", str(artifact_dir), str(src), "--out",
                             str(out), *SLOW_RUN], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while proc.poll() is None and _parts(out) < 2 and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "terminate" not in stderr and "Exception ignored" not in stderr, stderr
    assert "run the same command again to continue" in stderr
    _finish_and_compare(artifact_dir, src, out, expected)


def _limit_file_size(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_failure_during_final_merge_then_rerun(artifact_dir, reference, tmp_path):
    """Every part fits under the file-size limit, the merged output does not: the merge fails."""
    src, expected = reference
    out = tmp_path / "out.parquet"
    res = cli("score", artifact_dir, src, "--out", out, *SLOW_RUN, preexec=_limit_file_size(24_000))
    one_line_error(res, "File too large")
    assert "run the same command again" in res.stderr
    assert _parts(out) == PARTS and not out.exists()
    _finish_and_compare(artifact_dir, src, out, expected)


@pytest.fixture
def small_disk():
    """A 32 KiB tmpfs (8 pages: the settings and a few parts); needs root and mount rights, else skipped.

    Mounted outside pytest's tmp_path: a concurrent pytest session may rename old tmp_path folders.
    """
    mount = Path(tempfile.mkdtemp(prefix="onnxpress-small-disk-"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        mount.rmdir()
        pytest.skip("cannot mount a small tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)
        mount.rmdir()


def test_disk_full_mid_run_then_rerun(artifact_dir, reference, small_disk):
    src, expected = reference
    out = small_disk / "out.parquet"
    res = cli("score", artifact_dir, src, "--out", out, *SLOW_RUN)
    one_line_error(res, "No space left on device")
    committed = _parts(out)
    assert 0 < committed < PARTS and not list(small_disk.glob("**/*.tmp")), "half-written part removed"
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)  # space freed
    _finish_and_compare(artifact_dir, src, out, expected)


def test_input_changed_between_runs_is_refused(clf, tmp_path):
    """Appended, truncated or edited in place: refused, since committed parts describe the old input;
    --overwrite starts over."""
    rows = texts(40, 4)
    src, out = tmp_path / "in.csv", tmp_path / "out.parquet"
    body = "text\n" + "\n".join(rows) + "\n"
    src.write_text(body)
    with pytest.raises(Stop):
        score_file(DiesAfter(clf, 2), src, out, chunk_rows=10, progress=False)
    for changed in (body + "one more row\n", body[: len(body) // 2], body.replace(rows[1], rows[1][::-1])):
        src.write_text(changed)
        with pytest.raises(UserError, match="the input changed since .*pass --overwrite to start over"):
            score_file(clf, src, out, chunk_rows=10, progress=False)
    assert _parts(out) == 2, "the refused run kept the committed parts"
    src.write_text(body + "one more row\n")
    s = score_file(clf, src, out, chunk_rows=10, overwrite=True, progress=False)
    assert (s.rows, s.scored, s.resumed_chunks) == (41, 41, 0)


def test_old_work_folder_says_what_to_do(clf, tmp_path):
    """A work folder left by onnxpress before the jobs core: not resumed, and the message says how to go on."""
    src, out = tmp_path / "in.csv", tmp_path / "out.parquet"
    src.write_text("text\nhello\n")
    parts = tmp_path / "out.parquet.parts"
    parts.mkdir()
    (parts / "settings.json").write_text('{"input": "%s", "chunk_rows": 2048}' % src)
    with pytest.raises(UserError, match="started by another onnxpress version; delete it or pass --overwrite"):
        score_file(clf, src, out, progress=False)
    assert score_file(clf, src, out, overwrite=True, progress=False).scored == 1


def test_part_with_wrong_row_count_is_refused(clf, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.parquet"
    src.write_text("text\n" + "\n".join(texts(30, 5)) + "\n")
    with pytest.raises(Stop):
        score_file(DiesAfter(clf, 2), src, out, chunk_rows=10, progress=False)
    pq.write_table(pa.table({"row": [0]}), tmp_path / "out.parquet.parts" / "part-0000000.parquet")
    with pytest.raises(UserError, match="part-0000000.parquet does not hold the 10 rows .* to start over"):
        score_file(clf, src, out, chunk_rows=10, progress=False)


def test_input_appended_to_during_the_run_is_refused(clf, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.parquet"
    src.write_text("text\n" + "\n".join(texts(30, 6)) + "\n")

    class AppendsToInput:
        """The classifier, with a writer appending to the input while the first chunk is scored."""
        artifact, variant, labels = clf.artifact, clf.variant, clf.labels

        def classify(self, batch):
            with open(src, "a") as fh:
                fh.write("a late row\n")
            return clf.classify(batch)

    with pytest.raises(UserError, match="changed while it was being read.*pass --overwrite"):
        score_file(AppendsToInput(), src, out, chunk_rows=10, progress=False)
    assert not out.exists() and _parts(out) >= 1
