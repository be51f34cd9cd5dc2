"""Export of a tiny trained BERT classifier: every variant, the manifest, parity, the gate."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from export_fixtures import LABELS, MAX_LENGTH, options
from onnxpress.errors import UserError
from onnxpress.export.classifier import VARIANTS, export_classifier
from onnxpress.export.optimize import count_ops
from onnxpress.runtime.artifact import Artifact, sha256_file
from onnxpress.runtime.int8_gemm import int8_kernel

ALL = list(VARIANTS)


def torch_logits(checkpoint: Path, texts: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoTokenizer

    from onnxpress.training.modeling import load_classifier

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    enc = tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    with torch.inference_mode():
        return load_classifier(checkpoint)(**enc).logits.numpy()


def test_every_variant_is_servable_and_files_match_manifest(artifact):
    out, result = artifact
    art = Artifact.open(out)
    assert sorted(art.servable_variants()) == sorted(ALL)
    for name in ALL:
        variant = art.variant(name)
        path = art.file(variant.files["model"])  # checks size and sha256
        entry = art.manifest.files[variant.files["model"]]
        assert entry["sha256"] == sha256_file(path) and entry["size"] == path.stat().st_size
        assert variant.opset >= 17
        assert variant.method["attempts"][-1]["passed"]
        assert variant.metrics["accuracy_drop_points"] <= 0.5
    assert set(art.manifest.files) >= {"tokenizer.json", "config.json", "model.onnx", "model.int8.onnx",
                                       "model.int8-static.onnx", "model.fp16.onnx"}
    assert not list(out.parent.glob(".clf.*")), "staging directories left behind"


def test_manifest_describes_the_model(artifact, tiny_checkpoint):
    out, _ = artifact
    m = Artifact.open(out).manifest
    assert m.task == "text-classification" and m.labels == LABELS and m.max_length == MAX_LENGTH
    assert [(t.name, t.dtype, t.shape) for t in m.inputs] == [
        (n, "int64", ["batch", "sequence"]) for n in ("input_ids", "attention_mask", "token_type_ids")]
    assert [(t.name, t.dtype, t.shape) for t in m.outputs] == [("logits", "float32", ["batch", len(LABELS)])]
    assert m.tokenizers == {"text": "tokenizer.json"}
    assert m.extra["pad_token_id"] == 0 and m.extra["uses_token_type_ids"] is True
    assert "onnxruntime" in m.versions and m.created
    assert m.variants["int8"].devices == ["cpu"] and m.variants["fp16"].devices == ["cuda"]
    assert m.variants["int8-static"].method["calibration_method"] == "minmax"
    assert m.variants["int8"].method["per_channel"] is True
    assert m.variants["int8"].parity["int8_gemm"] == int8_kernel() and "int8_gemm" not in m.variants["fp32"].parity
    # the copied tokenizer has the checkpoint's baked-in padding/truncation stripped
    tok = json.loads((out / "tokenizer.json").read_text())
    assert tok["padding"] is None and tok["truncation"] is None


def test_fp32_parity_and_fusion(artifact, tiny_checkpoint, eval_data):
    out, _ = artifact
    m = Artifact.open(out).manifest
    fp32 = m.variants["fp32"]
    assert fp32.parity["max_abs_diff"] <= 1e-4 and fp32.parity["argmax_agreement"] == 1.0
    fusion = fp32.method["fusion"]
    assert fusion["missing_fusions"] == {}
    ops = count_ops(out / "model.onnx")
    assert ops["Attention"] == 2 and ops["EmbedLayerNormalization"] == 1
    assert ops["LayerNormalization"] == 4 and "SkipLayerNormalization" not in ops and ops["BiasGelu"] == 2

    # independent of the exporter's own validation: runtime-style tokenization + ORT vs. HF + PyTorch
    import onnxruntime as ort
    from tokenizers import Tokenizer

    texts = eval_data[0][:16] + ["science " * 60]  # one text longer than max_length
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    tok.enable_truncation(m.max_length)
    tok.enable_padding(pad_id=m.extra["pad_token_id"])
    enc = tok.encode_batch(texts)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
             "token_type_ids": np.zeros_like(ids)}
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], feeds)[0]
    np.testing.assert_allclose(logits, torch_logits(tiny_checkpoint, texts), atol=1e-4)


def test_quantized_and_fp16_structure(artifact):
    out, _ = artifact
    m = Artifact.open(out).manifest
    dynamic_ops = count_ops(out / "model.int8-dynamic.onnx")
    assert dynamic_ops["QAttention"] == 2 and dynamic_ops["MatMulInteger"] > 0
    assert m.variants["int8-dynamic"].method["quantization"]["quantized_weight_nodes"] > 0
    # the CPU default is static (batch-invariant): the dynamic graph with frozen activation scales,
    # its attention split into int8 projections and the ONNX Attention op
    frozen_ops = count_ops(out / "model.int8.onnx")
    assert frozen_ops["QAttention"] == 0 and frozen_ops["Attention"] == 2 and frozen_ops["MatMulIntegerToFloat"] > 0
    assert m.variants["int8"].opset == 23 and m.variants["int8"].method["split_attention_nodes"] == 2
    assert frozen_ops["QuantizeLinear"] > 0 and frozen_ops["DynamicQuantizeLinear"] == 0
    qdq_ops = count_ops(out / "model.int8-static.onnx")
    assert qdq_ops["QuantizeLinear"] > 0 and qdq_ops["DequantizeLinear"] > 0
    for name in ("int8", "int8-static"):
        assert m.variants[name].method["kind"] == "static"
    assert m.variants["int8"].method["activation_type"] == "uint8"
    fp16 = m.variants["fp16"].method["structure"]
    assert fp16["float16_initializers"] > 0 and fp16["float_initializers"] == fp16["float16_initializers"]
    assert set(fp16["inputs"].values()) == {"int64"} and fp16["outputs"] == {"logits": "float32"}
    assert m.variants["fp16"].parity["argmax_agreement"] >= 0.99


def test_table_lists_every_variant(artifact):
    _, result = artifact
    table = result.table
    for name in ["pytorch", *ALL]:
        assert name in table
    assert "accuracy" in table and "agreement" in table and "status" in table


def test_broken_static_calibration_is_rejected(tiny_checkpoint, eval_data, tmp_path):
    """Calibrating on 2 tiny texts saturates activations: the gate must refuse the build."""
    out = tmp_path / "art"
    result = export_classifier(tiny_checkpoint, out, eval_texts=eval_data[0], eval_labels=eval_data[1],
                               calibration_texts=["the", "a day"],
                               options=options(variants=["fp32", "int8-static"], remedies=False))
    art = Artifact.open(out)
    static = art.manifest.variants["int8-static"]
    assert not static.servable and "accuracy drop" in static.reason
    assert static.files == {} and not (out / "model.int8-static.onnx").exists()
    assert static.method["attempts"][0]["metrics"]["accuracy_drop_points"] > 0.5
    assert art.servable_variants() == ["fp32"]
    with pytest.raises(UserError, match="not servable"):
        art.variant("int8-static")
    assert "rejected" in result.table


def test_remedy_ladder_is_tried_and_recorded(tiny_checkpoint, eval_data, tmp_path):
    out = tmp_path / "art"
    export_classifier(tiny_checkpoint, out, eval_texts=eval_data[0], eval_labels=eval_data[1],
                      calibration_texts=["the", "a day"], options=options(variants=["int8-static"], screen_rows=100))
    static = Artifact.open(out).manifest.variants["int8-static"]
    attempts = static.method["attempts"]
    assert attempts[0]["attempt"] == "minmax" and not attempts[0]["passed"]
    assert attempts[0]["metrics"]["rows"] == len(eval_data[0])  # the first attempt: full evaluation
    assert [a["attempt"] for a in attempts[:3]] == ["minmax", "percentile", "entropy"]
    for a in attempts[1:]:  # remedies: screened on 100 rows, full evaluation only if they pass there
        assert a["metrics"]["rows"] == (len(eval_data[0]) if a["passed"] else 100)
    if static.servable:  # a later remedy passed: it is the one recorded and written
        assert attempts[-1]["passed"] and static.method["attempt"] == attempts[-1]["attempt"]
        assert static.method["quantization"]["quantized_weight_nodes"] > 0
    else:
        assert all(not a["passed"] for a in attempts)


def test_gate_function():
    from onnxpress.export.gate import gate

    ok, reason = gate({"accuracy": 0.90, "argmax_agreement": 0.995}, 0.902, max_accuracy_drop=0.5)
    assert ok and reason is None
    ok, reason = gate({"accuracy": 0.89, "argmax_agreement": 0.995}, 0.902, max_accuracy_drop=0.5)
    assert not ok and "1.20 points" in reason
    ok, reason = gate({"accuracy": 0.90, "argmax_agreement": 0.97}, 0.90, max_accuracy_drop=0.5, min_agreement=0.99)
    assert not ok and "agreement" in reason


def test_manifest_stores_the_reference_sample_for_the_gpu_self_check(artifact):
    """Every variant says where it was validated, and the PyTorch sample the runtime re-checks on a GPU holds."""
    from onnxpress.runtime import Classifier
    from onnxpress.runtime.gpu_check import SAMPLE_KEY, compare_to_sample

    out, result = artifact
    sample = result.manifest.extra[SAMPLE_KEY]
    assert len(sample["texts"]) == len(sample["expected"]) > 0
    np.testing.assert_allclose(np.asarray(sample["expected"]).sum(axis=1), 1.0, atol=1e-5)
    assert all(v.parity["validated_on"] == ["CPUExecutionProvider"] for v in result.manifest.variants.values())
    fp32 = Classifier.load(out, variant="fp32", device="cpu", threads=1)
    check = compare_to_sample(fp32.predict_proba, sample)
    assert check["passed"] and check["max_abs_diff"] < 1e-4
