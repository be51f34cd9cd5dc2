"""Translator checkpoint -> validated artifact: two ONNX graphs (`encoder`, beam-axis `decoder_step`).

The `Converter` skeleton stages, stamps, writes the manifest and renames; this exporter adds
the graphs (fp32), the requested variants (int8: per-channel int8 weights of MatMul + Gather with
activation scales frozen on the decoding of training sentences, batch-invariant; fp16: fp16 compute
with fp32 I/O), the int8 coverage report, and validation of every variant through
the runtime's `Translator` against the PyTorch decoder (`export.translator_validation`).
"""
from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from onnxpress.errors import UserError
from onnxpress.export.converter import Converter, ExportResult, parse_variants
from onnxpress.export.manifest import utc_now, versions
from onnxpress.export.translator_validation import reference_decode, validate
from onnxpress.runtime.artifact import Manifest
from onnxpress.training.translator_checkpoint import LoadedTranslator, languages, load_checkpoint

# reference_decode, validate, LoadedTranslator and load_checkpoint are imported from here by older callers
__all__ = ["VARIANTS", "ExportOptions", "LoadedTranslator", "TranslatorConverter", "add_coverage", "build_artifact",
           "export_translator", "load_checkpoint", "reference_decode", "validate"]

VARIANTS = ("fp32", "int8", "fp16")
DEVICES = {"fp32": ["cpu", "cuda"], "int8": ["cpu"], "fp16": ["cuda"]}
SOURCE_TOKENIZER = "source_tokenizer.json"
TARGET_TOKENIZER = "target_tokenizer.json"
MAX_LENGTH_RATIO = 2.0  # decoding.max_output_lengths: len_a * source tokens + len_b, capped
MAX_LENGTH_OFFSET = 10
CALIBRATION_SPLIT = "train"


