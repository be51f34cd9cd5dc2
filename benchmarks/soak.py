"""Memory soak: does `Classifier.predict` hold its resident set flat over many shapes?

    python -m onnxpress.benchmarks.soak [ARTIFACT] [--predictions 100000] [--out soak/]

Runs `--predictions` texts of random token lengths (1 to 512, shuffled) through one
`Classifier.predict` call per request of a random size (1 to `--max-request` texts), sampling the
process RSS after every request. Without an artifact it builds a tiny attention classifier
(ONNX built with onnx.helper, word-level tokenizer, 512-token inputs) in a temporary folder.

Goal: RSS grows by less than 10% over the last 80% of the run (from the median of the samples
around the 20% mark to the median of the last 5%). Writes `soak.json` (figures, settings,
errors) and `soak.png` (RSS vs predictions) into `--out`. Slow: not part of `make test`.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

GOAL_GROWTH = 0.10
MAX_TOKENS = 512
TINY_VOCAB = 1000


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def build_tiny_artifact(root: Path, hidden: int = 64, labels: int = 4) -> Path:
    """A one-layer attention classifier over a word-level vocabulary, max 512 tokens."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    from onnxpress.runtime.artifact import Manifest, TensorSpec, Variant

    root.mkdir(parents=True, exist_ok=True)
    vocab = {"[PAD]": 0, "[UNK]": 1, **{f"w{i}": i + 2 for i in range(TINY_VOCAB)}}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    tok.save(str(root / "tokenizer.json"))

    rng = np.random.default_rng(0)
    weights = {name: rng.standard_normal(shape).astype(np.float32) * 0.1 for name, shape in {
        "emb": (len(vocab), hidden), "wq": (hidden, hidden), "wk": (hidden, hidden), "wv": (hidden, hidden),
        "wo": (hidden, labels)}.items()}
    consts = {"scale": np.array(hidden ** -0.5, np.float32), "neg": np.array(-1e4, np.float32),
              "one": np.array(1.0, np.float32), "axes1": np.array([1], np.int64)}
    n = helper.make_node
    nodes = [
        n("Gather", ["emb", "input_ids"], ["x"]),
        n("MatMul", ["x", "wq"], ["q"]), n("MatMul", ["x", "wk"], ["k"]), n("MatMul", ["x", "wv"], ["v"]),
        n("Transpose", ["k"], ["kt"], perm=[0, 2, 1]), n("MatMul", ["q", "kt"], ["s0"]),
        n("Mul", ["s0", "scale"], ["s1"]),
        n("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        n("Sub", ["one", "m"], ["inv"]), n("Mul", ["inv", "neg"], ["bias0"]),
        n("Unsqueeze", ["bias0", "axes1"], ["bias"]), n("Add", ["s1", "bias"], ["s"]),
        n("Softmax", ["s"], ["p"], axis=-1), n("MatMul", ["p", "v"], ["h"]),
        n("Unsqueeze", ["m", "axes1"], ["m3"]), n("MatMul", ["m3", "h"], ["pooled3"]),  # masked sum
        n("ReduceSum", ["m", "axes1"], ["count"]),
        n("Squeeze", ["pooled3", "axes1"], ["pooled_sum"]), n("Div", ["pooled_sum", "count"], ["pooled"]),
        n("MatMul", ["pooled", "wo"], ["logits"]),
    ]
    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
              for name in ("input_ids", "attention_mask")]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", labels])]
    inits = [numpy_helper.from_array(v, k) for k, v in {**weights, **consts}.items()]
    graph = helper.make_graph(nodes, "soak", inputs, outputs, inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9),
              str(root / "model.onnx"))
    Manifest(
        task="text-classification", max_length=MAX_TOKENS, tokenizers={"text": "tokenizer.json"},
        inputs=[TensorSpec(i.name, "int64", ["batch", "sequence"]) for i in inputs],
        outputs=[TensorSpec("logits", "float32", ["batch", labels])],
        labels=[f"L{i}" for i in range(labels)],
        variants={"fp32": Variant(files={"model": "model.onnx"}, precision="fp32", devices=["cpu"], opset=17)},
        extra={"pad_token_id": 0},
    ).save(root)
    return root


def word_pool(clf: Any) -> list[str]:
    """Whole-word vocabulary entries: about one token each."""
    vocab = clf.tokenizer._tok.get_vocab()
    words = [w for w in vocab if w.isalpha() and w.islower() and not w.startswith("##")]
    return words[:5000] or list(vocab)


