"""Batch-invariant int8 for the translator: activation scales frozen on the inputs of real decoding.

Dynamic int8 (`DynamicQuantizeMatMul`) scales each activation by its batch's range, so a sentence's
translation depended on what it was batched with (38 of the 1,000 test_2016 sentences changed when
batches of 64 became batches of 3, greedy; 79 with beam 4). As for the classifier
(`export/frozen_scales.py`), the int8 graphs keep the dynamic graph's int8 weights and kernels and
take constant activation scales: the min/max of each quantized tensor of the fp32 graphs over the
encoder and decoder-step inputs that decoding calibration sentences produces (greedy and beam, through
the runtime's own search on the fp32 variant). A sentence's translation is then the same in any batch.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onnxpress.export.frozen_scales import quantize_int8_frozen

CALIBRATION_BEAMS = (1, 4)  # the searches whose step inputs set the ranges


class Recording:
    """An engine that keeps every feed it runs (arrays shared, not copied) and runs it."""

    def __init__(self, engine: Any, feeds: list[dict[str, np.ndarray]]):
        self.engine, self.feeds = engine, feeds

    def run(self, feed: dict[str, Any], outputs: Sequence[str] | None = None, **kwargs: Any) -> Any:
        self.feeds.append(dict(feed))
        return self.engine.run(feed, outputs, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


def decoding_feeds(artifact_dir: str | Path, sentences: Sequence[str], threads: int | None = None,
                   beams: Sequence[int] = CALIBRATION_BEAMS) -> dict[str, list[dict[str, np.ndarray]]]:
    """The encoder's and the decoder step's inputs while the fp32 variant translates `sentences`."""
    from onnxpress.runtime.translator import Translator

    translator = Translator.open(artifact_dir, "fp32", "cpu", threads, verify=False, io_binding=False, workers=1)
    feeds: dict[str, list[dict[str, np.ndarray]]] = {"encoder": [], "decoder_step": []}
    translator.encoder = Recording(translator.encoder, feeds["encoder"])  # type: ignore[assignment]
    translator.decoder = Recording(translator.decoder, feeds["decoder_step"])  # type: ignore[assignment]
    for beam in beams:
        translator.translate(list(sentences), beam_size=beam)
    return feeds


def quantize_int8_calibrated(artifact_dir: str | Path, fp32_files: dict[str, Path], sentences: Sequence[str], *,
                             per_channel: bool = True, threads: int | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """Write `{role}.int8.onnx` beside each fp32 graph with frozen activation scales; returns the
    int8 file names by role and the method (the decoder's, plus the calibration it used)."""
    from onnxpress.export.translator_graphs import narrow_matmuls

    if not sentences:
        raise ValueError("int8 needs calibration sentences")
    feeds = decoding_feeds(artifact_dir, sentences, threads)
    files, methods = {}, {}
    for role, fp32 in fp32_files.items():
        dst = Path(artifact_dir) / f"{role}.int8.onnx"
        methods[role] = quantize_int8_frozen(fp32, dst, feeds[role], nodes_to_exclude=narrow_matmuls(fp32),
                                             op_types=["MatMul", "Gather"], per_channel=per_channel)
        files[role] = dst.name
    method = {**methods["decoder_step"],
              "activations": "uint8, asymmetric, scales calibrated (min/max of the fp32 graphs' inputs while "
                             "decoding the calibration sentences)",
              "calibration_sentences": len(sentences), "calibration_beams": list(CALIBRATION_BEAMS),
              "frozen_activation_scales": {role: m["frozen_activation_scales"] for role, m in methods.items()}}
    method.pop("split_attention_nodes", None)
    method.pop("attention", None)
    return files, method
