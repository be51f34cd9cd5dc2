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
MAX_LENGTH_RATIO = 2.0  # decoding.max_output_lengths: len_a * source tokens + len_b, capped
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
    src_lang: str | None = None  # default: the checkpoint's training.json
    tgt_lang: str | None = None
    overwrite: bool = False
    progress: bool = True


# -- loading ---------------------------------------------------------------------------------

def load_checkpoint(path: str | Path) -> LoadedTranslator:
    """Load a checkpoint written by `onnxpress train translator` (via its `load_translator`)."""
    from onnxpress.training.translator import SRC_TOKENIZER, TGT_TOKENIZER, load_translator

    path = Path(path)
    if not path.is_dir():
        raise UserError(f"checkpoint directory not found: {path}")
    model, _tokenizers, config = load_translator(path)
    meta = {}
    if (path / "training.json").is_file():
        meta = json.loads((path / "training.json").read_text())
    return LoadedTranslator(model=model.eval(), config=config, source_tokenizer=path / SRC_TOKENIZER,
                            target_tokenizer=path / TGT_TOKENIZER, meta=meta)


def languages(meta: dict[str, Any]) -> tuple[str | None, str | None]:
    settings = meta.get("settings", {})
    return (meta.get("src", settings.get("src", meta.get("source_lang"))),
            meta.get("tgt", settings.get("tgt", meta.get("target_lang"))))


# -- PyTorch reference -----------------------------------------------------------------------

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


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise UserError(f"{out} exists and is not empty (pass --force to replace it)")
        if not (out / "manifest.json").is_file():
            raise UserError(f"{out} is not an onnxpress artifact; refusing to overwrite it")


def _prepare_out(out: Path, overwrite: bool) -> None:
    _check_out(out, overwrite)
    if out.exists():
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
            "source_lang": languages(meta)[0],
            "target_lang": languages(meta)[1],
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


def gate_reasons(variant: str, bleu_score: float, reference_bleu: float, greedy_parity: float,
                 max_bleu_drop: float, min_greedy_parity: float) -> list[str]:
    """Why a variant must not be served (empty: it passes). fp32 must also match PyTorch's greedy tokens."""
    reasons = []
    drop = reference_bleu - bleu_score
    if drop > max_bleu_drop:
        reasons.append(f"BLEU {bleu_score:.2f} is {drop:.2f} below PyTorch's {reference_bleu:.2f} "
                       f"(max drop {max_bleu_drop})")
    if variant == "fp32" and greedy_parity < min_greedy_parity:
        reasons.append(f"fp32 greedy tokens match PyTorch on {greedy_parity:.1%} of sentences "
                       f"(needs {min_greedy_parity:.0%})")
    return reasons


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
        ref_beam = reference_decode(model, cfg, src_ids, beam=beam, length_penalty=options.length_penalty,
                                    batch_size=options.batch_size, progress=options.progress,
                                    desc=f"pytorch beam {beam}")
        ref_text[beam] = detok([tok for tok, _ in ref_beam], skip_special_tokens=True)
        ref_seconds[beam] = time.perf_counter() - t
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
            hyps = tr.search(encoded, beam_size=beam, length_penalty=options.length_penalty)
            seconds[beam] = time.perf_counter() - t
            beam_same = float(np.mean([h.tokens == r[0] for h, r in zip(hyps, ref_beam)])) if hyps else 1.0
            texts[beam] = detok([h.tokens for h in hyps], skip_special_tokens=True)
        scores = {k: bleu(v, references) for k, v in texts.items()}
        parity_rec: dict[str, Any] = {"greedy_token_match": parity, "sentences": len(same),
                                      "reference": "onnxpress.training.decoding greedy_decode"}
        if beam != 1:
            parity_rec[f"beam{beam}_token_match"] = beam_same
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


def export_translator(checkpoint: str | Path, out: str | Path, options: ExportOptions | None = None,
                      log: Callable[[str], None] = print) -> tuple[Any, dict[str, Any]]:
    """The whole command: load, export, convert, report coverage, validate, write the manifest."""
    from onnxpress.training.multi30k import read_parallel, resolve_data_dir

    options = options or ExportOptions()
    loaded = load_checkpoint(checkpoint)
    src_lang, tgt_lang = languages(loaded.meta)
    src_lang, tgt_lang = options.src_lang or src_lang, options.tgt_lang or tgt_lang
    if not src_lang or not tgt_lang:
        raise UserError(f"{checkpoint}/training.json does not name the languages (still training?): "
                        f"pass --src and --tgt")
    loaded.meta.setdefault("src", src_lang)
    loaded.meta.setdefault("tgt", tgt_lang)
    corpus = read_parallel(resolve_data_dir(options.data_dir), options.split, src_lang, tgt_lang)
    sources, references = corpus.source, corpus.target
    if options.limit:
        sources, references = sources[: options.limit], references[: options.limit]
    # Built and validated in a sibling folder, moved into place only when complete: an
    # interrupted export never leaves a manifest whose variants were not validated.
    out = Path(out)
    _check_out(out, options.overwrite)
    partial = out.with_name(f".{out.name}.partial")
    if partial.exists():
        shutil.rmtree(partial)
    manifest = build_artifact(loaded, partial, options)
    if "int8" in manifest.variants:
        add_coverage(partial, manifest, sources, references)
    report = validate(partial, loaded, manifest, options, sources, references, log=log)
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
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
