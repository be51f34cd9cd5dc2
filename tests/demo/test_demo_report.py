"""The demo chain on tiny models: the real steps, then the report and how it renders in a browser.

A tiny BERT is fine-tuned for a few steps on an AG-News-shaped CSV, exported, scored and measured
with the demo's quick-bench preset (tiny budgets); a translator is trained with the `tiny` preset on
a Multi30k-shaped folder of 20 sentence pairs, exported, run, plotted and measured the same way.
"""
from __future__ import annotations

import base64
import os
import re
import shutil
from pathlib import Path

import pytest

from onnxpress.demo.layout import DemoLayout
from onnxpress.demo.measure import QuickBench
from onnxpress.demo.pipeline import (bench_steps, build_report, classifier_steps, translator_steps,
                                     write_example_sentences)
from onnxpress.demo.steps import Ledger, run_step
from onnxpress.errors import UserError
from tiny_classifier import build_checkpoint, write_texts_csv
from toy_translator import ENGLISH, GERMAN

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY_BENCH = QuickBench(peers=("torch",), batch_sizes=(1, 4), latency_budget_s=2.0, throughput_texts=48,
                        throughput_budget_s=10.0, sentences=8)
# the toy translator is far too small for the BLEU gate: keep int8 servable so that it is measured
TOY_GATE = ("--max-bleu-drop", "100", "--min-parity", "0", "--no-progress")


