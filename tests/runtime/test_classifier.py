import json
import threading

import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from runtime_fixtures import LABELS, MAX_LENGTH
from onnxpress.errors import UserError
from onnxpress.runtime import Classifier, Prediction
from onnxpress.runtime.token_budget import DEFAULT_MAX_BATCH_TOKENS
from onnxpress.runtime.devices import CPU_EP, CUDA_EP, TRT_EP, detect
from onnxpress.runtime.engine import Engine, EngineConfig

NO_GPU = detect([TRT_EP, CUDA_EP, CPU_EP], (False, "no NVIDIA GPU device (/dev/nvidia*) on this machine", False, "x"))
HAS_GPU = detect().cuda  # this machine: the CPU-only expectations and the GPU ones never both run
cpu_machine_only = pytest.mark.skipif(HAS_GPU, reason="expects a machine without a usable GPU")
gpu_machine_only = pytest.mark.skipif(not HAS_GPU, reason="needs a usable NVIDIA GPU")


def reference_probs(artifact_dir, model_file, texts):
    """One text per run, no padding at all: the ground truth batching must reproduce."""
    tok = Tokenizer.from_file(str(artifact_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_LENGTH)
    sess = ort.InferenceSession(str(artifact_dir / model_file), providers=[CPU_EP])
    names = {i.name for i in sess.get_inputs()}
    out = []
    for text in texts:
        enc = tok.encode(text)
        feeds = {"input_ids": np.array([enc.ids]), "attention_mask": np.array([enc.attention_mask]),
                 "token_type_ids": np.array([enc.type_ids])}
        logits = sess.run(None, {k: v.astype(np.int64) for k, v in feeds.items() if k in names})[0][0]
        e = np.exp(logits - logits.max())
        out.append(e / e.sum())
    return np.array(out)


@pytest.fixture(scope="module")
def fp32(artifact_dir):
    return Classifier.load(artifact_dir, variant="fp32", threads=1, accelerators=NO_GPU)


@pytest.mark.parametrize("tokens,size", [(4096, 64), (64, 8), (32, 1), (200, 3)])
def test_batched_matches_one_by_one(artifact_dir, texts, tokens, size):
    clf = Classifier.load(artifact_dir, variant="fp32", threads=1, max_batch_tokens=tokens, max_batch_size=size,
                          accelerators=NO_GPU)
    np.testing.assert_allclose(clf.predict_proba(texts), reference_probs(artifact_dir, "model.onnx", texts),
                               atol=2e-5)


def test_model_without_token_type_ids(artifact_no_tt, texts):
    clf = Classifier.load(artifact_no_tt, variant="fp32", threads=1, accelerators=NO_GPU)
    assert "token_type_ids" not in clf.engine.input_names
    np.testing.assert_allclose(clf.predict_proba(texts), reference_probs(artifact_no_tt, "model.onnx", texts),
                               atol=2e-5)


@cpu_machine_only
def test_auto_loads_int8_on_cpu_and_agrees_with_fp32(artifact_dir, texts, fp32):
    clf = Classifier.load(artifact_dir)  # real machine detection: no GPU here
    assert (clf.variant, clf.device) == ("int8", "cpu")
    agree = np.mean(clf.predict_proba(texts).argmax(1) == fp32.predict_proba(texts).argmax(1))
    assert agree > 0.9


def test_predictions_in_input_order_with_truncation_flags(fp32, texts):
    preds = fp32.predict(texts)
    probs = fp32.predict_proba(texts)
    assert len(preds) == len(texts)
    for p, row in zip(preds, probs):
        label, score = p  # unpacks as (label, score)
        assert isinstance(p, Prediction) and label == LABELS[row.argmax()] and score == pytest.approx(row.max())
    long_text = " ".join(["market"] * (MAX_LENGTH + 5))
    short, long = fp32.predict(["stocks rally", long_text])
    assert not short.truncated and long.truncated
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    # a text that only differs after the cut scores the same: truncation really happened
    np.testing.assert_allclose(fp32.predict_proba([long_text])[0], fp32.predict_proba([long_text + " oil"])[0])


def test_bad_input(fp32):
    assert fp32.predict([]) == []
    assert fp32.predict_proba([]).shape == (0, len(LABELS))
    with pytest.raises(TypeError, match=r"texts\[2\] is int"):
        fp32.predict(["a", "b", 3])
    with pytest.raises(TypeError, match="single str"):
        fp32.predict("stocks rally")
    assert len(fp32.predict(["", " "])) == 2  # empty strings still get a prediction


def test_io_binding_on_cpu_gives_same_result(artifact_dir, texts, fp32):
    clf = Classifier.load(artifact_dir, variant="fp32", threads=1, io_binding=True, accelerators=NO_GPU)
    assert clf.engine.io_binding
    np.testing.assert_allclose(clf.predict_proba(texts), fp32.predict_proba(texts), atol=1e-6)


def test_fixed_shape_buckets_give_same_result(artifact_dir, texts, fp32):
    # the CUDA-graph path (pre-bound buffers per bucket), run on CPU memory without graphs
    base = Classifier.load(artifact_dir, variant="fp32", threads=1, accelerators=NO_GPU)
    engine = Engine(base.engine.session._model_path, EngineConfig(device="cpu", threads=1, cuda_graphs=True))
    from onnxpress.runtime.token_budget import TokenBudget

    clf = Classifier(base.artifact, "fp32", engine, base.tokenizer, TokenBudget(256, 16, pad_to_multiple=16),
                     fixed_shapes=True)
    np.testing.assert_allclose(clf.predict_proba(texts), fp32.predict_proba(texts), atol=2e-5)
    first = engine.n_buckets
    clf.predict_proba(texts[::-1])
    assert engine.n_buckets == first <= 2 * 5  # (seq 16/32) x (batch 1..16): buckets are reused


def test_concurrent_predict_equals_sequential(fp32, texts):
    expected = fp32.predict_proba(texts)
    results, errors = {}, []

    def work(k):
        try:
            for _ in range(3):
                results[k] = fp32.predict_proba(texts[k::4])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in range(4):
        np.testing.assert_allclose(results[k], expected[k::4], atol=1e-6)


def test_tampered_or_truncated_model_refused(artifact_copy):
    path = artifact_copy / "model.int8.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256.*tampered"):
        Classifier.load(artifact_copy, variant="int8")
    path.write_bytes(bytes(data[:1000]))
    with pytest.raises(UserError, match="truncated"):
        Classifier.load(artifact_copy, variant="int8")


