"""Translator benchmark: onnxpress (fp32, int8) against PyTorch driven by the same search.

Both sides are `onnxpress.runtime.translator.Translator`s: the PyTorch contender swaps its ONNX
Runtime sessions for the checkpoint's PyTorch modules (`torch_search.py`), so tokenization,
length-bucketed batches (`batch_size` sentences, 4,096 padded tokens at most), the numpy
greedy/beam search with its early exit, shared encoder states across beams, attention off,
length penalty and detokenization are identical; only the engine differs.

Each contender runs in its own fresh process (no co-resident thread pools), at each thread
count in two ways when it has more than one thread: intra-op (one batch at a time, every
thread inside each op) and parallel batches (as many batches at once as threads, one thread
each; `onnxpress.runtime.parallel_runs`). A round starts every contender once, in a rotated
order, and times the whole set at each beam size after a warm-up batch; figures are medians
over rounds, sentences per second with tokenization and detokenization included, BLEU is
sacrebleu's corpus BLEU. Ratios compare against the best PyTorch mode at the same thread count.

    python -m onnxpress.benchmarks.translator_bench --checkpoint runs/mt-demo --artifact artifacts/mt-demo \
        --threads 1,2 --beams 1,4 --rounds 2 --out mt_bench.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from onnxpress.errors import UserError

PYTORCH = "pytorch"


@dataclass(frozen=True)
class Contender:
    """One engine at one thread budget: `workers` batches at once, sharing `threads`."""

    engine: str  # "pytorch" or an onnxpress variant name
    threads: int
    workers: int = 1

    @property
    def name(self) -> str:
        return PYTORCH if self.engine == PYTORCH else f"onnxpress-{self.engine}"

    @property
    def mode(self) -> str:
        if self.workers == 1:
            return "intra-op" if self.threads > 1 else "1 thread"
        return f"{self.workers} batches x {self.threads // self.workers} thread"

    @property
    def label(self) -> str:
        return f"{self.name}, {self.threads}t {self.mode}"


def contenders_for(variants: Sequence[str], thread_counts: Sequence[int]) -> list[Contender]:
    """PyTorch and each variant at each thread count; above 1 thread, parallel batches (the
    runtime's choice for small models, listed first) and intra-op."""
    out = []
    for threads in thread_counts:
        for engine in (PYTORCH, *variants):
            if threads > 1:
                out.append(Contender(engine, threads, threads))
            out.append(Contender(engine, threads))
    return out


def load_contender(c: Contender, checkpoint: str, artifact: str, batch_size: int, device: str = "cpu"):
    """The contender's `Translator`, its threads set (call once per process)."""
    if c.engine == PYTORCH:
        import torch

        from onnxpress.benchmarks.torch_search import torch_translator

        torch.set_num_threads(c.threads // c.workers)
        torch.set_num_interop_threads(1)
        return torch_translator(checkpoint, artifact, workers=c.workers, max_batch_size=batch_size)
    from onnxpress.runtime.translator import Translator

    return Translator.load(artifact, variant=c.engine, device=device, threads=c.threads, workers=c.workers,
                           max_batch_size=batch_size)


def measure(c: Contender, checkpoint: str, artifact: str, sources: list[str], beams: Sequence[int],
            batch_size: int, device: str = "cpu") -> dict[str, Any]:
    """In this process: load, warm up, then time the whole set once per beam size."""
    tr = load_contender(c, checkpoint, artifact, batch_size, device)
    info = tr.describe()
    out: dict[str, Any] = {"seconds": {}, "outputs": {}, "session": info,
                           "compute_threads": int(info["intra_op_num_threads"]) * tr.runs.workers}
    for beam in beams:
        tr.translate(sources[:batch_size], beam_size=beam)  # warm-up: first shapes, allocator pools
        t = time.perf_counter()
        texts = [x.text for x in tr.translate(sources, beam_size=beam)]
        out["seconds"][str(beam)] = time.perf_counter() - t
        out["outputs"][str(beam)] = texts
    return out


def _measure_in_child(c: Contender, job: dict[str, Any], work: Path) -> dict[str, Any]:
    spec, result = work / "job.json", work / "result.json"
    spec.write_text(json.dumps({**job, "contender": asdict(c)}))
    proc = subprocess.run([sys.executable, "-m", "onnxpress.benchmarks.translator_bench", "--child", str(spec),
                           str(result)], capture_output=True, text=True)
    if proc.returncode != 0:  # the child's last line names the problem (a UserError is one line)
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        last = last.removeprefix(f"{UserError.__module__}.{UserError.__name__}: ")
        raise UserError(f"translator bench: {c.label} failed: {last}")
    return json.loads(result.read_text())


def run_translator_bench(checkpoint: str, artifact: str, *, data_dir: str | None = None,
                         split: str = "test_2016_flickr", limit: int | None = None,
                         threads: int | Sequence[int] = (1, 2), beams: Sequence[int] = (1, 4), rounds: int = 2,
                         batch_size: int = 64, variants: Sequence[str] = ("fp32", "int8"),
                         log: Callable[[str], None] = print, device: str = "cpu") -> dict[str, Any]:
    """Throughput and BLEU of every contender at each beam size; ratios vs the best PyTorch mode.
    `device`: where the onnxpress variants run (the PyTorch modules run on CPU)."""
    from onnxpress.training.bleu import bleu_score as bleu
    from onnxpress.training.multi30k import read_parallel, resolve_data_dir
    from onnxpress.training.translator_checkpoint import languages, load_checkpoint

    src_lang, tgt_lang = languages(load_checkpoint(checkpoint).meta)
    corpus = read_parallel(resolve_data_dir(data_dir), split, src_lang or "de", tgt_lang or "en")
    sources, refs = list(corpus.source[:limit or None]), list(corpus.target[:limit or None])
    threads = [threads] if isinstance(threads, int) else list(threads)
    contenders = contenders_for(variants, threads)
    job = {"checkpoint": str(checkpoint), "artifact": str(artifact), "sources": sources, "beams": list(beams),
           "batch_size": batch_size, "device": device}
    seconds: dict[Contender, dict[str, list[float]]] = {c: {str(b): [] for b in beams} for c in contenders}
    last: dict[Contender, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="mt_bench_") as tmp:
        for r in range(rounds):
            shift = r % len(contenders)
            for c in contenders[shift:] + contenders[:shift]:
                last[c] = _measure_in_child(c, job, Path(tmp))
                for b, s in last[c]["seconds"].items():
                    seconds[c][b].append(s)
                log(f"round {r + 1}: {c.label}: " + ", ".join(
                    f"beam {b} {len(sources) / s:.1f} sent/s" for b, s in last[c]["seconds"].items()))
    results: dict[str, Any] = {
        "checkpoint": str(checkpoint), "artifact": str(artifact), "split": split, "sentences": len(sources),
        "threads": list(threads), "batch_size": batch_size, "rounds": rounds, "beams": list(beams),
        "contenders": {c.label: {**asdict(c), "mode": c.mode, "compute_threads": last[c]["compute_threads"],
                                 "session": last[c]["session"]} for c in contenders},
        "runs": {},
    }
    for b in map(str, beams):
        medians = {c: statistics.median(seconds[c][b]) for c in contenders}
        run = {}
        for c in contenders:
            torch_side = [p for p in contenders if p.engine == PYTORCH and p.threads == c.threads]
            base = min(torch_side, key=medians.__getitem__)  # the fastest PyTorch mode at these threads
            texts, base_texts = last[c]["outputs"][b], last[base]["outputs"][b]
            run[c.label] = {
                "contender": c.name, "threads": c.threads, "mode": c.mode, "baseline": base.label,
                "sentences_per_s": len(sources) / medians[c], "seconds": seconds[c][b],
                "speedup_vs_pytorch": medians[base] / medians[c],
                # same round, close in time: robust to the machine's load drifting between rounds
                "paired_speedups": [p / s for p, s in zip(seconds[base][b], seconds[c][b])],
                "bleu": bleu(texts, refs),
                "same_output_as_pytorch": sum(x == y for x, y in zip(texts, base_texts)) / max(len(texts), 1),
            }
        results["runs"][f"beam{b}"] = run
    return results


def table(results: dict[str, Any]) -> str:
    lines = [f"{results['sentences']} sentences of {results['split']}, batch {results['batch_size']}, "
             f"each contender in its own process, median of {results['rounds']} interleaved rounds; "
             "x PyTorch: against the fastest PyTorch mode at the same thread count",
             "| beam | threads | contender | mode | sentences/s | x PyTorch | x PyTorch per round | BLEU "
             "| same text as PyTorch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for beam, run in results["runs"].items():
        for r in run.values():
            paired = ", ".join(f"{x:.2f}" for x in r["paired_speedups"])
            lines.append(f"| {beam[4:]} | {r['threads']} | {r['contender']} | {r['mode']} | "
                         f"{r['sentences_per_s']:.1f} | {r['speedup_vs_pytorch']:.2f} | {paired} | "
                         f"{r['bleu']:.2f} | {r['same_output_as_pytorch']:.1%} |")
    return "\n".join(lines)


def _child(spec_path: str, result_path: str) -> int:
    job = json.loads(Path(spec_path).read_text())
    c = Contender(**job.pop("contender"))
    result = measure(c, job["checkpoint"], job["artifact"], job["sources"], job["beams"], job["batch_size"],
                     job.get("device", "cpu"))
    Path(result_path).write_text(json.dumps(result))
    return 0


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child(*argv[1:3])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--artifact", required=True)
    p.add_argument("--data", default=None)
    p.add_argument("--split", default="test_2016_flickr")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--threads", type=_ints, default=[1, 2], help="thread counts, e.g. 1,2")
    p.add_argument("--beams", type=_ints, default=[1, 4])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--variants", default="fp32,int8")
    p.add_argument("--out", default=None, help="write the results JSON here")
    args = p.parse_args(argv)
    try:
        results = run_translator_bench(
            args.checkpoint, args.artifact, data_dir=args.data, split=args.split, limit=args.limit,
            threads=args.threads, beams=args.beams, rounds=args.rounds, batch_size=args.batch_size,
            variants=args.variants.split(","), log=lambda m: print(m, file=sys.stderr, flush=True),
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