@dataclass
class ExportOptions:
    """Settings of the translator export; `onnxpress export translator` fills them by flag dest."""

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
    calibration_size: int = 512  # int8: training sentences whose decoding sets the activation ranges
    seed: int = 0
    src_lang: str | None = None  # default: the checkpoint's training.json
    tgt_lang: str | None = None
    overwrite: bool = False
    progress: bool = True

    def check(self) -> None:
        """Refuse settings that cannot work (a `UserError` naming the flag)."""
        parse_variants(self.variants, VARIANTS)
        if self.eval_beam < 1:
            raise UserError("--beam-size must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise UserError("--eval-rows must be at least 1")
        if self.max_bleu_drop < 0:
            raise UserError("--max-bleu-drop must be >= 0")
        if not 0.0 <= self.min_greedy_parity <= 1.0:
            raise UserError("--min-parity must be between 0 and 1")
        if self.calibration_size < 1:
            raise UserError("--calibration-size must be >= 1")


def build_artifact(loaded: LoadedTranslator, out: str | Path, options: ExportOptions,
                   calibration: Sequence[str] = ()) -> Manifest:
    """Export graphs + variants + tokenizers into `out` (created if needed); returns the provisional Manifest.

    int8 has its activation scales frozen on the decoding of the `calibration` sentences (source
    side; `export.translator_calibration`). The variants are not validated yet (`validate` does
    that); `export_translator` runs both.
    """
    from onnxpress.export.translator_calibration import quantize_int8_calibrated
    from onnxpress.export.translator_graphs import (
        check_encoder_equivalence, check_step_equivalence, convert_fp16, export_graphs,
    )
    from onnxpress.runtime.artifact import TensorSpec, Variant
    from onnxpress.runtime.translator import DECODER_INPUTS, DECODER_OUTPUTS, ENCODER_INPUTS, ENCODER_OUTPUTS

    requested = parse_variants(options.variants, VARIANTS)
    if "int8" in requested and not calibration:
        raise UserError("int8 needs calibration sentences (the source side of a training split)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg, model = loaded.config, loaded.model.eval()
    step_diff = check_step_equivalence(model, cfg)
    t0 = time.perf_counter()
    fp32 = export_graphs(model, cfg, out, opset=options.opset, suffix="fp32")
    encoder_diff = check_encoder_equivalence(model, cfg, fp32["encoder"])
    files = {"fp32": {role: p.name for role, p in fp32.items()}}
    methods: dict[str, dict[str, Any]] = {
        "fp32": {"exporter": "torch.onnx.export(dynamo=False)", "decoder": "beam-axis step (BeamDecoderStep)",
                 "encoder": "one bidirectional GRU node with sequence_lens (write_encoder_graph)",
                 "gemm_to_matmul": True, "step_equivalence_max_abs": step_diff,
                 "encoder_equivalence_max_abs": encoder_diff}
    }
    if "fp16" in requested:
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
                for name in ["fp32"] + [v for v in VARIANTS if v not in ("fp32", "int8") and v in requested]}
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
        versions=versions(),
        created=utc_now(),
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
    manifest.save(out)  # the fp32 variant can now be opened: int8 is calibrated by decoding with it
    if "int8" in requested:
        t0 = time.perf_counter()
        files["int8"], methods["int8"] = quantize_int8_calibrated(out, fp32, calibration,
                                                                  per_channel=options.per_channel,
                                                                  threads=options.threads)
        variants["int8"] = Variant(files=files["int8"], precision="int8", devices=list(DEVICES["int8"]),
                                   opset=options.opset, method=methods["int8"])
        order = ["fp32", "int8"] + [v for v in variants if v not in ("fp32", "int8")]
        manifest.variants = {name: variants[name] for name in order}
        manifest.extra["export_seconds"] = round(export_seconds + time.perf_counter() - t0, 2)
        manifest.save(out)
    return manifest


class TranslatorConverter(Converter[LoadedTranslator]):
    """A checkpoint of `onnxpress train translator` -> translation artifact, validated on a Multi30k split."""

    def __init__(self, checkpoint: str | Path, options: ExportOptions | None = None,
                 log: Callable[[str], None] | None = None):
        options = options or ExportOptions()
        options.check()
        self.options = replace(options, variants=tuple(parse_variants(options.variants, VARIANTS)))
        super().__init__(overwrite=options.overwrite, log=log)
        self.checkpoint = checkpoint

    def _load(self) -> LoadedTranslator:
        from onnxpress.training.multi30k import read_parallel, resolve_data_dir

        options = self.options
        loaded = load_checkpoint(self.checkpoint)
        src_lang, tgt_lang = languages(loaded.meta)
        src_lang, tgt_lang = options.src_lang or src_lang, options.tgt_lang or tgt_lang
        if not src_lang or not tgt_lang:
            raise UserError(f"{self.checkpoint}/training.json does not name the languages (still training?): "
                            f"pass --src and --tgt")
        loaded.meta.setdefault("src", src_lang)
        loaded.meta.setdefault("tgt", tgt_lang)
        data_dir = resolve_data_dir(options.data_dir)
        corpus = read_parallel(data_dir, options.split, src_lang, tgt_lang)
        self.sources, self.references = corpus.source[: options.limit], corpus.target[: options.limit]
        self.calibration = calibration_sentences(data_dir, src_lang, tgt_lang, options) if "int8" in options.variants else []
        return loaded

    def _write(self, loaded: LoadedTranslator, staging: Path, work: Path) -> Manifest:
        manifest = build_artifact(loaded, staging, self.options, self.calibration)
        if "int8" in manifest.variants:
            add_coverage(staging, manifest, self.sources, self.references)
        return manifest

    def _validate(self, loaded: LoadedTranslator, staging: Path, manifest: Manifest) -> dict[str, Any]:
        return validate(staging, loaded, manifest, self.options, self.sources, self.references, log=self.log)


def calibration_sentences(data_dir: Path, src_lang: str, tgt_lang: str, options: ExportOptions) -> list[str]:
    """A seeded sample of `calibration_size` source sentences of the training split."""
    from onnxpress.training.multi30k import read_parallel

    try:
        train = read_parallel(data_dir, CALIBRATION_SPLIT, src_lang, tgt_lang).source
    except UserError as exc:
        raise UserError(f"{exc}; int8 is calibrated on it (or leave int8 out: --variants fp32,fp16)") from None
    if options.split == CALIBRATION_SPLIT:
        raise UserError(f"--split {CALIBRATION_SPLIT} is where int8 is calibrated: validate on another split")
    picked = np.random.default_rng(options.seed).choice(len(train), min(options.calibration_size, len(train)),
                                                        replace=False)
    return [train[i] for i in sorted(picked)]


def export_translator(checkpoint: str | Path, out: str | Path, options: ExportOptions | None = None,
                      log: Callable[[str], None] = print) -> tuple[Manifest, dict[str, Any]]:
    """The whole command: load, export, convert, report coverage, validate, write the manifest."""
    result: ExportResult = TranslatorConverter(checkpoint, options, log=log).convert(out)
    return result.manifest, result.report


def add_coverage(out: str | Path, manifest: Manifest, sources: Sequence[str],
                 references: Sequence[str]) -> dict[str, Any]:
    """Attach the int8 coverage report (weights and FLOPs in int8) to the int8 variant."""
    from tokenizers import Tokenizer

    from onnxpress.export.translator_coverage import quantization_coverage

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
