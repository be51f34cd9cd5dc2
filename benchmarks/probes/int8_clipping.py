"""What VPMADDUBSW clipping does to an int8 artifact on this CPU, and what the exact kernel costs.

    python -m onnxpress.benchmarks.probes.int8_clipping ARTIFACT [--rows N] [--threads T]

On x86 CPUs without VNNI, onnxpress sessions set `session.x64quantprecision` so that ONNX Runtime
runs its exact u8 x u8 kernel (runtime/int8_gemm.py). This probe runs, on the same inputs in one
process, the artifact's fp32 variant, its int8 variant as onnxpress runs it here ("int8"), and the
same int8 with the entry off ("int8-clipping", ONNX Runtime's default kernel). Classifier: AG News
test texts, accuracy, predictions unlike fp32's, max |dp| against fp32, texts/s. Translator:
test_2016 sentences, greedy and beam 4, BLEU, lines equal to fp32's, sentences per CPU-second (one
thread). Then, per int8 matmul, the share of adjacent product pairs (activation x weight, the
pairs VPMADDUBSW adds in int16) that leave the int16 range on the first inputs: what clips on a
CPU without VNNI. On a VNNI machine both int8 rows are the same kernel.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable

import numpy as np

from onnxpress.export.frozen_scales import tensor_values
from onnxpress.export.translator_calibration import Recording
from onnxpress.runtime.int8_gemm import PRECISE_INT8_ENTRY, saturating_cpu

INT16 = (-32768, 32767)
SAMPLED_ROWS = 2000


def pair_overflow(model_path: str, feeds: list[dict[str, np.ndarray]], seed: int = 0) -> dict[str, float]:
    """Per MatMulIntegerToFloat with constant int8 weights: the share of adjacent (k, k+1) product
    pairs whose int16 sum overflows, over at most SAMPLED_ROWS activation rows of `feeds`."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(model_path)
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type == "MatMulIntegerToFloat" and n.input[1] in weights
             and weights[n.input[1]].dtype == np.int8]
    names = list(dict.fromkeys(n.input[0] for n in nodes))
    rows: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for values in tensor_values(model, names, feeds, onnx.TensorProto.UINT8):
        for name in names:
            rows[name].append(values[name].reshape(-1, values[name].shape[-1]))
    rng = np.random.default_rng(seed)
    shares = {}
    for node in nodes:
        a = np.concatenate(rows[node.input[0]])
        if len(a) > SAMPLED_ROWS:
            a = a[rng.choice(len(a), SAMPLED_ROWS, replace=False)]
        a, b = a.astype(np.int32), weights[node.input[1]].astype(np.int32)
        if a.shape[1] % 2:
            a, b = np.pad(a, ((0, 0), (0, 1))), np.pad(b, ((0, 1), (0, 0)))
        over = sum(int(np.count_nonzero((p < INT16[0]) | (p > INT16[1])))
                   for j in range(0, a.shape[1], 2)
                   for p in [a[:, j:j + 1] * b[j] + a[:, j + 1:j + 2] * b[j + 1]])
        shares[node.name] = over / (a.shape[0] * (a.shape[1] // 2) * b.shape[1])
    return shares


# (row name, variant, session config entries): int8 as onnxpress runs it here, then ORT's default kernel
RUNS = (("fp32", "fp32", None), ("int8", "int8", None), ("int8-clipping", "int8", {PRECISE_INT8_ENTRY: "0"}))


def classifier_rows(artifact: str, rows: int, threads: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    from onnxpress.benchmarks.texts import load_texts
    from onnxpress.runtime.classifier import Classifier

    data = load_texts("ag_news").head(rows)
    out, reference, feeds, clip = [], None, [], {}
    for kind, variant, config in RUNS:
        clf = Classifier.load(artifact, variant=variant, device="cpu", threads=threads, session_config=config)
        clf.predict_proba(data.texts[:64])
        start = time.perf_counter()
        probs = clf.predict_proba(data.texts)
        seconds = time.perf_counter() - start
        labels = [clf.labels[i] for i in probs.argmax(1)]
        reference = probs if reference is None else reference
        out.append({"variant": kind, "accuracy": float(np.mean([a == b for a, b in zip(labels, data.labels)])),
                    "unlike_fp32": int((probs.argmax(1) != reference.argmax(1)).sum()),
                    "max_dp_vs_fp32": float(np.abs(probs - reference).max()), "texts_per_s": len(data) / seconds})
        if kind == "int8":
            clf.engine = Recording(clf.engine, feeds)  # type: ignore[assignment]
            clf.predict_proba(data.texts[:256])
            clip = pair_overflow(str(clf.artifact.root / clf.artifact.manifest.variants["int8"].files["model"]), feeds)
    return out, clip


def translator_rows(artifact: str, rows: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    import sacrebleu

    from onnxpress.runtime.translator import Translator
    from onnxpress.training.multi30k import resolve_data_dir

    data = resolve_data_dir(None)
    src = data.joinpath("test_2016_flickr.de").read_text(encoding="utf-8").splitlines()[:rows]
    ref = data.joinpath("test_2016_flickr.en").read_text(encoding="utf-8").splitlines()[:rows]
    out, reference, clip = [], {}, {}
    for kind, variant, config in RUNS:
        translator = Translator.load(artifact, variant=variant, device="cpu", threads=1, session_config=config)
        row: dict[str, Any] = {"variant": kind}
        for beam in (1, 4):
            translator.translate(src[:64], beam_size=beam)
            start = time.process_time()
            lines = [t.text for t in translator.translate(src, beam_size=beam)]
            row[f"sentences_per_cpu_s_beam{beam}"] = len(src) / (time.process_time() - start)
            row[f"bleu_beam{beam}"] = sacrebleu.corpus_bleu(lines, [ref]).score
            reference.setdefault(beam, lines)
            row[f"equal_to_fp32_beam{beam}"] = float(np.mean([a == b for a, b in zip(lines, reference[beam])]))
        out.append(row)
        if kind == "int8":
            recorded: dict[str, list[dict[str, np.ndarray]]] = {"encoder": [], "decoder_step": []}
            translator.encoder = Recording(translator.encoder, recorded["encoder"])  # type: ignore[assignment]
            translator.decoder = Recording(translator.decoder, recorded["decoder_step"])  # type: ignore[assignment]
            translator.translate(src[:100], beam_size=1)
            files = translator.artifact.manifest.variants["int8"].files
            for role, feeds in recorded.items():
                clip.update(pair_overflow(str(translator.artifact.root / files[role]), feeds))
    return out, clip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifact")
    parser.add_argument("--rows", type=int, default=None,
                        help="texts or sentences (default: all 7,600 AG News / 1,000 test_2016)")
    parser.add_argument("--threads", type=int, default=2, help="classifier threads (the translator uses 1)")
    args = parser.parse_args(argv)
    task = json.loads((__import__("pathlib").Path(args.artifact) / "manifest.json").read_text())["task"]
    run: Callable[[], tuple[list[dict[str, Any]], dict[str, float]]]
    if task == "translation":
        run = lambda: translator_rows(args.artifact, args.rows or 1000)  # noqa: E731
    else:
        run = lambda: classifier_rows(args.artifact, args.rows or 7600, args.threads)  # noqa: E731
    rows, clip = run()
    print(f"this CPU clips u8 x s8 pair sums: {'yes' if saturating_cpu() else 'no (VNNI/AMX)'}")
    for row in rows:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
    if not clip:
        print("no MatMulIntegerToFloat with constant int8 weights in the int8 graph(s): nothing counted "
              "(a dynamically quantized build runs MatMulInteger/QAttention, not covered here)")
        return
    print("share of int16 pair overflows per int8 matmul:")
    for name, share in clip.items():
        print(f"  {share:.2e}  {name}")


if __name__ == "__main__":
    main()
