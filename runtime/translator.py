"""Translation on an onnxpress artifact: `Translator.load(...).translate(texts)`.

The artifact holds two graphs (written by `onnxpress export translator`):

- `encoder`: src_ids, src_mask int64 [batch, src_len] -> encoder_states [batch, src_len, E],
  keys [batch, src_len, A] (the attention's U·h, computed once per sentence), hidden [batch, H]
- `decoder_step`: prev_tokens int64 [batch, beam], hidden [batch, beam, H], encoder_states,
  keys, src_mask, topk int64 [1] -> log_probs [batch, beam, V], new_hidden [batch, beam, H],
  attention [batch, beam, src_len], topk_log_probs / topk_ids [batch, beam, topk]

The decoder has a beam axis, so all beams of a sentence read the same encoder states: they
are computed once per batch and fed to every step as they are (kept on the device with IO
binding on GPU), and shrink only when finished sentences leave the batch. The search itself
(greedy and beam, numpy) lives in `onnxpress.runtime.beam_search`.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from onnxpress.errors import UserError
from onnxpress.runtime.artifact import Artifact
from onnxpress.runtime.token_budget import Batch, TokenBudget
from onnxpress.runtime.devices import Accelerators
from onnxpress.runtime.engine import Engine, EngineConfig
from onnxpress.runtime.gpu_check import compare_translations, ensure_gpu_checked
from onnxpress.runtime.beam_search import Hypothesis, beam_search, check_beam_size, greedy_search
from onnxpress.runtime.loading import (
    OpenedVariant, choose_for, engine_config, open_artifact, open_variant, token_budget,
)
from onnxpress.runtime.parallel_runs import ParallelRuns, runs_for
from onnxpress.runtime.tensorrt import graph_inputs
from onnxpress.runtime.text_tokenizer import Encoded, TextTokenizer, check_texts, is_blank

TASK = "translation"
ENCODER_INPUTS = ("src_ids", "src_mask")
ENCODER_OUTPUTS = ("encoder_states", "keys", "hidden")
DECODER_INPUTS = ("prev_tokens", "hidden", "encoder_states", "keys", "src_mask", "topk")
DECODER_OUTPUTS = ("log_probs", "new_hidden", "attention", "topk_log_probs", "topk_ids")
# what the search reads each step: the k best continuations per beam, never the full vocabulary
STEP_OUTPUTS = ("topk_log_probs", "topk_ids", "new_hidden", "attention")

# Decoder rows = sentences x beams; on 2 CPU cores more rows stop paying off quickly.
CPU_MAX_BATCH_SIZE = 64
GPU_MAX_BATCH_SIZE = 256
DEFAULT_MAX_BATCH_TOKENS = 4096
# TensorRT profiles cover beams 1..MAX_PROFILE_BEAM; a wider beam makes ORT build another engine.
MAX_PROFILE_BEAM = 8


@dataclass
class Translation:
    """One translated sentence.

    tokens: the generated target subwords, ending with "</s>" when the model ended the sentence;
    token_ids: their ids without </s> (what `text` decodes); score: the summed log-probability
    divided by length ** length_penalty (what the search ranked by); attention [len(tokens),
    len(source_tokens)]: one row per output token over the real source tokens (</s> included),
    when asked for. The same layout as `onnxpress.training.decoding.Translation`.
    """

    text: str
    tokens: list[str]
    token_ids: list[int]
    score: float
    attention: np.ndarray | None = None
    source_tokens: list[str] | None = None
    truncated: bool = False  # the source was cut at max_length
    finished: bool = True  # False: stopped by the length bound before </s>


class _StepDecoder:
    """`StepDecoder` over the decoder_step engine for one batch of sentences.

    With IO binding the encoder states stay on the device across steps (OrtValues): only the
    small per-step tensors cross, and dropping finished sentences re-uploads the states once.
    The outputs come back to the host because the search (top-k, beams) runs in numpy.
    """

    def __init__(self, engine: Engine, states: Any, keys: Any, mask: np.ndarray, vocab: int):
        self.engine, self.vocab = engine, vocab
        self.resident = not isinstance(states, np.ndarray)
        self.states, self.keys, self.mask = states, keys, self._place(mask)

    def _place(self, array: np.ndarray) -> Any:
        return self.engine.to_device(array) if self.resident else array

    def _host(self, value: Any) -> np.ndarray:
        return value.numpy() if self.resident else value

    def step(self, prev_tokens: np.ndarray, hidden: np.ndarray, k: int):
        return self.engine.run(
            {"prev_tokens": prev_tokens, "hidden": hidden, "encoder_states": self.states,
             "keys": self.keys, "src_mask": self.mask, "topk": _topk_feed(min(k, self.vocab))},
            STEP_OUTPUTS,
        )

    def keep(self, sentences: np.ndarray) -> None:
        self.states, self.keys, self.mask = (self._place(self._host(v)[sentences])
                                             for v in (self.states, self.keys, self.mask))


@functools.lru_cache(maxsize=64)
def _topk_feed(k: int) -> np.ndarray:
    """The decoder's `topk` input, made once per k (read-only: shared by every step and thread)."""
    feed = np.array([k], dtype=np.int64)
    feed.flags.writeable = False
    return feed


