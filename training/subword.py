"""Subword tokenizers for the translator, trained with the `tokenizers` library.

One BPE tokenizer per language, trained on the training split only. Text is NFC-normalized
and whitespace-collapsed, split on spaces with the Metaspace scheme (a word start is marked
by "▁") and punctuation is isolated, so `decode(ids)` gives natural, detokenized text.
The source tokenizer appends `</s>` itself (a post-processor), so `encode(text).ids` is
exactly the encoder input; the target tokenizer adds nothing.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)  # ids 0..3 in every tokenizer trained here


def train_bpe(lines: Iterable[str], vocab_size: int, min_frequency: int = 2, append_eos: bool = False) -> Tokenizer:
    """Train a BPE tokenizer on `lines`; special tokens get ids pad=0, unk=1, bos=2, eos=3."""
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"), pre_tokenizers.Punctuation("isolated")]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    tok.train_from_iterator(lines, trainer=trainer)
    if append_eos:
        eos_id = tok.token_to_id(EOS)
        tok.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, eos_id)])
    return tok


def special_ids(tok: Tokenizer) -> dict[str, int]:
    """{"pad": 0, "unk": 1, "bos": 2, "eos": 3}, read from the tokenizer (checked, not assumed)."""
    ids = {name: tok.token_to_id(token) for name, token in zip(("pad", "unk", "bos", "eos"), SPECIAL_TOKENS)}
    missing = [name for name, i in ids.items() if i is None]
    if missing:
        raise ValueError(f"tokenizer lacks special tokens: {missing}")
    return ids


def save(tok: Tokenizer, path: str | Path) -> None:
    tok.save(str(path))


def load(path: str | Path) -> Tokenizer:
    return Tokenizer.from_file(str(path))
