"""`onnxpress export translator`: checkpoint -> validated translation artifact.

Steps: load the trained GRU + attention model, export `encoder` and the beam-axis
`decoder_step` graphs (fp32), build the requested variants (int8: dynamic, per-channel,
MatMul + Gather; fp16: fp16 compute with fp32 I/O), report int8 coverage, then validate
every variant through the real runtime (`onnxpress.runtime.translator`) on a test split
against the PyTorch reference decoder:

- parity: share of sentences whose greedy tokens equal PyTorch's (fp32 must reach
  `min_greedy_parity`, 0.99), and the largest attention difference on those sentences;
- BLEU (sacrebleu, detokenized) of each variant at `eval_beam`, next to PyTorch's;
  a variant whose BLEU falls more than `max_bleu_drop` below PyTorch's is kept on disk
  but marked not servable, with the reason, in `manifest.json`.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from onnxpress.errors import UserError

VARIANTS = ("fp32", "int8", "fp16")
DEVICES = {"fp32": ["cpu", "cuda"], "int8": ["cpu"], "fp16": ["cuda"]}
SOURCE_TOKENIZER = "source_tokenizer.json"
TARGET_TOKENIZER = "target_tokenizer.json"
MAX_LENGTH_RATIO = 2.0
MAX_LENGTH_OFFSET = 10


@dataclass
class LoadedTranslator:
    """What export needs from a checkpoint."""

    model: Any  # onnxpress.training.seq2seq.Seq2Seq, eval mode
    config: Any  # Seq2SeqConfig
    source_tokenizer: Path
    target_tokenizer: Path
    meta: dict[str, Any] = field(default_factory=dict)  # training.json (languages, metrics, ...)


@dataclass
class ExportOptions:
    variants: Sequence[str] = VARIANTS
    max_bleu_drop: float = 0.5
    min_greedy_parity: float = 0.99
    data_dir: str | None = None
    split: str = "test_2016_flickr"
    limit: int | None = None  # validate on the first N sentences only
    eval_beam: int = 4
    length_penalty: float = 1.0
    threads: int | None = None
    opset: int = 17
    per_channel: bool = True
    batch_size: int = 64
    overwrite: bool = False
    progress: bool = True


# -- loading ---------------------------------------------------------------------------------

def load_checkpoint(path: str | Path) -> LoadedTranslator:
    """Load a translator checkpoint directory via the training package's loader."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"checkpoint directory not found: {path}")
    from onnxpress.training import seq2seq

    loader: Callable | None = getattr(seq2seq, "load_translator", None)
    if loader is None:
        raise UserError("onnxpress.training.seq2seq has no load_translator(); update onnxpress")
    loaded = loader(path)
    model, tokenizers, config = loaded[0], loaded[1], loaded[2]
    src, tgt = _tokenizer_paths(path, tokenizers)
    meta = {}
    if (path / "training.json").is_file():
        meta = json.loads((path / "training.json").read_text())
    return LoadedTranslator(model=model.eval(), config=config, source_tokenizer=src, target_tokenizer=tgt, meta=meta)


def _tokenizer_paths(path: Path, tokenizers: Any) -> tuple[Path, Path]:
    """Files of the source/target tokenizers: from the loader's answer or the usual names."""
    candidates = {"source": ["source_tokenizer.json", "src_tokenizer.json", "tokenizer_src.json"],
                  "target": ["target_tokenizer.json", "tgt_tokenizer.json", "tokenizer_tgt.json"]}
    found = {}
    for role, names in candidates.items():
        value = tokenizers.get(role) if isinstance(tokenizers, dict) else None
        if isinstance(value, (str, Path)) and Path(value).is_file():
            found[role] = Path(value)
            continue
        hit = next((path / n for n in names if (path / n).is_file()), None)
        if hit is None:
            hit = next(iter(sorted(path.glob(f"*{role[:3]}*tokenizer*.json"))), None)
        if hit is None:
            raise UserError(f"no {role} tokenizer file in {path} (looked for {', '.join(names)})")
        found[role] = hit
    return found["source"], found["target"]


# -- PyTorch reference -----------------------------------------------------------------------

def reference_max_lengths(src_lengths: np.ndarray, max_target_length: int) -> np.ndarray:
    """Same bound as the runtime: ratio * source tokens + offset, capped."""
    bound = np.floor(MAX_LENGTH_RATIO * np.asarray(src_lengths)).astype(np.int64) + MAX_LENGTH_OFFSET
    return np.minimum(bound, max_target_length)


