"""Predictions of a classifier under training, for its test-set evaluation."""
from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from onnxpress.training.classifier_batches import collate
from onnxpress.training.device import autocast


@torch.inference_mode()
def predict(model: nn.Module, seqs: list[list[int]], pad_id: int, batch_size: int = 64,
            device: torch.device | str = "cpu", progress: bool = True) -> list[int]:
    """Argmax class per sequence; batches are length-sorted so padding stays small."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    preds = [0] * len(seqs)
    for start in tqdm(range(0, len(order), batch_size), desc="eval", unit="batch",
                      disable=not progress, leave=False):
        idx = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate([seqs[i] for i in idx], pad_id).items()}
        with autocast(device):
            logits = model(**batch).logits
        for i, p in zip(idx, logits.argmax(-1).tolist()):
            preds[i] = p
    model.train(was_training)
    return preds
