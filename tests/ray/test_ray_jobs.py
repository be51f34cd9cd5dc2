"""Ray Data jobs against the local engine: same rows, same labels, same probabilities."""
from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest
from conftest import TRANSLATOR, ray_processes
from tiny_classifier import WORDS

from onnxpress.errors import UserError
from onnxpress.runtime.classifier import Classifier
from onnxpress.runtime.jobs.ray import (RayScoreJob, Workers, classify_dataset, require_ray, score_file_on_ray,
                                        ship_artifact, translate_file_on_ray)
from onnxpress.runtime.jobs.resumable import run_job
from onnxpress.runtime.jobs.score import ScoreConfig, run_score
from onnxpress.runtime.jobs.translate import TranslateConfig, run_translate
from onnxpress.runtime.translator import Translator

TWO_ACTORS = Workers(workers=2, threads=1)


def write_input(path: Path, n: int, seed: int = 0) -> Path:
    """A csv with ids, varied lengths, and rows that must become errors (empty, too few fields)."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "text"])
        for i in range(n):
            if i % 17 == 5:
                out.writerow([f"r{i}", "  "])
            elif i % 23 == 7:
                out.writerow([f"r{i}"])
            else:
                out.writerow([f"r{i}", " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40)))])
    return path


def config(tmp_path: Path, src: Path, name: str, **kw) -> ScoreConfig:
    return ScoreConfig(input=src, output=tmp_path / f"{name}.parquet", id_column="id", probabilities=True,
                       chunk_rows=kw.pop("chunk_rows", 16), progress=False, **kw)


def local_score(artifact: Path, cfg: ScoreConfig):
    clf = Classifier.load(artifact, variant="int8", device="cpu", threads=1)
    return run_score(clf, cfg)


def assert_same_tables(a: Path, b: Path) -> None:
    ta, tb = pq.read_table(a), pq.read_table(b)
    assert ta.column_names == tb.column_names
    for name in ta.column_names:
        x, y = ta.column(name).to_pylist(), tb.column(name).to_pylist()
        if name == "score" or name.startswith("prob_"):
            np.testing.assert_allclose(np.array(x, float), np.array(y, float), atol=1e-6, rtol=0)
        else:
            assert x == y, name


def test_scored_file_equals_local_engine(ray_cluster, classifier_artifact, tmp_path):
    src = write_input(tmp_path / "in.csv", 300)
    local = local_score(classifier_artifact, config(tmp_path, src, "local"))
    on_ray = score_file_on_ray(classifier_artifact, config(tmp_path, src, "ray"), TWO_ACTORS)
    assert (on_ray.rows, on_ray.scored, on_ray.errors) == (local.rows, local.scored, local.errors) == (300, 270, 30)
    assert_same_tables(tmp_path / "local.parquet", tmp_path / "ray.parquet")
    assert_same_tables(tmp_path / "local.errors.parquet", tmp_path / "ray.errors.parquet")
    assert not (tmp_path / "ray.parquet.parts").exists()


def test_rerun_after_the_driver_died_writes_every_row_once(ray_cluster, classifier_artifact, tmp_path):
    src = write_input(tmp_path / "in.csv", 200)
    local_score(classifier_artifact, config(tmp_path, src, "local"))

    class DriverDies(RayScoreJob):
        def write_part(self, chunk, fh):
            if chunk.index == 3:
                raise KeyboardInterrupt  # as Ctrl-C or a dying driver: parts 0-2 are committed
            super().write_part(chunk, fh)

    cfg = config(tmp_path, src, "ray")
    with pytest.raises(KeyboardInterrupt):
        run_job(DriverDies(classifier_artifact, cfg, TWO_ACTORS), progress=False)
    assert len(list((tmp_path / "ray.parquet.parts").glob("part-*.parquet"))) == 3
    summary = score_file_on_ray(classifier_artifact, config(tmp_path, src, "ray"), TWO_ACTORS)
    assert summary.resumed_chunks == 3 and summary.rows == 200
    assert_same_tables(tmp_path / "local.parquet", tmp_path / "ray.parquet")


def actor_pids() -> list[int]:
    return [p.pid for p in ray_processes() if "ClassifyBatches" in " ".join(p.cmdline())]


def test_a_killed_worker_still_yields_every_row_once(ray_cluster, classifier_artifact, tmp_path):
    src = write_input(tmp_path / "in.csv", 3000, seed=1)
    local_score(classifier_artifact, config(tmp_path, src, "local", chunk_rows=20))
    killed: list[int] = []
    parts = tmp_path / "ray.parquet.parts"

    def kill_one_actor_mid_job() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            pids = actor_pids()
            if pids and parts.is_dir() and any(parts.glob("part-*.parquet")):
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_actor_mid_job)
    killer.start()
    try:
        summary = score_file_on_ray(classifier_artifact, config(tmp_path, src, "ray", chunk_rows=20), TWO_ACTORS)
    finally:
        killer.join()
    assert killed, "no actor was killed: the job ended first"
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE
    assert summary.rows == 3000 and summary.resumed_chunks == 0
    rows = pq.read_table(tmp_path / "ray.parquet").column("row").to_pylist()
    rows += pq.read_table(tmp_path / "ray.errors.parquet").column("row").to_pylist()
    assert sorted(rows) == list(range(3000))
    assert_same_tables(tmp_path / "local.parquet", tmp_path / "ray.parquet")


def test_dataset_api_with_the_artifact_sent_through_the_object_store(ray_cluster, classifier_artifact):
    texts = ["stocks rally as oil prices fall", "", None, "team wins game", "space research report"]
    ds = ray_cluster.data.from_items([{"text": t, "k": i} for i, t in enumerate(texts)])
    # fp32: dynamic int8 scales activations per model run, so its results depend on which rows share a
    # run, and Ray decides the blocks here (the file jobs plan each chunk alone, as the local job does)
    out = classify_dataset(ds, classifier_artifact, workers=Workers(workers=1, variant="fp32"),
                           transport="object-store").take_all()
    out = sorted(out, key=lambda r: r["k"])
    clf = Classifier.load(classifier_artifact, variant="fp32", device="cpu", threads=1)
    good = [0, 3, 4]
    expected = clf.predict_proba([texts[k] for k in good])
    got = [[out[k][f"prob_{name}"] for name in clf.labels] for k in good]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert [out[k]["label"] for k in good] == [clf.labels[int(p.argmax())] for p in expected]
    assert [r["error"] for r in out] == [None, "empty text", "missing text (null)", None, None]
    assert out[1]["label"] is None and out[2]["score"] is None
    unpacked = Path(ship_artifact(classifier_artifact, "path").unpacked_path())
    assert (unpacked / "manifest.json").read_bytes() == (classifier_artifact / "manifest.json").read_bytes()
    shutil.rmtree(unpacked)


def test_translated_file_equals_local_translation(ray_cluster, tmp_path):
    lines = ["Ein Mann fährt Fahrrad.", "", "Zwei Hunde spielen im Schnee.", "Eine Frau liest ein Buch."] * 6
    src = tmp_path / "in.de"
    src.write_bytes(("\n".join(lines[:10]) + "\n").encode() + b"\xff\xfe kaputt\n" + ("\n".join(lines[10:]) + "\n").encode())
    tr = Translator.load(TRANSLATOR, variant="int8", device="cpu", threads=1)
    local = run_translate(tr, TranslateConfig(input=src, output=tmp_path / "local.en", chunk_lines=4, progress=False))
    on_ray = translate_file_on_ray(TRANSLATOR, TranslateConfig(input=src, output=tmp_path / "ray.en", chunk_lines=4,
                                                               progress=False), Workers(workers=2, variant="int8"))
    assert (tmp_path / "ray.en").read_bytes() == (tmp_path / "local.en").read_bytes()
    assert (on_ray.lines, on_ray.translated, on_ray.blank, on_ray.errors) == \
        (local.lines, local.translated, local.blank, local.errors) == (25, 18, 6, [11])


def test_without_ray_the_message_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UserError, match=r'pip install "onnxpress\[ray\]"'):
        require_ray()
