"""`onnxpress bench ARTIFACT`: honest side-by-side latency/throughput vs PyTorch and Optimum."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from onnxpress.errors import UserError

PEERS = "torch,torch-sorted,optimum-int8,ctranslate2,openvino"
QUICK = {"batch_sizes": [1, 8, 32], "latency_budget_s": 30.0, "throughput_texts": 400, "throughput_rounds": 1,
         "throughput_budget_s": 60.0, "invariance_texts": 64, "cold_start": False, "roofline_budget_s": 0.3,
         "rounds": 1}  # cold start and peak RSS then come from the throughput runs' own processes


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="benchmark an artifact against its CPU peers (throughput, batch invariance, cold start)",
        description="Runs every contender in its own fresh process, rounds interleaved, with equal thread "
                    "budgets, every one on its best batching, on real texts; reports speed, accuracy and "
                    "batch invariance side by side; writes results.json, results.md and PNG plots.")
    p.add_argument("artifact", help="artifact directory (from `onnxpress export`)")
    p.add_argument("--against", type=_names, default=_names(PEERS),
                   help="peers: torch (the seed's batching), torch-sorted, torch-compile, torch-fp16 (CUDA "
                        "autocast; --device cuda/tensorrt only), optimum-fp32, "
                        "optimum-int8 (optimum = both), ctranslate2, openvino; '' for none; a peer whose "
                        f"package is missing is reported as skipped (default: {PEERS})")
    p.add_argument("--variants", type=_names, default=None,
                   help="onnxpress variants to run (default: every servable one for --device)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="training checkpoint for the PyTorch/Optimum contenders (default: from the manifest)")
    p.add_argument("--batch-sizes", type=_int_list, default=None, help="latency batch sizes (default 1,8,32,128)")
    p.add_argument("--data", default="ag_news", help="ag_news | multi30k | FILE (csv or one text per line)")
    p.add_argument("--synthetic-length", type=int, default=None,
                   help="latency inputs of exactly N tokens instead of real texts")
    p.add_argument("--threads", type=int, default=None, help="threads for every contender (default: usable CPUs)")
    p.add_argument("--device", choices=["cpu", "cuda", "tensorrt"], default="cpu",
                   help="where onnxpress runs (cuda/tensorrt: PyTorch peers run on CUDA; refused when the "
                        "device is not usable here; default cpu)")
    p.add_argument("--modes", type=_names, default=None,
                   help="latency section, contenders loaded side by side in one process: e2e,model "
                        "(default: none; the headline throughput runs each contender in its own process)")
    p.add_argument("--throughput-texts", type=int, default=None,
                   help="texts for the throughput section (default: all; 0 skips it)")
    p.add_argument("--latency-budget", type=float, default=None,
                   help="seconds for the whole latency section (default 180)")
    p.add_argument("--throughput-budget", type=float, default=None,
                   help="seconds for the throughput section; it stops after the round that crosses "
                        "it, every contender on the same texts (default 600; 0 = no limit)")
    p.add_argument("--rounds", dest="throughput_rounds", type=int, default=None,
                   help="fresh-process throughput runs per contender (default 2)")
    p.add_argument("--invariance-texts", type=int, default=None,
                   help="texts of the batch-invariance check, batched vs one at a time (default 300; 0 skips)")
    p.add_argument("--beams", type=_int_list, default=[1, 4], help="translation artifacts: beam sizes (default 1,4)")
    p.add_argument("--no-cold-start", action="store_true", help="skip the fresh-process cold start/RSS section")
    p.add_argument("--no-roofline", action="store_true", help="skip the GEMM roofline")
    p.add_argument("--no-first-pass", action="store_true",
                   help="time each process's first pass over the texts (default: a first pass, timed apart, "
                        "then the timed one, so per-shape kernel compilation is not in the headline)")
    p.add_argument("--quick", action="store_true", help="a short run (under 2 min): 400 texts, one round")
    p.add_argument("--out", type=Path, default=Path("bench"), help="output directory (default bench/)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from onnxpress.benchmarks.bench_config import MODES, BenchConfig

    threads = args.threads or default_threads()
    modes = args.modes or []
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise UserError(f"unknown mode(s) {', '.join(bad)} (choose from {', '.join(MODES)})")
    if args.synthetic_length is not None and args.synthetic_length < 3:
        raise UserError("--synthetic-length must be at least 3 tokens")
    cfg = BenchConfig(artifact=Path(args.artifact), out=args.out, checkpoint=args.checkpoint,
                      against=args.against, variants=args.variants, data=args.data,
                      synthetic_length=args.synthetic_length, threads=threads, device=args.device,
                      modes=modes, cold_start=not args.no_cold_start, roofline=not args.no_roofline,
                      first_pass=not args.no_first_pass, beams=args.beams)
    if args.quick:
        for key, value in QUICK.items():
            setattr(cfg, key, value)
    if args.batch_sizes:
        cfg.batch_sizes = args.batch_sizes
    if args.throughput_texts is not None:
        if args.throughput_texts < 0:
            raise UserError("--throughput-texts must be >= 0")
        cfg.throughput_texts = args.throughput_texts
    if args.throughput_rounds is not None:
        if args.throughput_rounds < 1:
            raise UserError("--rounds must be >= 1")
        cfg.throughput_rounds = args.throughput_rounds
    if args.invariance_texts is not None:
        cfg.invariance_texts = max(args.invariance_texts, 0)
    if args.latency_budget is not None:
        cfg.latency_budget_s = args.latency_budget
    if args.throughput_budget is not None:
        cfg.throughput_budget_s = args.throughput_budget or None
    return run_config(cfg)


def run_config(cfg: "BenchConfig") -> int:  # noqa: F821 - imported lazily
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from onnxpress.runtime.artifact import Artifact

    if Artifact.open(cfg.artifact).task == "translation":
        return run_translation(cfg)
    from onnxpress.benchmarks.report import write_all
    from onnxpress.benchmarks.classifier_bench import run_classifier_bench

    results = run_classifier_bench(cfg)
    paths = write_all(results, cfg.out)
    print((paths["markdown"]).read_text())
    for w in results["warnings"]:
        print(f"warning: {w}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def run_translation(cfg: "BenchConfig") -> int:  # noqa: F821
    import json

    from onnxpress.benchmarks.translation import markdown, plot, run_translation_bench

    results = run_translation_bench(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    text = markdown(results)
    (out / "results.md").write_text(text)
    png = plot(results, out)
    print(text)
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {png}")
    return 0
