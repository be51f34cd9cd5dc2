"""The memory soak script runs end to end (a short run; the 100,000-prediction run is manual)."""
from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_short_soak_writes_figures_and_a_plot(tmp_path):
    from onnxpress.benchmarks.soak import main

    status = main(["--predictions", "3000", "--threads", "1", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "soak.json").read_text())
    assert summary["predictions"] == 3000 and summary["errors"] == 0
    assert summary["growth_last_80pct"] < 0.10 and status == 0
    assert (tmp_path / "soak.png").stat().st_size > 10_000


def test_requests_cover_all_lengths_in_shuffled_order():
    from onnxpress.benchmarks.soak import MAX_TOKENS, make_requests

    requests = list(make_requests(["a"], 5000, 64, seed=0))
    lengths = [len(text.split()) for request in requests for text in request]
    assert len(lengths) == 5000 and min(lengths) == 1 and max(lengths) == MAX_TOKENS
    assert lengths != sorted(lengths) and len({len(r) for r in requests}) > 30  # varied request sizes