def _edit_manifest(root, fn):
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def test_manifest_problems_refused(artifact_copy, tmp_path):
    with pytest.raises(UserError, match="not found"):
        Classifier.load(tmp_path / "nope")
    with pytest.raises(UserError, match="no manifest.json"):
        Classifier.load(tmp_path)
    _edit_manifest(artifact_copy, lambda d: d["variants"]["int8"].update(opset=99))
    with pytest.raises(UserError, match="opset 99"):
        Classifier.load(artifact_copy, variant="int8")
    _edit_manifest(artifact_copy, lambda d: d.update(task="translation"))
    with pytest.raises(UserError, match="not text-classification"):
        Classifier.load(artifact_copy)
    _edit_manifest(artifact_copy, lambda d: d.update(format_version=7))
    with pytest.raises(UserError, match="format_version 7"):
        Classifier.load(artifact_copy)


def test_auto_skips_a_variant_this_onnxruntime_cannot_run(artifact_copy, caplog):
    """An older onnxruntime than the default variant needs: auto falls back and says so, the explicit
    choice is refused with the reason."""
    _edit_manifest(artifact_copy, lambda d: d["variants"]["int8"].update(opset=99))
    with caplog.at_level("WARNING", logger="onnxpress.runtime"):
        clf = Classifier.load(artifact_copy)
    assert clf.variant != "int8" and clf.predict(["the team wins"])[0].label
    assert f"int8 needs a newer onnxruntime (ONNX opset 99); running {clf.variant} instead" in caplog.text
    with pytest.raises(UserError, match="opset 99.*upgrade onnxruntime or choose a variant"):
        Classifier.load(artifact_copy, variant="int8")
    _edit_manifest(artifact_copy, lambda d: [v.update(opset=99) for v in d["variants"].values()])
    with pytest.raises(UserError, match="need a newer onnxruntime \\(ONNX opset 99\\)"):
        Classifier.load(artifact_copy)


@cpu_machine_only
def test_cuda_without_gpu_is_a_clear_error(artifact_dir, capfd):
    with pytest.raises(UserError, match="device 'cuda' requested but"):
        Classifier.load(artifact_dir, device="cuda")
    assert "[E:onnxruntime" not in capfd.readouterr().err


