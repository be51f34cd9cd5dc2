"""Classifier models: the standard CLS+pooler head and a mean-pooling head.

Both are ordinary Hugging Face `PreTrainedModel`s, so checkpoints are standard
`save_pretrained` directories; `load_classifier` picks the class from `config.architectures`.
Every model's forward takes (input_ids, attention_mask, token_type_ids) and returns logits
in `.logits`, which is all export needs.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from onnxpress.errors import UserError

POOLINGS = ("mean", "cls")


class BertForMeanPooledClassification(BertPreTrainedModel):
    """BERT encoder, masked mean over token states, dropout, linear head.

    all-MiniLM-L6-v2 was trained with mean pooling, so its CLS/pooler weights are untrained
    for this purpose; averaging the token states uses what the encoder actually learned.
    """

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.classifier_dropout or config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **_):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        logits = self.classifier(self.dropout(pooled))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def build_classifier(base: str | Path, labels: list[str], pooling: str = "mean") -> nn.Module:
    """A fresh classifier on top of the pretrained encoder at `base` (a checkpoint dir or hub name)."""
    if pooling not in POOLINGS:
        raise UserError(f"unknown pooling {pooling!r} (choose from {', '.join(POOLINGS)})")
    id2label = dict(enumerate(labels))
    kwargs = dict(num_labels=len(labels), id2label=id2label, label2id={v: k for k, v in id2label.items()})
    if pooling == "cls":
        return AutoModelForSequenceClassification.from_pretrained(base, **kwargs)
    config = AutoConfig.from_pretrained(base, **kwargs)
    if config.model_type != "bert":
        raise UserError(f"mean pooling supports BERT encoders; {base} is {config.model_type!r} (use --pooling cls)")
    return BertForMeanPooledClassification.from_pretrained(base, config=config)


def load_classifier(path: str | Path) -> nn.Module:
    """Load a trained classifier checkpoint (either head) in eval mode."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a model checkpoint (no config.json)")
    try:
        config = AutoConfig.from_pretrained(path)
        if BertForMeanPooledClassification.__name__ in (config.architectures or []):
            model = BertForMeanPooledClassification.from_pretrained(path)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load classifier from {path}: {exc}") from None
    return model.eval()
