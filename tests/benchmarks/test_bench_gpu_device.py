"""`onnxpress bench --device cuda|tensorrt` and the `torch-fp16` contender, on CPU terms: refusals
on this machine, contender sets on fake GPU machines (injected `Accelerators`), fresh-process specs."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from onnxpress.benchmarks.bench_config import BenchConfig
from onnxpress.benchmarks.contender_selection import build_contenders
from onnxpress.benchmarks.contenders import from_spec
from onnxpress.benchmarks.contenders.torch_peers import TorchFp16
from onnxpress.errors import UserError
from onnxpress.runtime.artifact import Artifact
from onnxpress.runtime.devices import CPU_EP, CUDA_EP, TRT_EP, Accelerators, detect

TENSORRT = Accelerators([TRT_EP, CUDA_EP, CPU_EP], cuda=True, tensorrt=True)
CUDA_ONLY = Accelerators([TRT_EP, CUDA_EP, CPU_EP], cuda=True,
                         reasons={"tensorrt": "TensorRT library libnvinfer is not loadable"})
NONE = Accelerators([CPU_EP], reasons={"cuda": "no NVIDIA GPU device (/dev/nvidia*) on this machine",
                                       "tensorrt": "no NVIDIA GPU device (/dev/nvidia*) on this machine"})


@pytest.fixture(scope="module")
def gpu_artifact(tiny_artifact, tmp_path_factory) -> Path:
    """The tiny artifact with its fp32 variant also built for CUDA (as exports tag float variants)."""
    root = tmp_path_factory.mktemp("gpu_art") / "art"
    shutil.copytree(tiny_artifact, root)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["variants"]["fp32"]["devices"] = ["cpu", "cuda"]
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _cfg(artifact: Path, tmp_path: Path, device: str, against: list[str]) -> BenchConfig:
    return BenchConfig(artifact=artifact, out=tmp_path, against=against, device=device, progress=False)


def test_tensorrt_offers_float_cuda_variants_and_torch_on_cuda(gpu_artifact, tiny_checkpoint, tmp_path):
    cfg = _cfg(gpu_artifact, tmp_path, "tensorrt", ["torch", "torch-fp16"])
    cfg.checkpoint = tiny_checkpoint
    contenders = build_contenders(cfg, Artifact.open(gpu_artifact), TENSORRT)
    specs = {c.name: c.spec for c in contenders}
    assert list(specs) == ["torch-eager-fp32", "torch-fp16-autocast", "onnxpress-fp32"]  # int8 is CPU-only
    assert specs["torch-eager-fp32"]["device"] == specs["torch-fp16-autocast"]["device"] == "cuda"
    assert specs["onnxpress-fp32"]["device"] == "tensorrt"
    rebuilt = from_spec(specs["torch-fp16-autocast"])
    assert isinstance(rebuilt, TorchFp16) and rebuilt.spec == specs["torch-fp16-autocast"]
    assert rebuilt.precision == "fp16" and rebuilt.sorted_stream


@pytest.mark.parametrize("device,accelerators,against,message", [
    ("tensorrt", CUDA_ONLY, [], "--device tensorrt is not usable here: TensorRT library libnvinfer"),
    ("cuda", NONE, ["torch"], r"--device cuda is not usable here: no NVIDIA GPU device"),
    ("cuda", TENSORRT, ["torch", "optimum-int8"], "--against optimum-int8: CPU-only in this harness"),
    ("cpu", NONE, ["torch-fp16"], "torch-fp16 is CUDA autocast: it needs --device cuda or tensorrt"),
])
def test_refusals_are_one_line(gpu_artifact, tmp_path, device, accelerators, against, message):
    with pytest.raises(UserError, match=message) as info:
        build_contenders(_cfg(gpu_artifact, tmp_path, device, against), Artifact.open(gpu_artifact), accelerators)
    assert "\n" not in str(info.value)


def test_torch_fp16_refuses_a_pytorch_without_cuda(tiny_checkpoint, tiny_artifact):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this PyTorch has CUDA: the refusal cannot happen here")
    peer = TorchFp16(tiny_checkpoint, 32, tiny_artifact)
    with pytest.raises(UserError, match=r"torch-fp16-autocast needs CUDA PyTorch: torch .* is "):
        peer.load(1)


def test_cli_refuses_an_unusable_device_in_one_line(gpu_artifact, tmp_path):
    if detect().usable("tensorrt"):
        pytest.skip("TensorRT is usable on this machine")
    proc = subprocess.run([sys.executable, "-m", "onnxpress", "bench", str(gpu_artifact), "--device", "tensorrt",
                           "--against", "", "--out", str(tmp_path / "b")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("onnxpress: error: --device tensorrt is not usable here: ")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_help_lists_what_gpu_check_looks_for():
    out = subprocess.run([sys.executable, "-m", "onnxpress", "bench", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "{cpu,cuda,tensorrt}" in out and "torch-fp16" in out


def test_gpu_memory_is_na_on_cpu_and_read_per_process(tiny_artifact):
    from onnxpress.benchmarks.contenders import Onnxpress
    from onnxpress.benchmarks.sections.common import gpu_memory_mib, process_gpu_memory_mib

    assert gpu_memory_mib(Onnxpress(tiny_artifact, "fp32", "cpu")) is None
    if shutil.which("nvidia-smi") is None:
        assert process_gpu_memory_mib(1) is None
