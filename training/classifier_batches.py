"""Batches for classifier training: token ids, the (resumable) batch order, padding."""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch


def encode(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to `max_length` (special tokens included), unpadded."""
    return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int,
                  group_by_length: bool = False) -> list[np.ndarray]:
    """The batches (row indices) of one epoch; a pure function of (seed, epoch), so resuming is exact.

    With `group_by_length`, rows are sorted by length within shuffled windows of 64 batches, so
    a batch holds similar lengths (little padding); the batch order is shuffled again.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if group_by_length:
        window = batch_size * 64
        lengths_arr = np.asarray(lengths)
        order = np.concatenate([w[np.argsort(-lengths_arr[w], kind="stable")]
                                for w in np.array_split(order, range(window, len(order), window))])
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def batch_stream(lengths: list[int], batch_size: int, seed: int, group_by_length: bool,
                 start_step: int) -> Iterator[np.ndarray]:
    """Batches forever, epoch after epoch, beginning at global step `start_step`."""
    steps_per_epoch = math.ceil(len(lengths) / batch_size)
    epoch, offset = divmod(start_step, steps_per_epoch)
    while True:
        yield from epoch_batches(lengths, batch_size, seed, epoch, group_by_length)[offset:]
        epoch, offset = epoch + 1, 0


def collate(seqs: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest sequence in the batch, with the attention mask the seed forgot."""
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        input_ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        attention_mask[i, :len(s)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "token_type_ids": torch.zeros_like(input_ids)}
