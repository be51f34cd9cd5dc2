"""Fast-tokenizer wrapper: batch encoding to flat numpy arrays, truncation that is reported.

Encodings are kept flat (all ids concatenated plus row offsets) so that any subset of rows
can be packed into a padded batch with a few numpy operations, in any order the batch
planner chooses. Ids are held as int32 (every vocabulary fits) and widened to the models'
int64 only in the padded batch: the 7,600 AG News test texts then hold 3 MB of ids instead of 6.
"""
from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from itertools import chain
from typing import Sequence

import numpy as np

from onnxpress.errors import UserError

ENCODE_SLICE = 512
TOKEN_DTYPE = np.int32  # storage; padded batches are int64, as the models take them


# Characters that show nothing: controls (NUL...), format characters (zero-width space, BOM, soft
# hyphen...) and separators. BERT's tokenizer drops them all, so a text of only these would be
# classified as if it were empty. (A few format characters do show, e.g. the Arabic number signs
# U+0600-U+0605; a text of nothing but those counts as blank too.)
_INVISIBLE = frozenset(("Cc", "Cf", "Zs", "Zl", "Zp"))


def is_blank(text: str) -> bool:
    """True when `text` has no visible character (empty, whitespace, NUL, zero-width or BOM only).
    Stops at the first visible character; a blank text is walked whole (callers bound its length)."""
    return all(unicodedata.category(c) in _INVISIBLE for c in text.strip())


def check_texts(texts: Sequence[object]) -> list[str]:
    """The texts as a list, or `TypeError` naming the first item that is not a str."""
    if isinstance(texts, str):
        raise TypeError("expected a list of texts, got a single str (wrap it in a list)")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
    return texts


@dataclass
class Encoded:
    """Token ids of n texts, flat: row i is ids[offsets[i]:offsets[i+1]]."""

    ids: np.ndarray  # TOKEN_DTYPE [total_tokens]
    type_ids: np.ndarray | None  # TOKEN_DTYPE [total_tokens], None when not requested
    offsets: np.ndarray  # int64 [n + 1]
    truncated: np.ndarray  # bool [n]: the text was longer than max_length

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def concat(cls, parts: Sequence["Encoded"]) -> "Encoded":
        """Rows of several Encoded one after another (a server merging queued requests)."""
        if not parts:
            return cls(np.zeros(0, TOKEN_DTYPE), None, np.zeros(1, np.int64), np.zeros(0, bool))
        lengths = np.concatenate([p.lengths for p in parts])
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        with_types = all(p.type_ids is not None for p in parts)
        return cls(
            ids=np.concatenate([p.ids for p in parts]),
            type_ids=np.concatenate([p.type_ids for p in parts]) if with_types else None,
            offsets=offsets,
            truncated=np.concatenate([p.truncated for p in parts]),
        )

    def take(self, rows: np.ndarray) -> "Encoded":
        """A new Encoded holding `rows` only, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = _gather_index(self.offsets, rows, lengths)
        return Encoded(
            ids=self.ids[gather],
            type_ids=None if self.type_ids is None else self.type_ids[gather],
            offsets=offsets,
            truncated=self.truncated[rows],
        )

    def pad(self, rows: np.ndarray, length: int, pad_id: int, batch_size: int | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(input_ids, attention_mask, token_type_ids) int64 [batch, length] for `rows`.

        `batch_size` > len(rows) appends dummy rows (one real token each) for fixed-shape buckets.
        """
        rows = np.asarray(rows, dtype=np.int64)
        n = batch_size or len(rows)
        lengths = self.lengths[rows]
        filled = np.zeros((n, length), dtype=bool)
        filled[: len(rows)] = np.arange(length)[None, :] < lengths[:, None]
        mask = filled.astype(np.int64)
        # filler rows and empty rows get one attended (pad) token: an all-masked row can give NaN
        mask[len(rows):, 0] = 1
        mask[np.flatnonzero(lengths == 0), 0] = 1
        gather = _gather_index(self.offsets, rows, lengths)
        input_ids = np.full((n, length), pad_id, dtype=np.int64)
        input_ids[filled] = self.ids[gather]
        type_ids = None
        if self.type_ids is not None:
            type_ids = np.zeros((n, length), dtype=np.int64)
            type_ids[filled] = self.type_ids[gather]
        return input_ids, mask, type_ids


def _gather_index(offsets: np.ndarray, rows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat positions of the tokens of `rows`, row after row (vectorized ragged arange)."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = offsets[rows]
    row_start_in_out = np.cumsum(lengths) - lengths
    # position within its row for every output token, then shift by the row's source start
    within = np.arange(total, dtype=np.int64) - np.repeat(row_start_in_out, lengths)
    return np.repeat(starts, lengths) + within


class TextTokenizer:
    """A `tokenizers.Tokenizer` from an artifact, set to truncate at `max_length` and not pad."""

    def __init__(self, path: str | os.PathLike, max_length: int, pad_id: int | None = None):
        from tokenizers import Tokenizer

        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exception
            raise UserError(f"cannot load tokenizer {path}: {str(exc)[:200]}; re-export the artifact") from None
        padding = self._tok.padding  # read before disabling: exported tokenizers carry their pad id
        if pad_id is None:
            pad_id = padding["pad_id"] if padding else self._tok.token_to_id("[PAD]")
        if pad_id is not None and (isinstance(pad_id, bool) or not isinstance(pad_id, int) or pad_id < 0):
            raise UserError(f"pad token id {pad_id!r} for {path} is not a token id; re-export the artifact")
        self.pad_id = int(pad_id or 0)
        self.max_length = int(max_length)
        self._tok.no_padding()
        self._tok.enable_truncation(self.max_length)

    def encode(self, texts: Sequence[str], with_type_ids: bool = True) -> Encoded:
        """Encode a batch (texts must already be validated str).

        Works in slices of ENCODE_SLICE texts: a `tokenizers.Encoding` carries tokens, offsets
        and masks (kilobytes each), so holding all of them at once would dominate peak memory;
        only the flat id arrays are kept.
        """
        texts = list(texts)
        if len(texts) > ENCODE_SLICE:
            return Encoded.concat([self._encode(texts[i : i + ENCODE_SLICE], with_type_ids)
                                   for i in range(0, len(texts), ENCODE_SLICE)])
        return self._encode(texts, with_type_ids)

    def _encode(self, texts: list[str], with_type_ids: bool) -> Encoded:
        # `_fast`: no character offsets (nothing here reads them); the same ids, type ids and
        # truncation, 7-11% less tokenizing CPU (benchmarks/README.md, "Runtime session settings")
        encodings = self._tok.encode_batch_fast(texts, add_special_tokens=True)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        offsets = np.zeros(len(encodings) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        total = int(offsets[-1])
        ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), dtype=TOKEN_DTYPE, count=total)
        type_ids = None
        if with_type_ids:
            type_ids = np.fromiter(chain.from_iterable(e.type_ids for e in encodings), dtype=TOKEN_DTYPE, count=total)
        truncated = np.fromiter((bool(e.overflowing) for e in encodings), dtype=bool, count=len(encodings))
        return Encoded(ids=ids, type_ids=type_ids, offsets=offsets, truncated=truncated)