def reference_decode(model: Any, cfg: Any, source_ids: list[list[int]], beam: int = 1,
                     length_penalty: float = 1.0, batch_size: int = 64,
                     progress: bool = False, desc: str = "pytorch") -> list[tuple[list[int], np.ndarray]]:
    """PyTorch reference translations: (token ids without <s>/</s>, attention [T, S]) per source.

    Uses `onnxpress.training.decoding` (the training side's greedy/beam search) when present,
    else a plain batched greedy loop over `model.decode_step`.
    """
    import torch
    from tqdm import tqdm

    out: list[tuple[list[int], np.ndarray] | None] = [None] * len(source_ids)
    order = np.argsort([-len(s) for s in source_ids], kind="stable")
    bar = tqdm(total=len(source_ids), desc=desc, disable=not progress, unit=" sent")
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        length = max(len(source_ids[i]) for i in rows)
        ids = torch.full((len(rows), length), cfg.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, : len(source_ids[i])] = torch.tensor(source_ids[i])
            mask[r, : len(source_ids[i])] = 1
        max_len = reference_max_lengths(np.array([len(source_ids[i]) for i in rows]), cfg.max_tgt_len)
        results = _torch_decode(model, cfg, ids, mask, max_len, beam, length_penalty)
        for r, i in enumerate(rows):
            tokens, attn = results[r]
            out[i] = (tokens, attn[:, : len(source_ids[i])])
        bar.update(len(rows))
    bar.close()
    return out  # type: ignore[return-value]


def _torch_decode(model: Any, cfg: Any, ids: Any, mask: Any, max_len: np.ndarray, beam: int,
                  length_penalty: float) -> list[tuple[list[int], np.ndarray]]:
    import torch

    try:
        from onnxpress.training import decoding  # type: ignore[attr-defined]
    except ImportError:
        decoding = None
    if decoding is not None and hasattr(decoding, "translate_batch"):
        return decoding.translate_batch(model, ids, mask, beam_size=beam, max_lengths=max_len,
                                        length_penalty=length_penalty)
    if beam != 1:
        raise UserError("PyTorch beam search reference (onnxpress.training.decoding) is not available")
    with torch.no_grad():
        states, keys, hidden = model.encode(ids, mask)
        n = ids.shape[0]
        prev = torch.full((n,), cfg.bos_id, dtype=torch.long)
        tokens: list[list[int]] = [[] for _ in range(n)]
        attns: list[list[np.ndarray]] = [[] for _ in range(n)]
        done = np.zeros(n, dtype=bool)
        for step in range(int(max_len.max())):
            log_probs, hidden, attn = model.decode_step(prev, hidden, states, keys, mask)
            best = log_probs.argmax(-1)
            for r in range(n):
                if done[r]:
                    continue
                tok = int(best[r])
                if tok == cfg.eos_id:
                    done[r] = True
                    continue
                tokens[r].append(tok)
                attns[r].append(attn[r].numpy())
                if step + 1 >= max_len[r]:
                    done[r] = True
            if done.all():
                break
            prev = best
    width = ids.shape[1]
    return [(t, np.stack(a) if a else np.zeros((0, width), np.float32)) for t, a in zip(tokens, attns)]


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


# -- the export ------------------------------------------------------------------------------

