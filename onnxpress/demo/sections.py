"""What the demo report says: one section per stage, read from the files the demo's steps wrote.

Every builder takes the demo layout and the commands that produced its inputs, and returns a
`Section` (or None when that stage's outputs are absent), so a partial demo still gets a report.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from onnxpress.demo.layout import DemoLayout
from onnxpress.demo.measure import headline, load_results
from onnxpress.demo.plots import speed_memory_chart, training_curve
from onnxpress.demo.report import Figure, Section, Table


def _f(value: Any, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{value * 100:.2f}%"


def measured_on(results: dict[str, Any]) -> str:
    """'<UTC date> on <machine>; threads per contender: N', from a bench's results."""
    from onnxpress.benchmarks.report import machine_line

    env = results.get("environment", {})
    threads = results.get("config", {}).get("threads")
    return f"{env.get('date_utc', '?')} on {machine_line(env)}; threads per contender: {threads}"


def summary_section(layout: DemoLayout) -> Section | None:
    """The headline in words: onnxpress int8 against PyTorch eager on the same texts and threads."""
    path = layout.classifier_bench / "results.json"
    if not path.is_file():
        return None
    results = load_results(layout.classifier_bench)
    rows = {r["contender"]: r for r in headline(results)}
    reference = rows.get(results.get("reference", ""))
    ours = rows.get("onnxpress-int8") or next((r for n, r in rows.items() if n.startswith("onnxpress")), None)
    if not reference or not ours:
        return None
    sentences = [
        f"On the same texts and threads, **{ours['contender']}** classified {_f(ours['texts_per_s'], '.0f')} "
        f"texts/s, **{_f(ours['x_reference'], '.2f')}x** {reference['contender']} "
        f"({_f(reference['texts_per_s'], '.0f')} texts/s), with accuracy {_pct(ours['accuracy'])} against "
        f"{_pct(reference['accuracy'])}; a fresh process answered its first texts after "
        f"{_f(ours['cold_start_s'], '.2f')} s instead of {_f(reference['cold_start_s'], '.2f')} s and peaked at "
        f"{_f(ours['peak_rss_mib'], '.0f')} MiB instead of {_f(reference['peak_rss_mib'], '.0f')} MiB"
        + (", without importing torch." if ours["imports_torch"] is False else ".")]
    best = (results.get("throughput") or {}).get("headline") or {}
    if best.get("best_peer") and best["best_peer"] != reference["contender"]:
        ran = {r["contender"] for r in (results.get("throughput") or {}).get("contenders", [])}
        sentences.append(f"Against the fastest peer run here, {best['best_peer']}, {best.get('onnxpress')} ran "
                         f"**{_f(best.get('x_vs_best_peer'), '.2f')}x** as fast"
                         + ("." if any(n.startswith("openvino") for n in ran) else
                            " (OpenVINO int8, the fastest CPU peer of the full comparison, is not in this short run: "
                            "`onnxpress demo --peers all` or `onnxpress bench` adds it)."))
    if (layout.translator_bench / "results.json").is_file():
        runs = load_results(layout.translator_bench)["translation"]["runs"]
        search = "beam4" if "beam4" in runs else next(iter(runs))
        ours = [r for n, r in runs[search].items() if n.startswith("onnxpress")]
        int8 = max(ours, key=lambda r: r["sentences_per_s"], default=None)
        if int8:
            sentences.append(f"The translator's int8 decoded {_f(int8['sentences_per_s'], '.0f')} sentences/s "
                             f"({search.replace('beam', 'beam ')}), **{_f(int8['speedup_vs_pytorch'], '.2f')}x** "
                             "PyTorch driven by the same search.")
    sentences.append(f"Measured {measured_on(results)}; a short run, details and caveats in section 4.")
    return Section("In one paragraph", [" ".join(sentences)])


def training_section(layout: DemoLayout, commands: list[str]) -> Section | None:
    path = layout.classifier_run / "training.json"
    if not path.is_file():
        return None
    run = json.loads(path.read_text())
    metrics, timing = run["metrics"], run.get("timing", {})
    section = Section("1. Training: the AG News classifier", commands=commands)
    section.paragraphs.append(
        f"`{run.get('base_model')}` fine-tuned for {timing.get('steps')} steps in "
        f"{_f(timing.get('train_seconds'), '.1f')} s ({run['environment'].get('device')}, "
        f"threads: {run['environment'].get('threads')}): test accuracy **{metrics['accuracy']:.4f}**, "
        f"macro-F1 {metrics['macro_f1']:.4f} on {metrics['n']} rows."
        + ("" if run.get("complete", True) else " The run stopped early (time cap); rerun to continue it."))
    if run.get("history"):
        curve = training_curve(run["history"], layout.figures / "training_curve.png",
                               f"{run.get('base_model')} on AG News, {run.get('pooling')} pooling")
        section.figures.append(Figure(curve, "Training loss and accuracy, each point the mean over the batches "
                                             "since the previous one"))
    confusion = layout.classifier_run / "confusion_matrix.png"
    if confusion.is_file():
        section.figures.append(Figure(confusion, "Confusion matrix on the test split (rows: true class)"))
    return section


