"""The shared quantization helpers on a fused tiny BERT: the shape-inference fix, calibration methods, fp16."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from export_fixtures import MAX_LENGTH, synthetic_texts
from onnxpress.export import quantize as q


@pytest.fixture(scope="module")
def graphs(tiny_checkpoint, tmp_path_factory):
    from onnxpress.export.onnx_export import export_classifier_onnx
    from onnxpress.export.optimize import fuse_transformer
    from onnxpress.training.modeling import load_classifier

    work = tmp_path_factory.mktemp("graphs")
    model = load_classifier(tiny_checkpoint)
    export_classifier_onnx(model, work / "raw.onnx")
    fuse_transformer(work / "raw.onnx", work / "fused.onnx", num_heads=2, hidden_size=32, num_layers=2)
    return work


@pytest.fixture(scope="module")
def feeds(tiny_checkpoint):
    from tokenizers import Tokenizer

    from onnxpress.export.classifier_validation import encode, make_batches

    tok = Tokenizer.from_file(str(tiny_checkpoint / "tokenizer.json"))
    ids = encode(tok, synthetic_texts(32, seed=5)[0], MAX_LENGTH)
    width = max(map(len, ids))
    return [b.feeds for b in make_batches(ids, ["input_ids", "attention_mask", "token_type_ids"], 0, 8, 8 * width,
                                          pad_to=width)]


def test_dynamic_on_fused_graph_needs_the_shape_fix(graphs, tmp_path):
    # Without quant_pre_process, ONNX shape inference cannot type the com.microsoft fused ops.
    with pytest.raises(Exception, match="data type|shape"):
        q.quantize_int8_dynamic(graphs / "fused.onnx", tmp_path / "bad.onnx", preprocess=False)
    method = q.quantize_int8_dynamic(graphs / "fused.onnx", tmp_path / "ok.onnx")
    assert method["per_channel"] is True and method["preprocess"].startswith("quant_pre_process")
    summary = q.quantization_summary(tmp_path / "ok.onnx")
    assert summary["ops"]["QAttention"] == 2 and summary["quantized_weight_nodes"] > 0


def _scales(path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.input[1]: inits[n.input[1]] for n in model.graph.node
            if n.op_type == "QuantizeLinear" and n.input[1] in inits}


def test_calibration_methods_give_different_ranges(graphs, feeds, tmp_path):
    scales = {}
    for method in ("minmax", "percentile", "entropy"):
        record = q.quantize_int8_static(graphs / "raw.onnx", tmp_path / f"{method}.onnx", q.FeedsReader(feeds),
                                        method=method, op_types=("MatMul", "Gather"))
        assert record["calibration_method"] == method and record["calibration_batches"] == len(feeds)
        scales[method] = _scales(tmp_path / f"{method}.onnx")
    assert scales["minmax"].keys() == scales["entropy"].keys() and scales["minmax"]
    for other in ("percentile", "entropy"):  # not silently MinMax again
        assert any(not np.allclose(scales["minmax"][k], scales[other][k]) for k in scales["minmax"])
    with pytest.raises(ValueError, match="unknown calibration method"):
        q.quantize_int8_static(graphs / "raw.onnx", tmp_path / "x.onnx", q.FeedsReader(feeds), method="kl")


def test_fp16_keeps_fp32_io(graphs, feeds, tmp_path):
    import onnxruntime as ort

    q.convert_fp16(graphs / "fused.onnx", tmp_path / "fp16.onnx")
    summary = q.float16_summary(tmp_path / "fp16.onnx")
    assert summary["float16_initializers"] == summary["float_initializers"] > 0
    assert summary["outputs"] == {"logits": "float32"}
    ref = ort.InferenceSession(str(graphs / "fused.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds[0])[0]
    out = ort.InferenceSession(str(tmp_path / "fp16.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds[0])[0]
    assert out.dtype == np.float32 and np.abs(out - ref).max() < 0.05


def test_failed_shape_inference_leaves_no_files_behind(tmp_path, monkeypatch):
    # An op no shape inference knows: onnxruntime's symbolic pass gives up ("Incomplete symbolic
    # shape inference") and, left alone, dumps its partial model into the current directory.
    from onnx import TensorProto, helper

    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Foo", ["x"], ["y"], domain="com.example"), helper.make_node("MatMul", ["y", "w"], ["z"])],
        "unknown-op", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)],
                              ir_version=9)
    src = tmp_path / "models" / "unknown-op.onnx"
    src.parent.mkdir()
    onnx.save(model, str(src))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    with pytest.raises(Exception, match="Incomplete symbolic shape inference"):
        q.shape_preprocess(src, tmp_path / "models" / "pre.onnx")
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in src.parent.iterdir()) == ["unknown-op.onnx"]
    assert cwd.samefile(".")  # the working directory is restored
