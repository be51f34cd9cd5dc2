"""The GPU path on CPU-testable terms: fake device environments, TensorRT options, CUDA-graph
placement, the GPU self-check. Real-GPU runs: benchmarks/gpu_check.sh."""
from __future__ import annotations

import json

import numpy as np
import pytest

from onnxpress.errors import UserError
from onnxpress.runtime import Classifier
from onnxpress.runtime.artifact import Artifact
from onnxpress.runtime.cuda_graphs import capture_blockers, placement
from onnxpress.runtime.devices import CPU_EP, CUDA_EP, TRT_EP, detect, probe_machine, provider_chain, visible_gpus
from onnxpress.runtime.gpu_check import needs_gpu_check, run_gpu_check
from onnxpress.runtime.loading import engine_config, open_variant, token_budget
from onnxpress.runtime.tensorrt import parse_profile
from onnxpress.runtime.variants import choose

ALL = [TRT_EP, CUDA_EP, CPU_EP]
NODES = ["/dev/nvidia0", "/dev/nvidia1"]


def libraries(*present: str):
    """A fake dynamic loader that finds only the named libraries."""
    return lambda stem, versions: stem in present


MACHINES = {  # name -> probe_machine arguments
    "tensorrt": dict(env={}, device_nodes=NODES, loadable=libraries("cuda", "cudart", "cublasLt", "cudnn", "nvinfer")),
    "cuda-only": dict(env={}, device_nodes=NODES, loadable=libraries("cuda", "cudart", "cublasLt", "cudnn")),
    "cuda-hidden": dict(env={"CUDA_VISIBLE_DEVICES": ""}, device_nodes=NODES,
                        loadable=libraries("cuda", "cudart", "cublasLt", "cudnn", "nvinfer")),
    "no-driver": dict(env={}, device_nodes=NODES, loadable=libraries("cudart", "cublasLt", "cudnn", "nvinfer")),
    "none": dict(env={}, device_nodes=[], loadable=libraries()),
}


@pytest.mark.parametrize("machine,expected", [
    ("tensorrt", ("int8-static", "tensorrt")), ("cuda-only", ("fp16", "cuda")),
    ("cuda-hidden", ("int8", "cpu")), ("no-driver", ("int8", "cpu")), ("none", ("int8", "cpu")),
])
def test_auto_choice_on_fake_machines(artifact_dir, machine, expected):
    acc = detect(ALL, probe_machine(cuda_major="12", **MACHINES[machine]))
    assert choose(Artifact.open(artifact_dir), "auto", "auto", acc) == expected


def test_hidden_gpu_and_missing_driver_are_named():
    hidden = detect(ALL, probe_machine(cuda_major="12", **MACHINES["cuda-hidden"]))
    assert "CUDA_VISIBLE_DEVICES=''" in hidden.why_not("cuda") and not hidden.tensorrt
    assert "libcuda.so.1" in detect(ALL, probe_machine(cuda_major="12", **MACHINES["no-driver"])).why_not("cuda")
    assert "libnvinfer" in detect(ALL, probe_machine(cuda_major="12", **MACHINES["cuda-only"])).why_not("tensorrt")


@pytest.mark.parametrize("value,count", [
    (None, 2), ("", 0), ("-1", 0), ("NoDevFiles", 0), ("0", 1), ("1,0", 2), ("0,5,1", 1), ("5", 0),
    ("GPU-8932f937-d72c", 1),
])
def test_visible_gpus_follows_cuda_rules(value, count):
    assert visible_gpus(value, 2) == count


def _trt_config(artifact_dir, variant, monkeypatch, tmp_path, budget=None):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    opened = open_variant(Artifact.open(artifact_dir), variant, "tensorrt", ("model",))
    budget = budget or token_budget(None, None, 16384, 256)
    return opened, engine_config(opened, 1, budget=budget, profile_inputs=opened.artifact.manifest.inputs)


@pytest.mark.parametrize("variant,int8,fp16", [("int8-static", "1", "1"), ("fp16", None, "1"), ("fp32", None, None)])
def test_tensorrt_options_follow_the_variant(artifact_dir, monkeypatch, tmp_path, variant, int8, fp16):
    opened, config = _trt_config(artifact_dir, variant, monkeypatch, tmp_path)
    trt = provider_chain("tensorrt", trt_options=config.trt_options)[0][1]
    assert trt.get("trt_int8_enable") == int8 and trt.get("trt_fp16_enable") == fp16
    cache = trt["trt_engine_cache_path"]
    assert cache.startswith(str(tmp_path / "cache" / "onnxpress" / "tensorrt")) and cache == trt["trt_timing_cache_path"]
    assert opened.model_sha256("model")[:16] in cache  # per model: a new export never reuses an old engine
    assert "trt_int8_calibration_table_name" not in trt  # QDQ graphs carry their scales


