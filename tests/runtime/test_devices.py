import pytest

from onnxpress.errors import UserError
from onnxpress.runtime.artifact import Artifact
from onnxpress.runtime.devices import CPU_EP, CUDA_EP, TRT_EP, detect, provider_chain
from onnxpress.runtime.variants import candidates, choose

ALL = [TRT_EP, CUDA_EP, CPU_EP]
NO_GPU = (False, "no NVIDIA GPU device (/dev/nvidia*) on this machine", False, "no GPU")
GPU = (True, "", False, "TensorRT library libnvinfer is not loadable")
GPU_TRT = (True, "", True, "")


def test_detect_with_injected_lists():
    assert not detect(ALL, NO_GPU).cuda
    assert "no NVIDIA GPU" in detect(ALL, NO_GPU).why_not("cuda")
    acc = detect(ALL, GPU)
    assert acc.cuda and not acc.tensorrt and "nvinfer" in acc.why_not("tensorrt")
    assert detect(ALL, GPU_TRT).tensorrt
    cpu_build = detect([CPU_EP], GPU_TRT)  # CPU-only onnxruntime on a GPU machine
    assert not cpu_build.cuda and "onnxruntime-gpu" in cpu_build.why_not("cuda")


def test_this_machine_is_detected_quietly(capfd):
    acc = detect()
    out, err = capfd.readouterr()
    assert "onnxruntime" not in err and "onnxruntime" not in out
    assert acc.usable("cpu")


def test_auto_choice_per_machine(artifact_dir):
    art = Artifact.open(artifact_dir)
    assert choose(art, "auto", "auto", detect(ALL, NO_GPU)) == ("int8", "cpu")
    assert choose(art, "auto", "auto", detect(ALL, GPU)) == ("fp16", "cuda")
    assert choose(art, "auto", "auto", detect(ALL, GPU_TRT)) == ("int8-static", "tensorrt")
    assert choose(art, "auto", "cpu", detect(ALL, GPU_TRT)) == ("int8", "cpu")
    assert candidates(art, "cpu") == ["int8", "int8-static", "fp32"]  # rejected int4 never listed


def test_explicit_variant_honoured_or_refused(artifact_dir):
    art = Artifact.open(artifact_dir)
    assert choose(art, "fp32", "auto", detect(ALL, GPU)) == ("fp32", "cuda")
    assert choose(art, "fp32", "auto", detect(ALL, NO_GPU)) == ("fp32", "cpu")
    with pytest.raises(UserError, match="fp16.*cuda.*no NVIDIA GPU"):
        choose(art, "fp16", "auto", detect(ALL, NO_GPU))
    with pytest.raises(UserError, match="rejected.*accuracy 0.61"):
        choose(art, "int4", "auto", detect(ALL, NO_GPU))
    with pytest.raises(UserError, match="no variant 'bf16'"):
        choose(art, "bf16", "auto", detect(ALL, NO_GPU))
    with pytest.raises(UserError, match="built for cuda, not cpu"):
        choose(art, "fp16", "cpu", detect(ALL, GPU))
    with pytest.raises(UserError, match="device 'cuda' requested but no NVIDIA GPU"):
        choose(art, "auto", "cuda", detect(ALL, NO_GPU))
    with pytest.raises(UserError, match="unknown device"):
        choose(art, "auto", "tpu", detect(ALL, NO_GPU))


def test_provider_chains():
    assert provider_chain("cpu") == [CPU_EP]
    cuda = provider_chain("cuda", cuda_graph=True)
    assert cuda[0][0] == CUDA_EP and cuda[0][1]["enable_cuda_graph"] == "1" and cuda[-1] == CPU_EP
    trt = provider_chain("tensorrt", cuda_graph=True, trt_options={"trt_fp16_enable": "1"})
    assert [p if isinstance(p, str) else p[0] for p in trt] == [TRT_EP, CUDA_EP, CPU_EP]
    assert trt[0][1]["trt_fp16_enable"] == "1"
    assert "enable_cuda_graph" not in trt[1][1]  # behind TensorRT the graph would span two providers
