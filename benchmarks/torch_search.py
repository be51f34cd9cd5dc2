"""The PyTorch contender: the trained Seq2Seq's modules driven by the runtime's own search.

`torch_translator` builds an `onnxpress.runtime.translator.Translator` whose two engines are
the PyTorch modules the exporter traces (`EncoderGraph`, `BeamDecoderStep`) instead of ONNX
Runtime sessions. Tokenization, length-bucketed batches, the numpy greedy/beam search with its
early exit (finished sentences leave the batch), shared encoder states across beams, attention
recorded only when asked, and detokenization are therefore the runtime's code: the two
contenders differ only in the engine that computes each step.
"""
from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from onnxpress.runtime.translator import (CPU_MAX_BATCH_SIZE, DEFAULT_MAX_BATCH_TOKENS, DECODER_INPUTS,
                                          DECODER_OUTPUTS, ENCODER_INPUTS, ENCODER_OUTPUTS, TASK, Translator)


class TorchGraph:
    """The `Engine` surface `Translator` uses (`run`, names, `describe`), over a torch module.

    `session` is the module's stand-in for the ORT session: its `get_outputs()` lists output
    names and shapes as ORT's NodeArgs do (the translator reads the vocabulary size there).
    """

    device = "cpu"
    io_binding = False

    def __init__(self, module: Any, inputs: Sequence[str], outputs: Sequence[str], vocab: int | None = None):
        import torch

        self.module = module.eval()
        self.input_names, self.output_names = list(inputs), list(outputs)
        shapes = {"log_probs": ["batch", "beam", vocab]} if vocab else {}
        self._outputs = [SimpleNamespace(name=n, shape=shapes.get(n, [])) for n in outputs]
        self.session = self
        self._torch = torch

    def get_outputs(self) -> list[SimpleNamespace]:
        return self._outputs

    def run(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None, *,
            keep_on_device: Collection[str] = ()) -> list[np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.input_names if n != "topk"]
            values = dict(zip(self.output_names, self.module(*args)))
            if "topk" in self.input_names:  # the exporter appends TopK to the decoder graph; same here
                k = int(np.asarray(feeds["topk"]).reshape(-1)[0])
                values["topk_log_probs"], values["topk_ids"] = torch.topk(values["log_probs"], k, dim=-1)
            return [values[n].numpy() for n in (outputs or self.output_names)]

    def describe(self) -> dict[str, Any]:
        torch = self._torch
        return {"engine": f"torch {torch.__version__} eager", "intra_op_num_threads": torch.get_num_threads(),
                "inter_op_num_threads": torch.get_num_interop_threads()}


def torch_translator(checkpoint: str | os.PathLike, artifact: str | os.PathLike, *, workers: int = 1,
                     max_batch_size: int | None = None, max_batch_tokens: int | None = None) -> Translator:
    """A `Translator` running the checkpoint's PyTorch modules; `artifact` (exported from the same
    checkpoint) supplies the tokenizers and decoding settings. Set torch's threads before calling."""
    from onnxpress.export.translator_graphs import BeamDecoderStep, EncoderGraph
    from onnxpress.runtime.loading import open_artifact, token_budget
    from onnxpress.runtime.parallel_runs import ParallelRuns
    from onnxpress.runtime.text_tokenizer import TextTokenizer
    from onnxpress.training.translator_checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    art = open_artifact(artifact, TASK)
    manifest = art.manifest
    source = art.file(manifest.tokenizers["source"])
    encoder = TorchGraph(EncoderGraph(loaded.model), ENCODER_INPUTS, ENCODER_OUTPUTS)
    decoder = TorchGraph(BeamDecoderStep(loaded.model), DECODER_INPUTS, DECODER_OUTPUTS,
                         vocab=int(loaded.config.tgt_vocab_size))
    budget = token_budget(max_batch_tokens, max_batch_size, DEFAULT_MAX_BATCH_TOKENS, CPU_MAX_BATCH_SIZE)
    return Translator(art, "pytorch", encoder, decoder,  # type: ignore[arg-type]
                      TextTokenizer(source, manifest.max_length, pad_id=manifest.extra.get("pad_id", 0)),
                      art.file(manifest.tokenizers["target"]), budget, source_path=source, runs=ParallelRuns(workers))
