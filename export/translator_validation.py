"""Translator validation: every variant through the runtime's `Translator` against the PyTorch decoder.

- parity: share of sentences whose greedy tokens equal PyTorch's (fp32 must reach
  `min_greedy_parity`), and the largest attention difference on those sentences;
- the reference sample (PyTorch greedy on the first sources) the runtime re-checks on a GPU;
- BLEU (sacrebleu, detokenized) of each variant at `eval_beam`, next to PyTorch's;
  a variant whose BLEU falls more than `max_bleu_drop` below PyTorch's is kept on disk
  but marked not servable, with the reason, in `manifest.json`.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxpress.export.gate import gate_reasons
from onnxpress.runtime.artifact import Manifest
from onnxpress.runtime.gpu_check import DEFAULT_MAX_TOKEN_MISMATCH, DEFAULT_SCORE_TOLERANCE, SAMPLE_KEY
from onnxpress.runtime.int8_gemm import int8_kernel
from onnxpress.runtime.translator import Translator
from onnxpress.training.bleu import bleu_score
from onnxpress.training.translator_checkpoint import LoadedTranslator

if TYPE_CHECKING:
    from onnxpress.export.translator import ExportOptions

REFERENCE_SAMPLE_ROWS = 16  # sentences the runtime decodes on first GPU load


def reference_decode(model: Any, cfg: Any, source_ids: list[list[int]], beam: int = 1,
                     length_penalty: float = 1.0, batch_size: int = 64,
                     progress: bool = False, desc: str = "pytorch") -> list[tuple[list[int], np.ndarray]]:
    """The PyTorch reference decoder (`onnxpress.training.decoding`) on pre-tokenized sources:
    (token ids without </s>, attention [tokens + </s> row, source length]) per source, in order.

    Batches are the runtime's: sorted by source length, longest first, `batch_size` sentences.
    """
    from tqdm import tqdm

    from onnxpress.training.decoding import decode, pad_batch

    out: list[tuple[list[int], np.ndarray] | None] = [None] * len(source_ids)
    order = np.argsort([-len(s) for s in source_ids], kind="stable")
    bar = tqdm(total=len(source_ids), desc=desc, disable=not progress, unit=" sent")
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        ids, mask = pad_batch([list(source_ids[i]) for i in rows], cfg.pad_id)
        kwargs = {"length_penalty": length_penalty} if beam > 1 else {}
        for i, hyp in zip(rows, decode(model, ids, mask, beam_size=beam, **kwargs)):
            out[i] = (list(hyp.tokens), np.asarray(hyp.attention, dtype=np.float32))
        bar.update(len(rows))
    bar.close()
    return out  # type: ignore[return-value]


def reference_sample(model: Any, cfg: Any, sources: list[str], source_ids: list[list[int]],
                     rows: int = REFERENCE_SAMPLE_ROWS) -> dict[str, Any]:
    """The first sources with PyTorch's greedy tokens and summed log-probabilities, stored as
    `manifest.extra["reference_sample"]` for the runtime's GPU self-check (runtime/gpu_check.py)."""
    from onnxpress.training.decoding import decode, pad_batch

    n = min(rows, len(sources))
    hyps = []
    if n:
        ids, mask = pad_batch([list(s) for s in source_ids[:n]], cfg.pad_id)
        hyps = decode(model, ids, mask, beam_size=1)
    return {"texts": [str(t) for t in sources[:n]], "tokens": [list(map(int, h.tokens)) for h in hyps],
            "log_probs": [round(float(h.score), 6) for h in hyps], "tolerance": DEFAULT_SCORE_TOLERANCE,
            "max_token_mismatch": DEFAULT_MAX_TOKEN_MISMATCH}


def _open_variant(out: Path, variant: str, threads: int | None, batch_size: int) -> Translator:
    """A runtime Translator on `variant`, on CPU whatever the variant's target device.

    GPU-only variants (fp16) are validated on CPU: same graph, same numbers, slower.
    """
    return Translator.open(out, variant, "cpu", threads, max_batch_size=batch_size, verify=False)