def _multi30k_shaped(folder: Path) -> None:
    folder.mkdir(parents=True)
    for split, rows in (("train", slice(None)), ("val", slice(0, 8)), ("test_2016_flickr", slice(8, None))):
        (folder / f"{split}.de").write_text("\n".join(GERMAN[rows]) + "\n", encoding="utf-8")
        (folder / f"{split}.en").write_text("\n".join(ENGLISH[rows]) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A demo folder filled by the real steps on tiny models; returns (layout, records, report paths)."""
    tmp = tmp_path_factory.mktemp("demo")
    base = build_checkpoint(tmp / "base")
    data = tmp / "data"
    write_texts_csv(data / "ag_news" / "train.csv", n=64, seed=1)
    test_csv = write_texts_csv(data / "ag_news" / "test.csv", n=64, seed=2)
    _multi30k_shaped(data / "translation" / "multi30k")
    layout = DemoLayout(tmp / "demo")
    recipe = ("--base-model", str(base), "--steps", "8", "--report-every", "2", "--max-length", "32",
              "--lr", "1e-3", "--threads", "1", "--no-progress")
    write_example_sentences(layout)
    steps = classifier_steps(layout, ["--data", str(data)], test_csv, recipe)
    steps += translator_steps(layout, ["--data", str(data)], preset="tiny", export_args=TOY_GATE)
    steps += bench_steps(layout, TINY_BENCH, test_csv, threads=1, translator_data=str(data))
    ledger, ran = Ledger(layout.root), set()
    records = [run_step(step, ledger, ran) for step in steps]
    return layout, steps, records, build_report(layout, test_csv, records)


def test_every_step_ran_and_a_rerun_reuses_them(demo):
    layout, steps, records, _ = demo
    assert [r.status for r in records] == ["ran"] * len(steps)
    ledger, ran = Ledger(layout.root), set()
    again = [run_step(step, ledger, ran) for step in steps]
    assert [r.status for r in again] == ["reused"] * len(steps)
    assert ran == set()


def test_a_rebuilt_input_reruns_the_steps_that_need_it(demo):
    layout, steps, _, _ = demo
    score = next(s for s in steps if s.name == "score")
    assert run_step(score, Ledger(layout.root), {"export-classifier"}).status == "ran"


def test_a_failing_step_names_itself_and_the_fix(demo):
    layout, steps, _, _ = demo
    score = next(s for s in steps if s.name == "score")
    broken = type(score)(score.name, score.title, ["score", str(layout.root / "no-such-artifact"), "x.csv",
                                                   "--out", str(layout.root / "x.parquet")],
                         (layout.root / "x.parquet",), score.fix)
    with pytest.raises(UserError, match=r"demo step 'score' failed \(exit status 2.*Fix: check that"):
        run_step(broken, Ledger(layout.root), set())


def test_markdown_report_has_every_figure_table_and_command(demo):
    layout, steps, _, paths = demo
    text = paths["markdown"].read_text()
    assert re.search(r"\*\*onnxpress-int8\*\* classified \d+ texts/s, \*\*[\d.]+x\*\* torch-eager-fp32", text)
    for title in ("Training", "Export", "Batch scoring", "Speed and memory", "translator", "steps of this demo"):
        assert title in text
    # the translator: int8 against the PyTorch reference decoder, greedy and beam 4
    for search in ("beam1", "beam4"):
        assert re.search(rf"\| {search} \| pytorch \| [^|]+ \| [\d.]+ \| 1\.00 \|", text)
        assert re.search(rf"\| {search} \| onnxpress-int8 \| [^|]+ \| [\d.]+ \| [\d.]+ \|", text)
    # the comparison table: the PyTorch reference and onnxpress int8, measured side by side
    assert re.search(r"\| torch-eager-fp32 \| [\d.]+ \| 1\.00 \|", text)
    assert re.search(r"\| onnxpress-int8 \| [\d.]+ \| [\d.]+ \|", text)
    for figure in ("training_curve.png", "confusion_matrix.png", "speed_memory.png", "throughput_vs_beam.png",
                   "attention.png"):
        assert f"(report_figures/{figure})" in text
        assert (layout.figures / figure).read_bytes().startswith(PNG_MAGIC)
    for step in steps:  # every command, verbatim, as the user would type it
        assert step.command in text
    assert "--quick" in next(s for s in steps if s.name == "bench-classifier").command
    assert "Ein Mann fährt Fahrrad." in text and "onnxpress serve" in text


def test_html_report_is_self_contained(demo):
    _, _, _, paths = demo
    page = paths["html"].read_text()
    sources = re.findall(r"<img src=\"([^\"]+)\"", page)
    assert len(sources) == 5
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing loaded from anywhere


def _chrome():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not Path(driver_path).exists():
        pytest.skip("no chromedriver: the page test needs chromium + chromedriver")
    options = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,900"):
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service

    try:
        return webdriver.Chrome(service=Service(driver_path), options=options)
    except Exception as exc:  # a browser that cannot start is an environment gap, not a report bug
        pytest.skip(f"headless chromium did not start: {str(exc).splitlines()[0]}")


def render_in_browser(page: Path, screenshot: Path) -> list[int]:
    """Open `page` in headless chromium, save a full-page screenshot; the naturalWidth of every <img>."""
    driver = _chrome()
    try:
        driver.get(page.resolve().as_uri())
        widths = driver.execute_script(
            "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0);")
        height = driver.execute_script("return document.body.scrollHeight;")
        driver.set_window_size(1200, min(int(height), 12000))
        driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    assert screenshot.read_bytes().startswith(PNG_MAGIC)
    keep = os.environ.get("ONNXPRESS_TEST_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, Path(keep) / screenshot.name)
    return widths


def test_html_report_renders_every_image_in_a_browser(demo):
    _, _, _, paths = demo
    widths = render_in_browser(paths["html"], paths["html"].parent / "tiny-demo-REPORT.png")
    assert len(widths) == 5 and all(w > 0 for w in widths), widths


def test_the_report_make_demo_wrote_renders_every_image(tmp_path):
    """After `make demo`, `make test` checks the real demo/REPORT.html the same way."""
    page = REPO / "demo" / "REPORT.html"
    if not page.is_file():
        pytest.skip(f"no {page.relative_to(REPO)}: run `make demo` first")
    widths = render_in_browser(page, tmp_path / "demo-REPORT.png")
    assert widths and all(w > 0 for w in widths), widths