def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    import onnxpress

    return {"onnxpress": onnxpress.__version__, "onnxruntime": onnxruntime.__version__,
            "onnx": onnx.__version__, "torch": torch.__version__}


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"{out} exists and is not empty (pass --overwrite to replace it)")
        if not (out / "manifest.json").is_file():
            raise UserError(f"{out} is not an onnxpress artifact; refusing to overwrite it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def build_artifact(loaded: LoadedTranslator, out: str | Path, options: ExportOptions) -> Any:
    """Export graphs + variants + tokenizers into `out`; returns the provisional Manifest."""
    from onnxpress.export.translator_graphs import (
        check_step_equivalence, convert_fp16, export_graphs, quantize_int8,
    )
    from onnxpress.runtime.artifact import Manifest, TensorSpec, Variant
    from onnxpress.runtime.translator import DECODER_INPUTS, DECODER_OUTPUTS, ENCODER_INPUTS, ENCODER_OUTPUTS

    unknown = [v for v in options.variants if v not in VARIANTS]
    if unknown:
        raise UserError(f"unknown variant(s) {', '.join(unknown)} (choose from {', '.join(VARIANTS)})")
    out = Path(out)
    _prepare_out(out, options.overwrite)
    cfg, model = loaded.config, loaded.model.eval()
    step_diff = check_step_equivalence(model, cfg)
    t0 = time.perf_counter()
    fp32 = export_graphs(model, cfg, out, opset=options.opset, suffix="fp32")
    files = {"fp32": {role: p.name for role, p in fp32.items()}}
    methods: dict[str, dict[str, Any]] = {
        "fp32": {"exporter": "torch.onnx.export(dynamo=False)", "decoder": "beam-axis step (BeamDecoderStep)",
                 "gemm_to_matmul": True, "step_equivalence_max_abs": step_diff}
    }
    if "int8" in options.variants:
        files["int8"] = {}
        for role, path in fp32.items():
            dst = out / f"{role}.int8.onnx"
            methods["int8"] = quantize_int8(path, dst, per_channel=options.per_channel)
            files["int8"][role] = dst.name
    if "fp16" in options.variants:
        files["fp16"] = {}
        for role, path in fp32.items():
            dst = out / f"{role}.fp16.onnx"
            methods["fp16"] = convert_fp16(path, dst)
            files["fp16"][role] = dst.name
    shutil.copyfile(loaded.source_tokenizer, out / SOURCE_TOKENIZER)
    shutil.copyfile(loaded.target_tokenizer, out / TARGET_TOKENIZER)
    export_seconds = time.perf_counter() - t0

    # fp32 is always built and served: it is the source of the other variants and the parity anchor
    variants = {name: Variant(files=files[name], precision=name, devices=list(DEVICES[name]),
                              opset=options.opset, method=methods[name])
                for name in ["fp32"] + [v for v in VARIANTS if v != "fp32" and v in options.variants]}
    meta = loaded.meta
    manifest = Manifest(
        task="translation",
        max_length=int(cfg.max_src_len),
        tokenizers={"source": SOURCE_TOKENIZER, "target": TARGET_TOKENIZER},
        inputs=[TensorSpec("src_ids", "int64", ["batch", "src_len"]),
                TensorSpec("src_mask", "int64", ["batch", "src_len"])],
        outputs=[TensorSpec("log_probs", "float32", ["batch", "beam", int(cfg.tgt_vocab_size)]),
                 TensorSpec("new_hidden", "float32", ["batch", "beam", int(cfg.dec_hidden)]),
                 TensorSpec("attention", "float32", ["batch", "beam", "src_len"])],
        variants=variants,
        versions=_versions(),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        extra={
            "bos_id": int(cfg.bos_id), "eos_id": int(cfg.eos_id), "pad_id": int(cfg.pad_id), "unk_id": int(cfg.unk_id),
            "max_target_length": int(cfg.max_tgt_len), "max_length_ratio": MAX_LENGTH_RATIO,
            "max_length_offset": MAX_LENGTH_OFFSET, "length_penalty": options.length_penalty,
            "beam_size": options.eval_beam,
            "source_lang": meta.get("source_lang", meta.get("src_lang")),
            "target_lang": meta.get("target_lang", meta.get("tgt_lang")),
            "model": {k: v for k, v in cfg.to_dict().items()},
            "graphs": {
                "encoder": {"inputs": list(ENCODER_INPUTS), "outputs": list(ENCODER_OUTPUTS)},
                "decoder_step": {"inputs": list(DECODER_INPUTS), "outputs": list(DECODER_OUTPUTS)},
            },
            "export_seconds": round(export_seconds, 2),
        },
    )
    manifest.save(out)
    return manifest


def _open_variant(out: Path, variant: str, threads: int | None, batch_size: int) -> Any:
    """A runtime Translator on `variant`, on CPU whatever the variant's target device (validation)."""
    from onnxpress.runtime.artifact import Artifact
    from onnxpress.runtime.translator import Translator

    # GPU-only variants (fp16) are validated on CPU: same graph, same numbers, slower
    return Translator._from_artifact(Artifact.open(out), variant, "cpu", threads, max_batch_size=batch_size,
                                     verify=False)


def validate(out: str | Path, loaded: LoadedTranslator, manifest: Any, options: ExportOptions,
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
    detok = fp32_tr.target.decode_batch
    ref_text = {1: detok([tok for tok, _ in ref_greedy], skip_special_tokens=True)}
    ref_seconds = {1: ref_greedy_s}
    if beam != 1:
        t = time.perf_counter()
        try:
            ref_beam = reference_decode(model, cfg, src_ids, beam=beam, length_penalty=options.length_penalty,
                                        batch_size=options.batch_size, progress=options.progress,
                                        desc=f"pytorch beam {beam}")
            ref_text[beam] = detok([tok for tok, _ in ref_beam], skip_special_tokens=True)
            ref_seconds[beam] = time.perf_counter() - t
        except UserError as exc:
            log(f"note: {exc}; BLEU gate uses greedy decoding")
            beam = 1
    ref_bleu = {k: bleu(v, references) for k, v in ref_text.items()}
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
            hyps = tr.search(encoded, beam_size=beam)
            seconds[beam] = time.perf_counter() - t
            texts[beam] = detok([h.tokens for h in hyps], skip_special_tokens=True)
        scores = {k: bleu(v, references) for k, v in texts.items()}
        parity_rec: dict[str, Any] = {"greedy_token_match": parity, "sentences": len(same),
                                      "reference": "pytorch greedy (model.decode_step)"}
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
        reasons = []
        if drop > options.max_bleu_drop:
            reasons.append(f"BLEU {scores[beam]:.2f} is {drop:.2f} below PyTorch's {ref_bleu[beam]:.2f} "
                           f"(max drop {options.max_bleu_drop})")
        if name == "fp32" and parity < options.min_greedy_parity:
            reasons.append(f"fp32 greedy tokens match PyTorch on {parity:.1%} of sentences "
                           f"(needs {options.min_greedy_parity:.0%})")
        if reasons and spec.servable:
            spec.servable, spec.reason = False, "; ".join(reasons)
        report["variants"][name] = {"bleu": scores, "parity": parity, "servable": spec.servable,
                                    "reason": spec.reason, "seconds": seconds}
        log(f"{name}: BLEU {scores[beam]:.2f} (drop {drop:+.2f}), greedy {scores[1]:.2f}, "
            f"greedy tokens = pytorch on {parity:.1%}" + ("" if spec.servable else f" -> NOT servable: {spec.reason}"))
    manifest.save(out)
    return report


def export_translator(checkpoint: str | Path, out: str | Path, options: ExportOptions | None = None,
                      log: Callable[[str], None] = print) -> tuple[Any, dict[str, Any]]:
    """The whole command: load, export, convert, report coverage, validate, write the manifest."""
    from onnxpress.training.parallel_data import read_parallel, resolve_data_dir

    options = options or ExportOptions()
    loaded = load_checkpoint(checkpoint)
    src_lang = loaded.meta.get("source_lang", loaded.meta.get("src_lang"))
    tgt_lang = loaded.meta.get("target_lang", loaded.meta.get("tgt_lang"))
    if not src_lang or not tgt_lang:
        raise UserError(f"{checkpoint}/training.json does not name the source/target languages")
    corpus = read_parallel(resolve_data_dir(options.data_dir), options.split, src_lang, tgt_lang)
    sources, references = corpus.source, corpus.target
    if options.limit:
        sources, references = sources[: options.limit], references[: options.limit]
    manifest = build_artifact(loaded, out, options)
    if "int8" in manifest.variants:
        add_coverage(out, manifest, sources, references)
    report = validate(out, loaded, manifest, options, sources, references, log=log)
    return manifest, report


def add_coverage(out: str | Path, manifest: Any, sources: Sequence[str], references: Sequence[str]) -> dict:
    """Attach the int8 coverage report (weights and FLOPs in int8) to the int8 variant."""
    from tokenizers import Tokenizer

    from onnxpress.export.translator_graphs import quantization_coverage

    out = Path(out)
    src_tok = Tokenizer.from_file(str(out / SOURCE_TOKENIZER))
    tgt_tok = Tokenizer.from_file(str(out / TARGET_TOKENIZER))
    src_len = float(np.mean([len(e.ids) for e in src_tok.encode_batch(list(sources))])) if sources else 16.0
    tgt_len = float(np.mean([len(e.ids) + 1 for e in tgt_tok.encode_batch(list(references))])) if references else 16.0
    files = manifest.variants
    coverage = quantization_coverage(
        {r: out / f for r, f in files["fp32"].files.items()}, {r: out / f for r, f in files["int8"].files.items()},
        src_len=src_len, tgt_len=tgt_len,
    )
    files["int8"].method["coverage"] = coverage
    manifest.save(out)
    return coverage
