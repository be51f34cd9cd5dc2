"""The Spark snippet of docs/spark.md, run as written on a local Spark (loopback only)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

pyspark = pytest.importorskip("pyspark")

from onnxpress.runtime import Classifier  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "spark.md"
TEXTS = ["stocks rally as oil prices fall", "team wins the game", "new software for the phone",
         "space science research", "war and peace talks in the first week of the year"] * 7


@pytest.mark.slow
def test_the_documented_udf_gives_the_runtime_results(classifier_artifact, monkeypatch):
    from pyspark.sql import SparkSession

    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # Python workers run this venv's interpreter

    snippet = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)[0]
    scope: dict = {}
    exec(compile(snippet, str(DOC), "exec"), scope)
    spark = (SparkSession.builder.master("local[2]").appName("onnxpress-test")
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2").getOrCreate())
    try:
        classify = scope["onnxpress_classify_udf"](str(classifier_artifact), variant="fp32", batch_size=8)
        df = spark.createDataFrame([(i, t) for i, t in enumerate(TEXTS)], ["id", "text"]).repartition(2)
        rows = sorted(df.withColumn("pred", classify("text")).select("id", "pred.*").collect())
    finally:
        spark.stop()
    clf = Classifier.load(classifier_artifact, variant="fp32", device="cpu", threads=1)
    expected = clf.predict_proba(TEXTS)
    assert [r["id"] for r in rows] == list(range(len(TEXTS)))
    assert [r["label"] for r in rows] == [clf.labels[int(p.argmax())] for p in expected]
    np.testing.assert_allclose([r["probabilities"] for r in rows], expected, atol=1e-5)
    np.testing.assert_allclose([r["score"] for r in rows], expected.max(axis=1), atol=1e-5)