def tokenizer_files(artifact: Artifact) -> tuple[str, str]:
    """The manifest's (source, target) tokenizer file names."""
    toks = artifact.manifest.tokenizers
    src_name, tgt_name = toks.get("source", toks.get("joint")), toks.get("target", toks.get("joint"))
    if not src_name or not tgt_name:
        raise UserError(f"manifest of {artifact.root} must name 'source' and 'target' tokenizers "
                        f"(has {sorted(toks)}); re-export the artifact")
    return src_name, tgt_name


def source_tokenizer(artifact: Artifact, path: Path | None = None) -> TextTokenizer:
    """The source-side tokenizer as the translator reads it (truncating at the manifest's max_length)."""
    manifest = artifact.manifest
    path = path or artifact.file(tokenizer_files(artifact)[0])
    return TextTokenizer(path, manifest.max_length, pad_id=manifest.extra.get("pad_id", 0))


class Translator:
    """A loaded translator: two shared ONNX Runtime sessions; `translate` is thread-safe.

    Sources are tokenized in one batch call, sorted by length, packed into batches (at most
    `max_batch_size` sentences and `max_batch_tokens` padded source tokens), decoded batch by
    batch, and returned in input order.
    """

    def __init__(self, artifact: Artifact, variant: str, encoder: Engine, decoder: Engine,
                 source: TextTokenizer, target_path: str | os.PathLike, budget: TokenBudget,
                 source_path: str | os.PathLike | None = None, runs: ParallelRuns | None = None):
        from tokenizers import Tokenizer

        extra = artifact.manifest.extra
        self.artifact = artifact
        self.variant = variant
        self.encoder = encoder
        self.decoder = decoder
        self.device = encoder.device
        self.source = source
        self.target = Tokenizer.from_file(str(target_path))
        self._source_path = source_path
        self._source_vocab: Tokenizer | None = None
        self.budget = budget
        self.runs = runs or ParallelRuns(1)  # independent batches decoded side by side
        try:
            self.bos_id = int(extra["bos_id"])
            self.eos_id = int(extra["eos_id"])
            self.max_target_length = int(extra.get("max_target_length", 128))
            self.max_length_ratio = float(extra.get("max_length_ratio", 2.0))
            self.max_length_offset = int(extra.get("max_length_offset", 10))
            self.length_penalty = float(extra.get("length_penalty", 1.0))
            self.default_beam = int(extra.get("beam_size", 4))
        except KeyError as exc:
            raise UserError(f"manifest of {artifact.root} lacks extra.{exc.args[0]}; re-export the artifact") from None
        except (TypeError, ValueError) as exc:
            raise UserError(f"manifest of {artifact.root} has a malformed decoding setting in extra ({exc}); "
                            "re-export the artifact") from None
        for engine, names, what in ((encoder, ENCODER_INPUTS, "encoder"), (decoder, DECODER_INPUTS, "decoder_step")):
            if sorted(engine.input_names) != sorted(names):
                raise UserError(f"{what} graph takes {engine.input_names}, expected {list(names)}")
        self._bound = encoder.io_binding
        self.vocab = _vocab_size(artifact, decoder, self.target)
        self._eos_token = self.target.id_to_token(self.eos_id) or "</s>"
        self._target_tokens = [self.target.id_to_token(i) for i in range(self.target.get_vocab_size())]

    # -- loading -------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        variant: str = "auto",
        device: str = "auto",
        threads: int | None = None,
        *,
        accelerators: Accelerators | None = None,
        gpu_check: bool = True,
        **options: Any,
    ) -> "Translator":
        """Open a translation artifact and start its two sessions.

        variant: "auto" or a name from the manifest (int8 on CPU, fp16 on CUDA by default);
        device: "auto", "cpu", "cuda", "tensorrt"; threads: the CPU thread budget (None: one per core),
        shared by the batches decoded at once (`workers`). `options` are those of `open`
        (max_batch_size, max_batch_tokens, io_binding, mem_arena, session_config, verify: the sha256
        of every file is checked before ONNX Runtime sees it; workers: batches decoded in parallel
        on CPU, "auto" by model size). A variant validated only on CPU
        is checked against the artifact's reference sample (greedy) on first GPU load.
        """
        artifact = open_artifact(path, TASK)
        variant, device = choose_for(artifact, variant, device, accelerators)
        translator = cls.open(artifact, variant, device, threads, **options)
        if gpu_check:
            ensure_gpu_checked(translator, translator.greedy_outputs, compare_translations,
                               translator.encoder.providers)
        return translator

    @classmethod
    def open(cls, artifact: str | os.PathLike | Artifact, variant: str, device: str,
             threads: int | None = None, *, max_batch_size: int | None = None,
             max_batch_tokens: int | None = None, io_binding: bool | None = None, mem_arena: bool = True,
             session_config: dict[str, str] | None = None, verify: bool = True,
             workers: int | str = "auto") -> "Translator":
        """Serve `variant` on `device` exactly as given: no auto choice and no device check
        (export validation runs any variant on CPU through this). workers: batches decoded in
        parallel on CPU, sharing `threads` (`parallel_runs.split_threads`; "auto" by model size);
        session_config: extra onnxruntime session config entries for both graphs."""
        opened = open_variant(open_artifact(artifact, TASK), variant, device, ("encoder", "decoder_step"), verify)
        runs, threads = runs_for(device, threads, opened.models["decoder_step"], opened.spec.precision, workers)
        src_name, tgt_name = tokenizer_files(opened.artifact)
        src_path, tgt_path = opened.file(src_name), opened.file(tgt_name)
        source = source_tokenizer(opened.artifact, src_path)
        budget = token_budget(max_batch_tokens, max_batch_size, DEFAULT_MAX_BATCH_TOKENS,
                              GPU_MAX_BATCH_SIZE if device != "cpu" else CPU_MAX_BATCH_SIZE)
        encoder, decoder = (
            Engine(opened.models[role], engine_settings(opened, role, threads, budget, io_binding, mem_arena,
                                                        session_config))
            for role in ("encoder", "decoder_step")
        )
        return cls(opened.artifact, variant, encoder, decoder, source, tgt_path, budget, source_path=src_path,
                   runs=runs)

    # -- translation ---------------------------------------------------------------
    def greedy_outputs(self, texts: Sequence[str]) -> list[tuple[list[int], float]]:
        """(token ids without </s>, summed log-probability) of the greedy search per text: what the
        GPU self-check compares with PyTorch's greedy decode."""
        hyps = self.search(self.source.encode(check_texts(texts), with_type_ids=False), beam_size=1)
        return [(list(h.tokens), float(h.log_prob)) for h in hyps]

    def translate(
        self,
        texts: Sequence[str],
        beam_size: int | None = None,
        return_attention: bool = False,
        *,
        length_penalty: float | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> list[Translation]:
        """Translate `texts` (in input order). beam_size 1 is greedy; None: the artifact's default.

        A blank text (no visible character) gives an empty translation without running the model. `on_batch(sentences,
        padded source tokens)` is called as each batch starts, on the thread that decodes it (the
        batcher's metrics); an exception it raises stops the translation there and propagates (the
        batcher stops a group whose callers' deadlines have all passed).
        """
        texts = check_texts(texts)
        beam = check_beam_size(self.default_beam if beam_size is None else beam_size)
        results: list[Translation | None] = [None] * len(texts)
        todo = [i for i, t in enumerate(texts) if not is_blank(t)]
        for i in set(range(len(texts))) - set(todo):
            results[i] = Translation(text="", tokens=[], token_ids=[], score=0.0,
                                     attention=np.zeros((0, 0), np.float32) if return_attention else None,
                                     source_tokens=[] if return_attention else None)
        if todo:
            encoded = self.source.encode([texts[i] for i in todo], with_type_ids=False)
            hyps = self.search(encoded, beam, return_attention, length_penalty, on_batch)
            detok = self.target.decode_batch([h.tokens for h in hyps], skip_special_tokens=True)
            for j, (i, hyp, text) in enumerate(zip(todo, hyps, detok)):
                attention = source_tokens = None
                if return_attention:
                    src_ids = encoded.ids[encoded.offsets[j]:encoded.offsets[j + 1]]
                    source_tokens = self._source_tokens(src_ids)
                    attention = np.ascontiguousarray(hyp.attention[:, : len(src_ids)])
                tokens = [self._token(t) for t in hyp.tokens] + ([self._eos_token] if hyp.finished else [])
                results[i] = Translation(
                    text=text, tokens=tokens, token_ids=hyp.tokens,
                    score=hyp.score, attention=attention, source_tokens=source_tokens,
                    truncated=bool(encoded.truncated[j]), finished=hyp.finished,
                )
        return results  # type: ignore[return-value]

    def search(self, encoded: Encoded, beam_size: int = 1, return_attention: bool = False,
               length_penalty: float | None = None,
               on_batch: Callable[[int, int], None] | None = None) -> list[Hypothesis]:
        """Hypotheses for pre-tokenized sources, in their order (length-bucketed batches)."""
        out: list[Hypothesis | None] = [None] * len(encoded)
        penalty = self.length_penalty if length_penalty is None else float(length_penalty)
        batches = list(self.budget.plan(encoded.lengths))

        def decode(batch: Batch) -> list[Hypothesis]:
            if on_batch is not None:
                on_batch(batch.size, batch.tokens)
            return self.search_batch(encoded, batch.indices, batch.length, beam_size, return_attention, penalty)

        decoded = self.runs.map(decode, batches)
        for batch, hyps in zip(batches, decoded):
            for i, hyp in zip(batch.indices, hyps):
                out[i] = hyp
        return out  # type: ignore[return-value]

    def max_lengths(self, src_lengths: np.ndarray) -> np.ndarray:
        """Bound on generated tokens (</s> included) per sentence: ratio * source + offset, capped."""
        bound = np.floor(self.max_length_ratio * src_lengths).astype(np.int64) + self.max_length_offset
        return np.minimum(bound, self.max_target_length)

    def search_batch(self, encoded: Encoded, rows: np.ndarray, length: int, beam_size: int,
                     return_attention: bool, length_penalty: float) -> list[Hypothesis]:
        """Encode one batch and decode it: one encoder run, then one decoder run per step."""
        src_ids, mask, _ = encoded.pad(rows, length, self.source.pad_id)
        decoder, hidden = self._start(src_ids, mask)
        max_lengths = self.max_lengths(encoded.lengths[rows])
        if beam_size == 1:
            return greedy_search(decoder, hidden, max_lengths, self.bos_id, self.eos_id,
                                 return_attention=return_attention, length_penalty=length_penalty)
        return beam_search(decoder, hidden, max_lengths, self.bos_id, self.eos_id, beam_size,
                           return_attention=return_attention, length_penalty=length_penalty)

    def _start(self, src_ids: np.ndarray, mask: np.ndarray) -> tuple[_StepDecoder, np.ndarray]:
        keep = ("encoder_states", "keys") if self._bound else ()
        states, keys, hidden = self.encoder.run({"src_ids": src_ids, "src_mask": mask}, ENCODER_OUTPUTS,
                                                keep_on_device=keep)
        return _StepDecoder(self.decoder, states, keys, mask, self.vocab), hidden

    def _token(self, token_id: int) -> str | None:
        vocab = self._target_tokens
        return vocab[token_id] if 0 <= token_id < len(vocab) else self.target.id_to_token(token_id)

    def _source_tokens(self, ids: np.ndarray) -> list[str]:
        if self._source_vocab is None:
            from tokenizers import Tokenizer

            self._source_vocab = Tokenizer.from_file(str(self._source_path))
        return [self._source_vocab.id_to_token(int(i)) for i in ids]

    def describe(self) -> dict[str, Any]:
        return {
            "artifact": str(self.artifact.root), "variant": self.variant, "device": self.device,
            "max_length": self.source.max_length, "max_target_length": self.max_target_length,
            "max_batch_size": self.budget.max_batch_size, "max_batch_tokens": self.budget.max_batch_tokens,
            "beam_size": self.default_beam, "length_penalty": self.length_penalty,
            "parallel_batches": self.runs.workers, **self.encoder.describe(),
        }

    def __repr__(self) -> str:
        return f"Translator({str(self.artifact.root)!r}, variant={self.variant!r}, device={self.device!r})"


def engine_settings(opened: OpenedVariant, role: str, threads: int | None, budget: TokenBudget,
                    io_binding: bool | None, mem_arena: bool,
                    session_config: dict[str, str] | None = None) -> EngineConfig:
    """Engine settings of the encoder or decoder_step graph; on TensorRT, optimization profiles
    from the batch plan: sentences 1..max_batch_size, source tokens 1..max_length, beams
    1..MAX_PROFILE_BEAM (static widths read from the graph)."""
    if opened.device != "tensorrt":
        return engine_config(opened, threads, role=role, io_binding=io_binding, mem_arena=mem_arena,
                             session_config=session_config)
    default_beam = int(opened.artifact.manifest.extra.get("beam_size", 4))
    beam = (1, min(max(default_beam, 1), MAX_PROFILE_BEAM), MAX_PROFILE_BEAM)
    return engine_config(opened, threads, role=role, io_binding=io_binding, mem_arena=mem_arena, budget=budget,
                         session_config=session_config, profile_inputs=graph_inputs(opened.models[role]),
                         profile_dims={"beam": beam})


def _vocab_size(artifact: Artifact, decoder: Engine, target: Any) -> int:
    """Target vocabulary size: the decoder's static log_probs width, else the manifest, else the tokenizer."""
    for out in decoder.session.get_outputs():
        if out.name == "log_probs" and isinstance(out.shape[-1], int):
            return int(out.shape[-1])
    for spec in artifact.manifest.outputs:
        if spec.name == "log_probs" and isinstance(spec.shape[-1], int):
            return int(spec.shape[-1])
    return int(target.get_vocab_size())
