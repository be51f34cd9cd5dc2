"""The report writer alone: figures copied for the Markdown and embedded in the HTML, text escaped."""
from __future__ import annotations

import base64
import re

from onnxpress.demo.plots import speed_memory_chart, training_curve
from onnxpress.demo.report import Figure, Report, Section, Table, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HISTORY = [{"step": s, "loss": 1.4 / s, "acc": 0.25 + 0.05 * s} for s in range(1, 9)]
ROWS = [{"contender": "torch-eager-fp32", "texts_per_s": 100.0, "p50_ms_batch1": 70.0, "cold_start_s": 3.6,
         "peak_rss_mib": 570.0},
        {"contender": "onnxpress-int8", "texts_per_s": 600.0, "p50_ms_batch1": 4.0, "cold_start_s": 0.2,
         "peak_rss_mib": None}]


def test_same_named_figures_from_two_folders_both_survive(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = training_curve(HISTORY, tmp_path / "a" / "plot.png", "first")
    second = speed_memory_chart(ROWS, "torch-eager-fp32", tmp_path / "b" / "plot.png", "second")
    report = Report("t", [Section("figures", figures=[Figure(first, "one"), Figure(second, "two")])])
    paths = write_report(report, tmp_path / "out")
    text = paths["markdown"].read_text()
    links = re.findall(r"\]\((report_figures/[^)]+)\)", text)
    assert len(set(links)) == 2
    assert [(tmp_path / "out" / link).read_bytes() for link in links] == [first.read_bytes(), second.read_bytes()]
    embedded = re.findall(r"src=\"data:image/png;base64,([^\"]+)\"", paths["html"].read_text())
    assert [base64.b64decode(e) for e in embedded] == [first.read_bytes(), second.read_bytes()]


def test_text_is_escaped_and_code_spans_kept(tmp_path):
    section = Section("<b>title</b>", ["run `onnxpress bench <dir>` now, **fast** & <script>x</script>"],
                      [Table(["a|b", "n"], [["<i>", "12.5"]])], commands=["echo '<&>'"])
    page = write_report(Report("r", [section]), tmp_path)["html"].read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<code>onnxpress bench &lt;dir&gt;</code>" in page and "<strong>fast</strong>" in page
    assert "<td class=\"num\">12.5</td>" in page and "<td>&lt;i&gt;</td>" in page
    assert "echo '&lt;&amp;&gt;'" in page
    markdown = (tmp_path / "REPORT.md").read_text()
    assert "| a\\|b | n |" in markdown and "| <i> | 12.5 |" in markdown
    assert "## <b>title</b>" in markdown and "```\necho '<&>'\n```" in markdown