def test_profiles_cover_every_planned_shape(artifact_dir, monkeypatch, tmp_path):
    budget = token_budget(2048, 32, 1, 1)
    opened, config = _trt_config(artifact_dir, "int8-static", monkeypatch, tmp_path, budget)
    low, high = (parse_profile(config.trt_options[f"trt_profile_{k}_shapes"]) for k in ("min", "max"))
    opt = parse_profile(config.trt_options["trt_profile_opt_shapes"])
    names = [spec.name for spec in opened.artifact.manifest.inputs]
    assert sorted(low) == sorted(high) == sorted(opt) == sorted(names)
    rng = np.random.default_rng(0)
    max_length = opened.artifact.manifest.max_length
    for _ in range(50):
        lengths = rng.integers(1, max_length + 1, size=int(rng.integers(1, 300)))
        for batch in budget.plan(lengths):
            for name in names:
                assert low[name] <= (batch.size, batch.length) <= high[name]
                assert all(a <= b <= c for a, b, c in zip(low[name], (batch.size, batch.length), high[name]))
    assert all(low[n] <= opt[n] <= high[n] for n in names)


def test_cuda_graph_capture_needs_every_node_on_cuda():
    assert capture_blockers({CUDA_EP: ["MatMul", "Add"]}) == []
    cpu_left = capture_blockers({CUDA_EP: ["MatMul"], CPU_EP: ["Shape", "Gather"]})
    assert len(cpu_left) == 1 and "2 node(s) on CPUExecutionProvider" in cpu_left[0]
    assert "Memcpy" in capture_blockers({CUDA_EP: ["MemcpyFromHost", "MatMul"]})[0]
    assert "TensorrtExecutionProvider" in capture_blockers({TRT_EP: ["TRTKernel"], CUDA_EP: []})[0]


def test_placement_is_read_from_a_real_session(artifact_dir):
    clf = Classifier.open(artifact_dir, "fp32", "cpu", threads=1, session_config={
        "session.record_ep_graph_assignment_info": "1"})
    nodes = placement(clf.engine.session)
    if nodes is None:
        pytest.skip("this onnxruntime does not record node placement")
    assert set(nodes) == {CPU_EP} and "MatMul" in nodes[CPU_EP]
    assert capture_blockers(nodes)  # a CPU session could never be captured


def test_tensorrt_never_asks_cuda_for_graphs():
    chain = provider_chain("tensorrt", cuda_graph=True, trt_options={})
    assert all("enable_cuda_graph" not in p[1] for p in chain if isinstance(p, tuple))


# -- GPU self-check ------------------------------------------------------------------------
class _OnGpu:
    """The classifier as the self-check sees it, with the providers a GPU session would report."""

    def __init__(self, clf, sample):
        self.artifact, self.variant, self.device = clf.artifact, clf.variant, "cuda"
        self.artifact.manifest.extra["reference_sample"] = sample


def test_self_check_only_for_gpu_providers_not_validated(artifact_dir):
    spec = Artifact.open(artifact_dir).manifest.variants["fp16"]
    assert needs_gpu_check(spec, [CUDA_EP, CPU_EP]) and needs_gpu_check(spec, [TRT_EP, CUDA_EP, CPU_EP])
    assert not needs_gpu_check(spec, [CPU_EP])
    spec.parity["validated_on"] = [CUDA_EP, CPU_EP]
    assert not needs_gpu_check(spec, [CUDA_EP, CPU_EP])


def test_self_check_passes_refuses_and_caches(artifact_dir, texts, tmp_path):
    clf = Classifier.open(artifact_dir, "fp16", "cpu", threads=1)
    probs = clf.predict_proba(texts[:8])
    good = _OnGpu(clf, {"texts": texts[:8], "expected": probs.tolist(), "tolerance": 1e-4})
    result = run_gpu_check(good, clf.predict_proba, str(tmp_path / "good.json"))
    assert result["passed"] and result["rows"] == 8
    assert json.loads((tmp_path / "good.json").read_text())["passed"]

    drifted = (probs + 0.05).tolist()
    bad = _OnGpu(clf, {"texts": texts[:8], "expected": drifted, "tolerance": 0.01})
    with pytest.raises(UserError, match=r"max \|diff\| 0.05 > 0.01 over 8 texts.*validated on CPU only"):
        run_gpu_check(bad, clf.predict_proba, str(tmp_path / "bad.json"))

    def never(_texts):
        raise AssertionError("a cached result must not run the model again")

    with pytest.raises(UserError, match="0.05 > 0.01"):
        run_gpu_check(bad, never, str(tmp_path / "bad.json"))
    assert run_gpu_check(good, never, str(tmp_path / "good.json"))["passed"]


def test_self_check_without_sample_is_skipped_with_a_note(artifact_dir, tmp_path, caplog):
    clf = Classifier.open(artifact_dir, "fp16", "cpu", threads=1)
    clf.artifact.manifest.extra.pop("reference_sample", None)
    with caplog.at_level("INFO", logger="onnxpress.runtime"):
        assert run_gpu_check(clf, clf.predict_proba, str(tmp_path / "x.json")) is None
    assert "reference_sample" in caplog.text and not (tmp_path / "x.json").exists()


def test_malformed_sample_is_a_user_error(artifact_dir, tmp_path):
    clf = Classifier.open(artifact_dir, "fp16", "cpu", threads=1)
    wrong = _OnGpu(clf, {"texts": ["a", "b"], "expected": [[0.5, 0.5]]})
    with pytest.raises(UserError, match="expects outputs"):
        run_gpu_check(wrong, clf.predict_proba, str(tmp_path / "w.json"))
    with pytest.raises(UserError, match="malformed extra.reference_sample"):
        run_gpu_check(_OnGpu(clf, {"texts": ["a"]}), clf.predict_proba, str(tmp_path / "m.json"))
