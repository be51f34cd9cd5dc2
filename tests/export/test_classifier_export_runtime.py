"""The exported artifact served by onnxpress's own torch-free runtime gives the checkpoint's predictions."""
from __future__ import annotations

import numpy as np
import pytest

from export_fixtures import MAX_LENGTH


def reference_probs(checkpoint, texts) -> np.ndarray:
    import torch
    from transformers import AutoTokenizer

    from onnxpress.training.modeling import load_classifier

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    enc = tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    with torch.inference_mode():
        return torch.softmax(load_classifier(checkpoint)(**enc).logits, -1).numpy()


@pytest.mark.parametrize("variant", ["fp32", "int8", "int8-static"])
def test_runtime_serves_the_export(artifact, tiny_checkpoint, eval_data, variant):
    from onnxpress.runtime.classifier import Classifier

    out, _ = artifact
    texts = eval_data[0][:64] + ["science " * 60]  # one text beyond max_length
    clf = Classifier.load(out, variant=variant, device="cpu", threads=1)
    probs = clf.predict_proba(texts)
    ref = reference_probs(tiny_checkpoint, texts)
    if variant == "fp32":
        np.testing.assert_allclose(probs, ref, atol=1e-4)
    else:
        assert (probs.argmax(1) == ref.argmax(1)).mean() >= 0.95
        assert np.abs(probs - ref).max() < 0.2