def make_requests(words: list[str], predictions: int, max_request: int, seed: int) -> Iterator[list[str]]:
    """Requests of 1..max_request texts; token lengths 1..512 drawn up front and shuffled, the
    texts themselves made one request at a time (so the soak does not hold them all in memory)."""
    rng = random.Random(seed)
    lengths = [rng.randint(1, MAX_TOKENS) for _ in range(predictions)]
    rng.shuffle(lengths)
    i = 0
    while i < len(lengths):
        size = rng.randint(1, max_request)
        yield [" ".join(rng.choices(words, k=n)) for n in lengths[i : i + size]]
        i += size


def growth(samples: list[tuple[int, float]], total: int) -> dict[str, float]:
    """RSS growth over the last 80% of the run, from medians (robust to single spikes)."""
    done = np.array([s[0] for s in samples], dtype=np.float64)
    rss = np.array([s[1] for s in samples])
    base = float(np.median(rss[(done >= 0.2 * total) & (done <= 0.25 * total)]))
    end = float(np.median(rss[done >= 0.95 * total]))
    return {"rss_at_20pct_mib": base, "rss_at_end_mib": end, "growth_last_80pct": end / base - 1.0}


def plot(samples: list[tuple[int, float]], summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([s[0] for s in samples], [s[1] for s in samples], linewidth=0.8)
    ax.axvline(0.2 * summary["predictions"], color="grey", linestyle=":", label="20% mark")
    ax.set_xlabel("predictions")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(f"soak: {summary['growth_last_80pct']:+.1%} RSS over the last 80% "
                 f"({summary['predictions']:,} predictions, {summary['errors']} errors)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def soak(artifact: Path | None, predictions: int, max_request: int, threads: int | None, out: Path,
         variant: str = "auto", seed: int = 0) -> dict[str, Any]:
    from onnxpress.runtime import Classifier

    with tempfile.TemporaryDirectory() as scratch:
        path = artifact or build_tiny_artifact(Path(scratch) / "tiny")
        clf = Classifier.load(path, variant=variant, device="cpu", threads=threads)
        samples: list[tuple[int, float]] = [(0, rss_mib())]
        done = errors = requests = 0
        start = time.perf_counter()
        for texts in make_requests(word_pool(clf), predictions, max_request, seed):
            requests += 1
            try:
                clf.predict(texts)
            except Exception:  # noqa: BLE001 - a soak counts failures instead of stopping
                errors += 1
            done += len(texts)
            samples.append((done, rss_mib()))
        seconds = time.perf_counter() - start
    summary: dict[str, Any] = {
        "artifact": str(artifact) if artifact else "tiny (built by benchmarks/soak.py)",
        "variant": clf.variant, "predictions": done, "requests": requests, "errors": errors,
        "seconds": round(seconds, 1), "rss_start_mib": samples[0][1], "rss_peak_mib": max(s[1] for s in samples),
        **growth(samples, done), "goal": f"< {GOAL_GROWTH:.0%} growth over the last 80%",
        "settings": {k: v for k, v in clf.describe().items() if k not in ("labels",)},
    }
    summary["goal_met"] = summary["growth_last_80pct"] < GOAL_GROWTH and errors == 0
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps({**summary, "samples": samples[:: max(1, len(samples) // 2000)]},
                                              indent=1, default=str))
    plot(samples, summary, out / "soak.png")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RSS soak of Classifier.predict over random lengths")
    parser.add_argument("artifact", nargs="?", type=Path, help="classifier artifact (default: a tiny one)")
    parser.add_argument("--predictions", type=int, default=100_000)
    parser.add_argument("--max-request", type=int, default=64, help="largest texts per predict call")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--variant", default="auto")
    parser.add_argument("--out", type=Path, default=Path("soak"))
    args = parser.parse_args(argv)
    summary = soak(args.artifact, args.predictions, args.max_request, args.threads, args.out, args.variant)
    print(f"{summary['predictions']:,} predictions in {summary['seconds']} s, {summary['errors']} errors; RSS "
          f"{summary['rss_start_mib']:.0f} -> {summary['rss_at_20pct_mib']:.0f} (20%) -> "
          f"{summary['rss_at_end_mib']:.0f} MiB (end), peak {summary['rss_peak_mib']:.0f}; growth over the last "
          f"80%: {summary['growth_last_80pct']:+.1%} ({'goal met' if summary['goal_met'] else 'GOAL MISSED'}); "
          f"{args.out / 'soak.json'}, {args.out / 'soak.png'}")
    return 0 if summary["goal_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
