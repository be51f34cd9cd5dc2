"""The report's one-paragraph headline says which peers the short run measured."""
from __future__ import annotations

import json

from onnxpress.demo.layout import DemoLayout
from onnxpress.demo.sections import summary_section


def _results(peers: dict[str, float]) -> dict:
    """A bench results.json with PyTorch as the reference, `peers` (name: texts/s) and onnxpress int8."""
    speeds = {"torch-eager-fp32": 100.0, **peers, "onnxpress-int8": 400.0}
    best = max(peers, key=peers.get)
    rows = [{"contender": name, "texts_per_s": v, "x_vs_reference": v / 100.0, "accuracy": 0.9,
             "cold_start_s": 0.2 if name.startswith("onnxpress") else 3.0, "peak_rss_mib": 130.0}
            for name, v in speeds.items()]
    return {"reference": "torch-eager-fp32", "contenders": [{"name": n} for n in speeds],
            "environment": {"date_utc": "2026-12-03T00:00:00Z", "cpu": {"model": "test CPU", "usable_cpus": 2}},
            "config": {"threads": 2},
            "throughput": {"contenders": rows, "headline": {"onnxpress": "onnxpress-int8", "best_peer": best,
                                                            "x_vs_best_peer": 400.0 / peers[best]}}}


def _paragraph(tmp_path, results: dict) -> str:
    layout = DemoLayout(tmp_path / "demo")
    layout.classifier_bench.mkdir(parents=True)
    (layout.classifier_bench / "results.json").write_text(json.dumps(results))
    return summary_section(layout).paragraphs[0]


def test_a_short_run_without_openvino_says_so(tmp_path):
    text = _paragraph(tmp_path, _results({"optimum-int8": 200.0}))
    assert "Against the fastest peer run here, optimum-int8, onnxpress-int8 ran **2.00x** as fast" in text
    assert "OpenVINO int8, the fastest CPU peer of the full comparison, is not in this short run" in text


def test_a_run_with_openvino_names_no_missing_peer(tmp_path):
    text = _paragraph(tmp_path, _results({"optimum-int8": 200.0, "openvino-int8": 500.0}))
    assert "Against the fastest peer run here, openvino-int8, onnxpress-int8 ran **0.80x** as fast." in text
    assert "not in this short run" not in text
