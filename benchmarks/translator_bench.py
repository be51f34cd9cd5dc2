"""Translator acceptance benchmark: onnxpress runtime (fp32, int8) vs the PyTorch reference decoder.

Side by side in one process, same thread budget (torch.set_num_threads = ORT intra-op threads),
same sentences, same batching (sorted by source length, `batch_size` sentences per batch),
same beam size and length penalty (1.0). The PyTorch side is the training package's reference
decoder, `onnxpress.training.decoding.translate`. Each round runs every contender over the whole set, in a
rotated order; throughput is sentences per second over the set, tokenization and
detokenization included (median over rounds), and BLEU is sacrebleu's corpus BLEU.

Caveat measured on the shared 2-core machine: with other processes running, 2 threads make
PyTorch far slower (OpenMP threads wait on busy cores) than 1 thread, which inflates the
2-thread speedups; run `--threads 1` beside it (runs/mt: greedy 262 vs 22 sent/s for PyTorch).

    python -m onnxpress.benchmarks.translator_bench --checkpoint runs/mt --artifact artifacts/mt \
        --threads 2 --beams 1,4 --rounds 2 --out /work/notes/logs/mt_bench.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence


def _pytorch_contender(loaded: Any, batch_size: int) -> Callable[[list[str], int], list[str]]:
    """The training side's reference: `onnxpress.training.decoding.translate` (tokenize, decode, detokenize)."""
    from onnxpress.training.decoding import translate
    from onnxpress.training.subword import load

    src_tok, tgt_tok = load(loaded.source_tokenizer), load(loaded.target_tokenizer)

    def run(texts: list[str], beam: int) -> list[str]:
        return [t.text for t in translate(loaded.model, src_tok, tgt_tok, texts, beam_size=beam,
                                          batch_size=batch_size)]

    return run


def _runtime_contender(artifact: str, variant: str, threads: int, batch_size: int):
    from onnxpress.runtime.translator import Translator

    tr = Translator.load(artifact, variant=variant, device="cpu", threads=threads, max_batch_size=batch_size)

    def translate(texts: list[str], beam: int) -> list[str]:
        return [t.text for t in tr.translate(texts, beam_size=beam)]

    return translate, tr


def run_translator_bench(checkpoint: str, artifact: str, *, data_dir: str | None = None,
                         split: str = "test_2016_flickr", limit: int | None = None, threads: int = 2,
                         beams: Sequence[int] = (1, 4), rounds: int = 2, batch_size: int = 64,
                         variants: Sequence[str] = ("fp32", "int8"), log: Callable[[str], None] = print
                         ) -> dict[str, Any]:
    """Throughput and BLEU of each contender at each beam size; ratios vs PyTorch."""
    import torch

    from onnxpress.training.bleu import bleu_score as bleu
    from onnxpress.training.multi30k import read_parallel, resolve_data_dir
    from onnxpress.training.translator_checkpoint import languages, load_checkpoint

    torch.set_num_threads(threads)
    loaded = load_checkpoint(checkpoint)
    src_lang, tgt_lang = languages(loaded.meta)
    src_lang, tgt_lang = src_lang or "de", tgt_lang or "en"
    corpus = read_parallel(resolve_data_dir(data_dir), split, src_lang, tgt_lang)
    sources, refs = corpus.source[:limit] if limit else corpus.source, corpus.target[:limit] if limit else corpus.target
    contenders: dict[str, Callable[[list[str], int], list[str]]] = {"pytorch": _pytorch_contender(loaded, batch_size)}
    sessions = {}
    for v in variants:
        contenders[f"onnxpress-{v}"], sessions[v] = _runtime_contender(artifact, v, threads, batch_size)
    results: dict[str, Any] = {
        "checkpoint": str(checkpoint), "artifact": str(artifact), "split": split, "sentences": len(sources),
        "threads": threads, "batch_size": batch_size, "rounds": rounds, "beams": list(beams),
        "torch_threads": torch.get_num_threads(),
        "runtime_sessions": {v: s.describe() for v, s in sessions.items()}, "runs": {},
    }
    for beam in beams:
        for name, fn in contenders.items():  # warm-up: first batches, shapes, allocator pools
            fn(sources[:batch_size], beam)
        seconds: dict[str, list[float]] = {name: [] for name in contenders}
        outputs: dict[str, list[str]] = {}
        names = list(contenders)
        for r in range(rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                t = time.perf_counter()
                outputs[name] = contenders[name](list(sources), beam)
                seconds[name].append(time.perf_counter() - t)
                log(f"beam {beam} round {r + 1}: {name} {len(sources) / seconds[name][-1]:.1f} sent/s")
        base = statistics.median(seconds["pytorch"])
        run = {}
        for name in names:
            med = statistics.median(seconds[name])
            run[name] = {
                "sentences_per_s": len(sources) / med, "seconds": seconds[name], "speedup_vs_pytorch": base / med,
                # per round (same round, back to back): robust to the machine's load drifting between rounds
                "paired_speedups": [p / s for p, s in zip(seconds["pytorch"], seconds[name])],
                "bleu": bleu(outputs[name], refs),
                "same_output_as_pytorch": sum(a == b for a, b in zip(outputs[name], outputs["pytorch"])) / len(refs),
            }
        results["runs"][f"beam{beam}"] = run
    return results


def table(results: dict[str, Any]) -> str:
    lines = [f"{results['sentences']} sentences of {results['split']}, {results['threads']} threads, "
             f"batch {results['batch_size']}, median of {results['rounds']} rounds",
             "| beam | contender | sentences/s | x PyTorch (medians) | x PyTorch per round | BLEU | same text as PyTorch |",
             "|---|---|---|---|---|---|---|"]
    for beam, run in results["runs"].items():
        for name, r in run.items():
            paired = ", ".join(f"{x:.2f}" for x in r["paired_speedups"])
            lines.append(f"| {beam[4:]} | {name} | {r['sentences_per_s']:.1f} | {r['speedup_vs_pytorch']:.2f} | "
                         f"{paired} | {r['bleu']:.2f} | {r['same_output_as_pytorch']:.1%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--artifact", required=True)
    p.add_argument("--data", default=None)
    p.add_argument("--split", default="test_2016_flickr")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--beams", default="1,4")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--variants", default="fp32,int8")
    p.add_argument("--out", default=None, help="write the results JSON here")
    args = p.parse_args(argv)
    results = run_translator_bench(
        args.checkpoint, args.artifact, data_dir=args.data, split=args.split, limit=args.limit,
        threads=args.threads, beams=[int(b) for b in args.beams.split(",")], rounds=args.rounds,
        batch_size=args.batch_size, variants=args.variants.split(","),
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