def variant_table(artifact: Path) -> Table:
    """One row per variant of an artifact: size, servable, quality on real data, parity with PyTorch."""
    manifest = json.loads((artifact / "manifest.json").read_text())
    files = manifest.get("files", {})
    rows = []
    for name, variant in manifest["variants"].items():
        size = sum(files.get(f, {}).get("size", 0) for f in variant["files"].values()) / 1e6
        metrics, parity = variant.get("metrics", {}), variant.get("parity", {})
        if "accuracy" in metrics:
            quality = f"accuracy {_pct(metrics['accuracy'])} (drop {_f(metrics.get('accuracy_drop_points'), '.2f')} pts)"
            agreement = f"argmax {_pct(parity.get('argmax_agreement'))}, max abs diff {_f(parity.get('max_abs_diff'), '.2g')}"
        else:
            quality = f"BLEU {_f(metrics.get('bleu'), '.2f')} (beam {metrics.get('eval_beam', '?')}; PyTorch {_f(metrics.get('pytorch_bleu'), '.2f')})"
            agreement = f"greedy tokens {_pct(parity.get('greedy_token_match'))}"
        servable = "yes" if variant.get("servable", True) else f"no: {variant.get('reason')}"
        rows.append([name, variant["precision"], f"{size:.1f}", servable, quality, agreement,
                     ", ".join(variant.get("devices", []))])
    return Table(["variant", "precision", "size MB", "servable", "quality on real data", "parity with PyTorch",
                  "devices"], rows)


def export_section(layout: DemoLayout, commands: list[str]) -> Section | None:
    if not (layout.classifier_artifact / "manifest.json").is_file():
        return None
    return Section("2. Export: ONNX variants, each checked against PyTorch and gated on accuracy",
                   ["A variant that loses more accuracy than the gate allows is kept in the artifact but marked "
                    "not servable; `variant=\"auto\"` picks int8 on CPU."],
                   [variant_table(layout.classifier_artifact)], commands=commands)


def score_accuracy(scores: Path, test_csv: Path) -> tuple[int, int, float]:
    """(rows scored, rows in the CSV, accuracy against its gold labels: label 1..4 = classes.txt order)."""
    import csv

    import pyarrow.parquet as pq

    names = (test_csv.parent / "classes.txt").read_text().split("\n")
    names = [n.strip() for n in names if n.strip()]
    with test_csv.open(newline="", encoding="utf-8") as fh:
        gold = [names[int(row[0]) - 1] for row in csv.reader(fh)]
    table = pq.read_table(scores, columns=["row", "label"]).to_pydict()
    correct = sum(gold[r] == label for r, label in zip(table["row"], table["label"]))
    return len(table["row"]), len(gold), correct / len(gold)


def scoring_section(layout: DemoLayout, test_csv: Path, commands: list[str]) -> Section | None:
    if not layout.scores.is_file():
        return None
    scored, total, accuracy = score_accuracy(layout.scores, test_csv)
    return Section("3. Batch scoring with the torch-free runtime",
                   [f"Scored {scored} of {total} rows of `{test_csv}` into `{layout.scores}`; accuracy against "
                    f"the gold labels **{accuracy:.4f}**. Interrupt it and run the same command again: it resumes."],
                   commands=commands)


