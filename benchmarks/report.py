"""Turn a results dict into results.json, results.md and PNG plots."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODE_TITLES = {"e2e": "end to end (text in, label out, tokenization included)",
               "model": "model only (identical pre-tokenized batches, padded to the longest)"}


def write_all(results: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """results.json, results.md and the plots; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "results.md"}
    paths["json"].write_text(json.dumps(results, indent=1, default=str) + "\n")
    paths["markdown"].write_text(markdown(results))
    paths.update(plots(results, out))
    return paths


# -- Markdown ---------------------------------------------------------------------------------

def _f(value: Any, fmt: str = ".1f", missing: str = "–") -> str:
    if value is None:
        return missing
    try:
        return format(value, fmt)
    except (TypeError, ValueError):
        return str(value)


def invariance_cell(inv: dict[str, Any] | None) -> str:
    if not inv:
        return "–"
    return f"{inv['max_abs_dprob']:.2g}, {inv['label_flips']}/{inv['texts']}"


def _pct(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def machine_line(env: dict[str, Any]) -> str:
    cpu = env.get("cpu", {})
    flags = set(cpu.get("flags", []))
    vnni = "avx512_vnni" in flags
    amx = "amx_int8" in flags
    kernel = f"; onnxpress int8 GEMMs {env['int8_gemm']}" if env.get("int8_gemm") else ""
    return (f"{cpu.get('model', '?')}, {cpu.get('usable_cpus', '?')} usable CPUs "
            f"(avx512_vnni: {'yes' if vnni else 'no'}, amx_int8: {'yes' if amx else 'no'}{kernel}), "
            f"{env.get('memory_gib', '?')} GiB RAM")


def markdown(results: dict[str, Any]) -> str:
    env, cfg, data = results["environment"], results["config"], results["data"]
    versions = env.get("versions", {})
    ref = results.get("reference")
    lines = [
        f"# onnxpress bench: {Path(results['artifact']).name}",
        "",
        f"- Date: {env.get('date_utc')}; machine: {machine_line(env)}",
        f"- Threads: {cfg['threads']} for every contender (asserted equal before and after timing); "
        f"device {cfg['device']}; load average at start {_loads(env.get('load_average_start'))}, "
        f"at end {_loads(env.get('load_average_end'))}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- Data: {data['source']}: {data['texts']} texts, tokens mean {data['tokens_mean']:.1f}, "
        f"p90 {data['tokens_p90']:.0f}, max {data['tokens_max']} (truncated at {data['truncated_at']}); "
        f"latency inputs: {data['latency_inputs']}",
        "- Method: throughput, invariance and cold start run each contender in its own fresh process "
        "(no co-resident threads), rounds interleaved with the start rotated, every contender on its "
        "best batching; the optional latency section loads them side by side in one process. "
        f"`x vs {ref}` = {ref} time / contender time (higher is faster). Run took "
        f"{results.get('duration_s', 0) / 60:.1f} min.",
        "",
    ]
    lines += summary(results)
    tp = results.get("throughput")
    if tp:
        total = data["texts"]
        scope = f"all {total} texts" if tp["texts"] >= total else f"the first {tp['texts']} of {total} texts"
        lines += [f"## Throughput: {scope}, {tp['rounds']} fresh-process round(s) per contender", "",
                  ("texts/s: median over rounds, tokenization included, of the second pass over the texts in "
                   "each process ('first pass': the pass before it, which pays any per-shape kernel "
                   "compilation). " if tp.get("first_pass") else
                   "texts/s: median over rounds, tokenization included, of each process's first pass. ") +
                  "Invariance: the first texts scored in "
                  "batches of 64 (input order, padded to the longest) vs one at a time. Useful GOPS: encoder "
                  "work at the real lengths / time; 'of roof': of the GEMM roof of the contender's precision.", ""]
        rows = []
        for r in tp["contenders"]:
            if "texts_per_s" not in r:
                why = (r.get("errors") or ["no result"])[0].replace("|", "/")[-160:]
                rows.append([r["contender"], f"error: {why}"] + [""] * 11)
                continue
            rows.append([r["contender"], str(r.get("batching") or ""), _f(r["texts_per_s"]),
                         _f(r.get("first_pass_texts_per_s"), ".1f", "–"), _f(r.get("x_vs_reference"), ".2f"),
                         _pct(r.get("accuracy"), 2),
                         invariance_cell(r.get("invariance")), _f(r.get("useful_gops"), ".0f"),
                         _pct(r.get("roof_fraction")), _f(r.get("cold_start_s"), ".2f"),
                         _f(r.get("peak_rss_mib"), ".0f"), _f(r.get("gpu_memory_mib"), ".0f", "n/a"), _pct(r.get("spread"))])
        lines += _table(["contender", "batching", "texts/s", "first pass texts/s", f"x vs {ref}", "accuracy",
                         "batch invariance: max |dp|, flips", "useful GOPS", "of roof", "cold start s",
                         "peak RSS MiB (run)", "GPU MiB (run)", "round spread"], rows) + [""]
    for name, why in (results.get("skipped") or {}).items():
        lines.append(f"- {name}: skipped ({why})")
    if results.get("skipped"):
        lines.append("")
    cold = results.get("cold_start")
    if cold:
        lines += [f"## Cold start and memory (fresh process each, median of {cold['runs_per_contender']} run(s))",
                  "", "Cold start = spawn to first prediction returned (interpreter, imports, load, first "
                  f"call). Peak RSS after predicting {cold['workload_texts']} more texts its own way.", ""]
        rows = []
        for r in cold["contenders"]:
            if "cold_start_s" not in r:
                why = (r.get("errors") or ["no result"])[0].replace("|", "/")[-160:]
                rows.append([r["contender"], f"error: {why}"] + [""] * 6)
                continue
            rows.append([r["contender"], _f(r["cold_start_s"], ".2f"), _f(r["interpreter_s"], ".2f"),
                         _f(r["load_s"], ".2f"), _f(r["first_prediction_s"] * 1e3, ".0f"),
                         _f(r["rss_after_first_mib"], ".0f"), _f(r["peak_rss_mib"], ".0f"),
                         "yes" if r.get("torch_imported") else "no"])
        lines += _table(["contender", "cold start s", "python start s", "load s (library imports included)",
                         "first pred ms",
                         "RSS after first MiB", "peak RSS MiB", "imports torch"], rows)
        for name, why in cold.get("skipped", {}).items():
            lines.append(f"\n{name}: not probed ({why}).")
        lines.append("")
    latency = results.get("latency") or []
    for mode in ("e2e", "model"):
        cells = [c for c in latency if c["mode"] == mode]
        if not cells:
            continue
        sizes = sorted({c["batch_size"] for c in cells})
        names = list(dict.fromkeys(c["contender"] for c in cells))
        lines += [f"## Latency, {MODE_TITLES[mode]}", "",
                  "Each cell: p50 ms / p99 ms (xN vs reference), texts/s.", ""]
        rows = []
        for name in names:
            row = [name]
            for b in sizes:
                c = next((c for c in cells if c["contender"] == name and c["batch_size"] == b), None)
                row.append("–" if c is None else
                           f"{_f(c['p50_ms'], '.1f')} / {_f(c['p99_ms'], '.1f')} "
                           f"(x{_f(c.get('x_vs_reference'), '.2f')}), {_f(c['texts_per_s'], '.0f')}/s")
            rows.append(row)
        lines += _table(["contender"] + [f"batch {b}" for b in sizes], rows) + [""]
    if latency:
        lines += ["## Latency detail", ""]
        rows = []
        for c in latency:
            rows.append([c["mode"], str(c["batch_size"]), c["contender"], str(c["n"]), _f(c["p50_ms"], ".2f"),
                         _f(c["p90_ms"], ".2f"), _f(c["p99_ms"], ".2f"), _f(c["texts_per_s"], ".1f"),
                         _f(c["tokens_per_s"], ".0f"), _f(c.get("x_vs_reference"), ".2f"),
                         _pct(c.get("agreement_with_reference")), _pct(c.get("spread")),
                         _f(c.get("achieved_gops"), ".0f"), _pct(c.get("roof_fraction"))])
        lines += _table(["mode", "batch", "contender", "runs", "p50 ms", "p90 ms", "p99 ms", "texts/s", "tokens/s",
                         "x vs ref", "same label", "repeat spread", "GOPS", "of roof"], rows) + [""]
    roof = results.get("roofline")
    if roof:
        lines += ["## Roofline", "",
                  f"Attainable GEMM throughput on {roof['threads']} threads ({roof['method']}): "
                  + ", ".join(f"{p} {roof[p]['gops']:.0f} GOPS" for p in ("int8", "fp32") if p in roof)
                  + ". Achieved = model GEMM work (2 x MACs of the encoder at the padded shape) / "
                  "model-only latency; see the GOPS and 'of roof' columns above.", ""]
        rows = [[p, f"{s['m']}x{s['k']}x{s['n']}", _f(s["median_ms"], ".2f"), _f(s["gops"], ".0f")]
                for p in ("int8", "fp32") if p in roof for s in roof[p]["shapes"]]
        lines += _table(["precision", "M x K x N", "median ms", "GOPS"], rows) + [""]
    checks = results.get("checks", {})
    budgets = ", ".join(f"{k}={v.get('compute')}" for k, v in checks.get("threads_after", {}).items())
    lines += ["## Checks", "",
              f"- Thread budgets equal ({cfg['threads']}): {checks.get('threads_equal')} ({budgets})",
              f"- Same labels for all contenders: {checks.get('labels')}",
              "- HF tokenizers vs the artifact's tokenizer, identical token ids: "
              + (", ".join(f"{k} {_pct(v)}" for k, v in checks.get("tokenization_identical", {}).items()) or "n/a"),
              ]
    for w in results.get("warnings", []):
        lines.append(f"- WARNING: {w}")
    lines += ["", "## Contenders", ""]
    for c in results.get("contenders", []):
        session = c.get("session") or {}
        detail = (f"intra_op {session.get('intra_op_num_threads')}, inter_op {session.get('inter_op_num_threads')}, "
                  f"{session.get('graph_optimization_level')}, {session.get('execution_mode')}, "
                  f"providers {session.get('providers')}") if session else f"threads {c.get('threads')}"
        lines.append(f"- **{c['name']}**: {c.get('stack')}; load {_f(c.get('load_s'), '.2f')} s; {detail}")
    return "\n".join(lines) + "\n"


def summary(results: dict[str, Any]) -> list[str]:
    """One row per contender with the headline figures of every section (the README table)."""
    names = [c["name"] for c in results.get("contenders", [])]
    tp = {r["contender"]: r for r in (results.get("throughput") or {}).get("contenders", [])}
    cold = {r["contender"]: r for r in (results.get("cold_start") or {}).get("contenders", [])}
    e2e = [c for c in results.get("latency") or [] if c["mode"] == "e2e"]
    sizes = sorted({c["batch_size"] for c in e2e})
    shown = [b for b in (1, 32) if b in sizes] or sizes[:2]
    if not names:
        return []
    ref = results.get("reference")
    header = ["contender"]
    if tp:
        header += ["texts/s (throughput run)", f"x vs {ref}", "accuracy", "batch invariance: max |dp|, flips"]
    header += [f"p50 ms, batch {b}" for b in shown]
    if cold:
        header += ["cold start s", "peak RSS MiB"]
    rows = []
    for name in names:
        row = [name]
        if tp:
            r = tp.get(name, {})
            row += [_f(r.get("texts_per_s")), _f(r.get("x_vs_reference"), ".2f"), _pct(r.get("accuracy"), 2),
                    invariance_cell(r.get("invariance"))]
        for b in shown:
            c = next((c for c in e2e if c["contender"] == name and c["batch_size"] == b), {})
            row.append(_f(c.get("p50_ms"), ".1f"))
        if cold:
            r = cold.get(name, {})
            row += [_f(r.get("cold_start_s"), ".2f"), _f(r.get("peak_rss_mib"), ".0f")]
        rows.append(row)
    for name, why in (results.get("skipped") or {}).items():
        rows.append([name, f"skipped: {why}"] + [""] * (len(header) - 2))
    return (["## Summary", ""] + headline_lines((results.get("throughput") or {}).get("headline"))
            + ["Throughput: each contender scores the test texts its best way, in its own process (see below); "
               "latency: end to end (text in, label out); cold start and RSS: fresh process each.", ""]
            + _table(header, rows) + [""])


def headline_lines(head: dict[str, Any] | None) -> list[str]:
    if not head:
        return []
    out = []
    if "best_peer" in head:
        out.append(f"**{head['onnxpress']} is {head['x_vs_best_peer']:.2f}x the best peer ({head['best_peer']})**")
    if "seed" in head:
        out.append(f"{head['onnxpress']} is {head['x_vs_seed']:.2f}x {head['seed']} (the seed's batching)")
    return ["; ".join(out) + ".", ""] if out else []


def _loads(value: Any) -> str:
    return "–" if not value else " / ".join(f"{v:.2f}" for v in value)


# -- plots ------------------------------------------------------------------------------------

def plots(results: dict[str, Any], out: Path) -> dict[str, Path]:
    latency = results.get("latency") or []
    if not latency:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: dict[str, Path] = {}
    modes = [m for m in ("e2e", "model") if any(c["mode"] == m for c in latency)]
    names = list(dict.fromkeys(c["contender"] for c in latency))
    env = results["environment"]
    title = f"{machine_line(env)}, {results['config']['threads']} threads, {env.get('date_utc', '')}"
    if env.get("load_average_start"):
        title += f", load average {env['load_average_start'][0]:.1f} at start"

    for key, ylabel, fname in (("p50_ms", "latency per batch, ms (p50, bars p90)", "latency_vs_batch.png"),
                               ("texts_per_s", "throughput, texts/s", "throughput_vs_batch.png")):
        fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), squeeze=False)
        for ax, mode in zip(axes[0], modes):
            for name in names:
                cells = sorted((c for c in latency if c["mode"] == mode and c["contender"] == name),
                               key=lambda c: c["batch_size"])
                if not cells:
                    continue
                xs = [c["batch_size"] for c in cells]
                ys = [c[key] for c in cells]
                if key == "p50_ms":
                    err = [[0] * len(cells), [c["p90_ms"] - c["p50_ms"] for c in cells]]
                    ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=name)
                else:
                    ax.plot(xs, ys, marker="o", label=name)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("batch size")
            ax.set_ylabel(ylabel)
            ax.set_title(mode, fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        path = out / fname
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths[fname.removesuffix(".png")] = path

    sizes = sorted({c["batch_size"] for c in latency})
    fig, axes = plt.subplots(len(modes), len(sizes), figsize=(3.2 * len(sizes) + 1, 3.2 * len(modes) + 0.6),
                             squeeze=False)
    for i, mode in enumerate(modes):
        for j, b in enumerate(sizes):
            ax = axes[i][j]
            cells = [c for c in latency if c["mode"] == mode and c["batch_size"] == b]
            data = [c["samples_ms"] for c in cells]
            if data:
                ax.boxplot(data, whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
                ax.set_xticks(range(1, len(cells) + 1))
                ax.set_xticklabels([c["contender"] for c in cells], rotation=60, ha="right", fontsize=7)
            ax.set_title(f"{mode}, batch {b}", fontsize=9)
            ax.set_yscale("log")
            ax.set_ylabel("ms (log)")
            ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"latency distribution (whiskers p1-p99); {title}", fontsize=9)
    fig.tight_layout()
    path = out / "latency_distribution.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths["latency_distribution"] = path
    return paths