def test_long_lists_are_planned_in_slices(fp32, texts, monkeypatch):
    import onnxpress.runtime.classifier as mod

    expected = fp32.predict_proba(texts)
    monkeypatch.setattr(mod, "MAX_TEXTS_PER_PLAN", 7)
    sliced = fp32.classify(texts)
    np.testing.assert_allclose(sliced.probs, expected, atol=1e-6)
    assert sliced.truncated.shape == (len(texts),)


def test_session_options_are_deliberate(artifact_dir):
    clf = Classifier.load(artifact_dir, threads=2, session_config={"session.intra_op.allow_spinning": "0"},
                          accelerators=NO_GPU)
    so = clf.engine.session.get_session_options()
    # a small model runs 2 batches at a time on one thread each (parallel_runs.split_threads)
    assert (so.intra_op_num_threads, so.inter_op_num_threads, clf.runs.workers) == (1, 1, 2)
    assert clf.describe()["parallel_batches"] == 2
    one = Classifier.load(artifact_dir, threads=2, workers=1, accelerators=NO_GPU)
    so_one = one.engine.session.get_session_options()
    assert (so_one.intra_op_num_threads, one.runs.workers) == (2, 1)
    assert not so.enable_mem_pattern and so.enable_cpu_mem_arena
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    info = clf.describe()
    assert info["providers"] == ["CPUExecutionProvider"] and info["max_batch_tokens"] == DEFAULT_MAX_BATCH_TOKENS
    with pytest.raises(UserError, match="threads must be >= 1"):
        Classifier.load(artifact_dir, threads=0, accelerators=NO_GPU)


def test_parallel_batches_give_the_same_results(artifact_dir, texts):
    """Two batches at a time on one-thread runs: the same batches, so the same probabilities as
    one batch at a time on two threads."""
    many = list(texts) * 6
    parallel = Classifier.load(artifact_dir, threads=2, workers=2, max_batch_tokens=64, accelerators=NO_GPU)
    serial = Classifier.load(artifact_dir, threads=2, workers=1, max_batch_tokens=64, accelerators=NO_GPU)
    assert len(list(parallel.budget.plan(parallel.encode(many).lengths))) > 2
    np.testing.assert_allclose(parallel.predict_proba(many), serial.predict_proba(many), atol=1e-6)
    with pytest.raises(UserError, match="workers must be"):
        Classifier.load(artifact_dir, workers=0, accelerators=NO_GPU)


def test_encoding_in_slices_is_identical(fp32, texts, monkeypatch):
    import onnxpress.runtime.text_tokenizer as tok

    whole = fp32.encode(texts)
    monkeypatch.setattr(tok, "ENCODE_SLICE", 7)
    sliced = fp32.encode(texts)
    for field in ("ids", "type_ids", "offsets", "truncated"):
        np.testing.assert_array_equal(getattr(sliced, field), getattr(whole, field))


def test_ids_are_stored_narrow_and_padded_as_int64(fp32, texts):
    enc = fp32.encode(texts)
    assert enc.ids.dtype == np.int32 and enc.type_ids.dtype == np.int32
    input_ids, mask, type_ids = enc.pad(np.arange(3), int(enc.lengths[:3].max()), fp32.tokenizer.pad_id)
    assert input_ids.dtype == mask.dtype == type_ids.dtype == np.int64
    first = enc.ids[enc.offsets[0]:enc.offsets[1]]
    np.testing.assert_array_equal(input_ids[0, : len(first)], first)


@gpu_machine_only
def test_auto_picks_a_gpu_and_agrees_with_fp32_on_cpu(artifact_dir, texts, fp32):
    clf = Classifier.load(artifact_dir, gpu_check=False)
    assert clf.device in ("cuda", "tensorrt") and clf.engine.providers[0] != CPU_EP
    agree = np.mean(clf.predict_proba(texts).argmax(1) == fp32.predict_proba(texts).argmax(1))
    assert agree > 0.9


@gpu_machine_only
def test_cuda_fp32_matches_cpu_with_and_without_graphs(artifact_dir, texts, fp32):
    plain = Classifier.load(artifact_dir, variant="fp32", device="cuda")
    np.testing.assert_allclose(plain.predict_proba(texts), fp32.predict_proba(texts), atol=2e-3)
    graphs = Classifier.load(artifact_dir, variant="fp32", device="cuda", cuda_graphs=True)
    assert graphs.engine.cuda_graphs or graphs.engine.graph_fallback  # used, or a stated reason
    np.testing.assert_allclose(graphs.predict_proba(texts), fp32.predict_proba(texts), atol=2e-3)