def speed_section(layout: DemoLayout, commands: list[str]) -> Section | None:
    if not (layout.classifier_bench / "results.json").is_file():
        return None
    results = load_results(layout.classifier_bench)
    rows = headline(results)
    reference = results.get("reference", "")
    table = Table(["contender", "texts/s", f"x {reference}", "accuracy", "p50 ms, batch 1", "cold start s",
                   "peak RSS MiB", "imports torch"],
                  [[r["contender"], _f(r["texts_per_s"], ".1f"), _f(r["x_reference"], ".2f"), _pct(r["accuracy"]),
                    _f(r["p50_ms_batch1"], ".1f"), _f(r["cold_start_s"], ".2f"), _f(r["peak_rss_mib"], ".0f"),
                    {True: "yes", False: "no"}.get(r["imports_torch"], "–")] for r in rows])
    when = measured_on(results)
    chart = speed_memory_chart(rows, reference, layout.figures / "speed_memory.png", when)
    throughput = results.get("throughput") or {}
    section = Section("4. Speed and memory: onnxpress vs PyTorch eager and peers", [
        f"Measured {when}, with the quick preset of `onnxpress bench`: the same "
        f"{throughput.get('texts', '?')} test texts for every contender (tokenization included, each on its best "
        "batching), end-to-end latency at batch 1 on random test texts, cold start and peak RSS in a fresh "
        "process. "
        "A short run on a machine that may be busy: rerun the full `onnxpress bench` for figures to quote.",
        f"Full report with every cell and its spread: `{layout.classifier_bench / 'results.md'}`."],
        [table], [Figure(chart, "Speed and memory per contender (grey: the PyTorch reference, blue: onnxpress)")],
        commands=commands)
    skipped = results.get("skipped") or {}
    if skipped:
        reasons = skipped.items() if isinstance(skipped, dict) else ((name, "") for name in skipped)
        section.paragraphs.append("Not measured: " + "; ".join(f"{n} ({why})" if why else n for n, why in reasons))
    for warning in results.get("warnings", []):
        section.paragraphs.append(f"Warning from the harness: {warning}")
    return section


def translator_section(layout: DemoLayout, commands: list[str]) -> Section | None:
    if not (layout.translator_artifact / "manifest.json").is_file():
        return None
    section = Section("5. The translator: GRU + Bahdanau attention, De->En", commands=commands)
    training = layout.translator_run / "training.json"
    if training.is_file():
        metrics = json.loads(training.read_text())
        test = metrics.get("test", {})
        section.paragraphs.append(
            f"Trained in {_f(metrics.get('train_minutes'), '.1f')} min: validation perplexity "
            f"{_f(metrics.get('val_ppl'), '.2f')}, {test.get('split', 'test')} BLEU greedy "
            f"{_f(test.get('greedy', {}).get('bleu'), '.2f')}"
            + (f", beam {test['beam']['beam_size']} {test['beam']['bleu']:.2f}." if "beam" in test else "."))
    section.tables.append(variant_table(layout.translator_artifact))
    if layout.sentences_output.is_file():
        pairs = zip(layout.sentences_source.read_text(encoding="utf-8").splitlines(),
                    layout.sentences_output.read_text(encoding="utf-8").splitlines())
        section.tables.append(Table(["German", "onnxpress, beam 4"], [[s, t] for s, t in pairs]))
    if (layout.translator_bench / "results.json").is_file():
        results = load_results(layout.translator_bench)
        translation = results["translation"]
        rows = [[beam, r.get("contender", name), str(r.get("mode", "–")), _f(r["sentences_per_s"], ".1f"),
                 _f(r["speedup_vs_pytorch"], ".2f"), _f(r["bleu"], ".2f"), _pct(r["same_output_as_pytorch"])]
                for beam, run in translation["runs"].items() for name, r in run.items()]
        section.paragraphs.append(
            f"Int8 vs PyTorch driven by the same search (same batching, batch {translation['batch_size']}, same "
            f"early exit) on {translation['sentences']} test sentences, measured {measured_on(results)}.")
        section.tables.append(Table(["search", "contender", "mode", "sentences/s", "x PyTorch", "BLEU",
                                     "same output as PyTorch"], rows))
        plot = layout.translator_bench / "throughput_vs_beam.png"
        if plot.is_file():
            section.figures.append(Figure(plot, "Translator throughput by beam size"))
    if layout.attention_png.is_file():
        section.figures.append(Figure(layout.attention_png, "Attention of the first sentence: where each output "
                                                            "word looked in the source"))
    return section


def steps_section(records: list[dict[str, Any]]) -> Section:
    total = sum(r["seconds"] for r in records if r["status"] == "ran")
    rows = [[r["name"], r["status"], f"{r['seconds']:.0f}", f"`{r['command']}`"] for r in records]
    return Section("6. The steps of this demo", [
        f"Steps run this time took {total / 60:.1f} min; reused steps show the time of their last run. "
        "Delete a step's outputs (or `demo/steps.json`) to run it again."],
        [Table(["step", "this run", "seconds", "command"], rows)])


def next_section(layout: DemoLayout) -> Section:
    return Section("Next", commands=next_commands(layout), commands_label="Commands to try on what the demo built:")


def next_commands(layout: DemoLayout) -> list[str]:
    clf = layout.classifier_artifact
    return [
        f"onnxpress serve {clf}                    # HTTP server with a page, /metrics, Triton-style v2 API",
        f"onnxpress bench {clf} --checkpoint {layout.classifier_run} --out bench/   # the full comparison",
        f"onnxpress score {clf} my.csv --text-column text --out my.parquet",
        f"onnxpress translate {layout.translator_artifact} --beam-size 4 < my.de > my.en",
    ]