def validate(out: str | Path, loaded: LoadedTranslator, manifest: Manifest, options: ExportOptions,
             sources: list[str], references: list[str], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Parity and BLEU of every variant vs PyTorch; applies the BLEU gate; saves the manifest."""
    out = Path(out)
    cfg, model = loaded.config, loaded.model
    beam = options.eval_beam
    fp32_tr = _open_variant(out, "fp32", options.threads, options.batch_size)
    encoded = fp32_tr.source.encode(sources, with_type_ids=False)
    src_ids = [encoded.ids[encoded.offsets[i]:encoded.offsets[i + 1]].tolist() for i in range(len(encoded))]

    t = time.perf_counter()
    ref_greedy = reference_decode(model, cfg, src_ids, beam=1, batch_size=options.batch_size,
                                  progress=options.progress, desc="pytorch greedy")
    ref_greedy_s = time.perf_counter() - t
    manifest.extra[SAMPLE_KEY] = reference_sample(model, cfg, sources, src_ids)
    detok = fp32_tr.target.decode_batch
    ref_text = {1: detok([tok for tok, _ in ref_greedy], skip_special_tokens=True)}
    ref_seconds = {1: ref_greedy_s}
    if beam != 1:
        t = time.perf_counter()
        ref_beam = reference_decode(model, cfg, src_ids, beam=beam, length_penalty=options.length_penalty,
                                    batch_size=options.batch_size, progress=options.progress,
                                    desc=f"pytorch beam {beam}")
        ref_text[beam] = detok([tok for tok, _ in ref_beam], skip_special_tokens=True)
        ref_seconds[beam] = time.perf_counter() - t
    ref_bleu = {k: bleu_score(v, references) for k, v in ref_text.items()}
    report: dict[str, Any] = {"sentences": len(sources), "split": options.split, "eval_beam": beam,
                              "pytorch": {"bleu": ref_bleu, "seconds": ref_seconds}, "variants": {}}
    log(f"pytorch: BLEU greedy {ref_bleu[1]:.2f}" + (f", beam {beam} {ref_bleu[beam]:.2f}" if beam != 1 else ""))

    for name, spec in manifest.variants.items():
        tr = fp32_tr if name == "fp32" else _open_variant(out, name, options.threads, options.batch_size)
        t = time.perf_counter()
        greedy = tr.search(encoded, beam_size=1, return_attention=(name == "fp32"))
        greedy_s = time.perf_counter() - t
        same = [g.tokens == r[0] for g, r in zip(greedy, ref_greedy)]
        parity = float(np.mean(same)) if same else 1.0
        texts = {1: detok([g.tokens for g in greedy], skip_special_tokens=True)}
        seconds = {1: greedy_s}
        if beam != 1:
            t = time.perf_counter()
            hyps = tr.search(encoded, beam_size=beam, length_penalty=options.length_penalty)
            seconds[beam] = time.perf_counter() - t
            beam_same = float(np.mean([h.tokens == r[0] for h, r in zip(hyps, ref_beam)])) if hyps else 1.0
            texts[beam] = detok([h.tokens for h in hyps], skip_special_tokens=True)
        scores = {k: bleu_score(v, references) for k, v in texts.items()}
        parity_rec: dict[str, Any] = {"greedy_token_match": parity, "sentences": len(same),
                                      "reference": "onnxpress.training.decoding greedy_decode"}
        if beam != 1:
            parity_rec[f"beam{beam}_token_match"] = beam_same
        if spec.precision == "int8":
            parity_rec["int8_gemm"] = int8_kernel()
        if name == "fp32":
            diffs = [float(np.abs(g.attention[:, : r[1].shape[1]] - r[1]).max())
                     for g, r, ok in zip(greedy, ref_greedy, same) if ok and len(g.tokens)]
            parity_rec["attention_max_abs_diff"] = max(diffs) if diffs else 0.0
        drop = ref_bleu[beam] - scores[beam]
        spec.parity = parity_rec
        spec.metrics = {"bleu": scores[beam], "bleu_greedy": scores[1], "pytorch_bleu": ref_bleu[beam],
                        "pytorch_bleu_greedy": ref_bleu[1], "bleu_drop": drop, "eval_beam": beam,
                        "split": options.split, "sentences": len(sources),
                        "seconds": {f"beam{k}": round(v, 2) for k, v in seconds.items()}}
        reasons = gate_reasons(name, scores[beam], ref_bleu[beam], parity, options.max_bleu_drop,
                               options.min_greedy_parity)
        if reasons and spec.servable:
            spec.servable, spec.reason = False, "; ".join(reasons)
        report["variants"][name] = {"bleu": scores, "parity": parity, "servable": spec.servable,
                                    "reason": spec.reason, "seconds": seconds}
        log(f"{name}: BLEU {scores[beam]:.2f} (drop {drop:+.2f}), greedy {scores[1]:.2f}, "
            f"greedy tokens = pytorch on {parity:.1%}" + ("" if spec.servable else f" -> NOT servable: {spec.reason}"))
    manifest.save(out)
    return report
