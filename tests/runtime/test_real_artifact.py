"""Slow checks on the real exported classifier (artifacts/clf or $ONNXPRESS_CLF_ARTIFACT) and AG News."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ARTIFACT = Path(os.environ.get("ONNXPRESS_CLF_ARTIFACT", Path(__file__).resolve().parents[2] / "artifacts" / "clf"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (ARTIFACT / "manifest.json").is_file(), reason=f"no classifier artifact at {ARTIFACT}"),
]


def test_int8_accuracy_matches_export_report():
    from onnxpress.runtime import Classifier
    from onnxpress.training.ag_news import MARKER, SUBDIR, read_csv, read_label_names
    from onnxpress.training.data_root import find_dataset

    directory = find_dataset(None, SUBDIR, MARKER)
    if directory is None:
        pytest.skip("AG News not found")
    split = read_csv(directory / MARKER, read_label_names(directory))
    clf = Classifier.load(ARTIFACT, device="cpu", threads=2)
    preds = clf.predict(split.texts)
    accuracy = sum(p.label == split.label_names[y] for p, y in zip(preds, split.labels)) / len(preds)
    reported = clf.artifact.manifest.variants[clf.variant].metrics.get("accuracy")
    assert reported is not None
    # the export report may use a 500-row sample (standard error ~1.4 points): allow 3 points
    assert abs(accuracy - reported) <= 0.03, (accuracy, reported)


def test_cold_start_and_rss():
    out = subprocess.run([sys.executable, "-m", "onnxpress.benchmarks.probes.cold_start", str(ARTIFACT), "--runs", "3",
                          "--threads", "2"], capture_output=True, text=True, check=True)
    import json

    median = json.loads(out.stdout.strip().splitlines()[-1].split("median:", 1)[1])
    assert median["peak_rss_mib"] <= 150
    assert median["cold_start_s"] <= 2.0  # 0.5 s is the target on a quiet machine; this guards regressions
