"""The translator's GPU path on CPU-testable terms: TensorRT profiles for its two graphs on a fake
TensorRT machine, and the first-load GPU self-check against PyTorch's greedy reference sample."""
from __future__ import annotations

import json

import pytest

from onnxpress.errors import UserError
from onnxpress.runtime.artifact import Artifact
from onnxpress.runtime.devices import CPU_EP, CUDA_EP, TRT_EP, provider_chain
from onnxpress.runtime.gpu_check import SAMPLE_KEY, compare_translations, ensure_gpu_checked, run_gpu_check
from onnxpress.runtime.loading import open_variant, token_budget
from onnxpress.runtime.tensorrt import parse_profile
from onnxpress.runtime.translator import MAX_PROFILE_BEAM, Translator, engine_settings

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

SOURCES = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Park.", "Eine Frau liest ein Buch.",
           "Drei Kinder essen einen Apfel auf einer Bank."]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from toy_translator import build_toy_artifact

    return build_toy_artifact(tmp_path_factory.mktemp("toy_translator_gpu"))


@pytest.mark.parametrize("variant,int8", [("int8", "1"), ("fp32", None)])
def test_tensorrt_profiles_for_encoder_and_decoder_step(toy, monkeypatch, tmp_path, variant, int8):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    opened = open_variant(Artifact.open(toy[1]), variant, "tensorrt", ("encoder", "decoder_step"))
    budget = token_budget(None, 32, 4096, 256)
    max_length = opened.artifact.manifest.max_length
    configs = {role: engine_settings(opened, role, 1, budget, None, True) for role in ("encoder", "decoder_step")}
    for role, config in configs.items():
        trt = provider_chain("tensorrt", trt_options=config.trt_options)[0][1]
        assert trt.get("trt_int8_enable") == int8
        assert opened.model_sha256(role)[:16] in trt["trt_engine_cache_path"]  # one cache per graph
    enc = {k: parse_profile(configs["encoder"].trt_options[f"trt_profile_{k}_shapes"]) for k in ("min", "max")}
    assert enc["min"] == {"src_ids": (1, 1), "src_mask": (1, 1)}
    assert enc["max"] == {"src_ids": (32, max_length), "src_mask": (32, max_length)}
    dec = {k: parse_profile(configs["decoder_step"].trt_options[f"trt_profile_{k}_shapes"])
           for k in ("min", "opt", "max")}
    hidden_width = dec["max"]["hidden"][2]
    assert hidden_width == opened.artifact.manifest.outputs[1].shape[-1]  # static width read from the graph
    assert dec["min"]["prev_tokens"] == (1, 1) and dec["max"]["prev_tokens"] == (32, MAX_PROFILE_BEAM)
    assert dec["max"]["hidden"] == (32, MAX_PROFILE_BEAM, hidden_width)
    assert dec["max"]["encoder_states"][:2] == dec["max"]["keys"][:2] == (32, max_length)
    assert dec["min"]["topk"] == dec["max"]["topk"] == (1,)
    assert 1 <= dec["opt"]["prev_tokens"][1] <= MAX_PROFILE_BEAM


def test_cpu_sessions_get_no_tensorrt_options(toy):
    opened = open_variant(Artifact.open(toy[1]), "int8", "cpu", ("encoder", "decoder_step"))
    assert engine_settings(opened, "encoder", 1, token_budget(None, None, 4096, 64), None, True).trt_options is None


class _OnGpu:
    """The translator as the self-check sees it, on the device a GPU session would report."""

    def __init__(self, translator, sample):
        self.artifact, self.variant, self.device = translator.artifact, translator.variant, "cuda"
        self.artifact.manifest.extra[SAMPLE_KEY] = sample


@pytest.fixture(scope="module")
def fp32(toy):
    return Translator.open(toy[1], "fp32", "cpu", threads=1)


@pytest.fixture(scope="module")
def sample(toy, fp32):
    from onnxpress.export.translator_validation import reference_sample

    loaded = toy[0]
    enc = fp32.source.encode(SOURCES, with_type_ids=False)
    ids = [enc.ids[enc.offsets[i]:enc.offsets[i + 1]].tolist() for i in range(len(enc))]
    return reference_sample(loaded.model, loaded.config, SOURCES, ids)


def test_self_check_passes_refuses_and_caches(fp32, sample, tmp_path):
    assert len(sample["tokens"]) == len(SOURCES) and all(lp < 0 for lp in sample["log_probs"])
    result = run_gpu_check(_OnGpu(fp32, sample), fp32.greedy_outputs, str(tmp_path / "good.json"), compare_translations)
    assert result["passed"] and result["token_mismatch"] == 0.0 and result["max_abs_diff"] <= result["tolerance"]
    assert json.loads((tmp_path / "good.json").read_text())["passed"]

    drifted = {**sample, "log_probs": [lp - 0.5 for lp in sample["log_probs"]], "tolerance": 0.1}
    with pytest.raises(UserError, match=r"max \|log-prob diff\| 0\.5\d* \(tolerance 0\.1\).*validated on CPU only"):
        run_gpu_check(_OnGpu(fp32, drifted), fp32.greedy_outputs, str(tmp_path / "bad.json"), compare_translations)

    def never(_texts):
        raise AssertionError("a cached result must not run the model again")

    with pytest.raises(UserError, match="tolerance 0.1"):
        run_gpu_check(_OnGpu(fp32, drifted), never, str(tmp_path / "bad.json"), compare_translations)
    assert run_gpu_check(_OnGpu(fp32, sample), never, str(tmp_path / "good.json"), compare_translations)["passed"]


def test_self_check_counts_sentences_whose_tokens_differ(fp32, sample, tmp_path):
    tokens = [list(t) for t in sample["tokens"]]
    tokens[0], tokens[1] = tokens[0] + [3], tokens[1] + [3]
    wrong = {**sample, "tokens": tokens, "max_token_mismatch": 0.25}
    with pytest.raises(UserError, match=r"greedy tokens differ on 50% of 4 sentences \(allowed 25%\)"):
        run_gpu_check(_OnGpu(fp32, wrong), fp32.greedy_outputs, str(tmp_path / "t.json"), compare_translations)
    with pytest.raises(UserError, match="malformed extra.reference_sample"):
        run_gpu_check(_OnGpu(fp32, {**sample, "log_probs": [0.0]}), fp32.greedy_outputs, str(tmp_path / "m.json"),
                      compare_translations)


def test_load_checks_on_gpu_providers_only_and_skips_without_sample(toy, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tr = Translator.open(toy[1], "int8", "cpu", threads=1)
    tr.artifact.manifest.extra.pop(SAMPLE_KEY, None)
    assert ensure_gpu_checked(tr, tr.greedy_outputs, compare_translations, [CPU_EP]) is None
    with caplog.at_level("INFO", logger="onnxpress.runtime"):
        assert ensure_gpu_checked(tr, tr.greedy_outputs, compare_translations, [TRT_EP, CUDA_EP, CPU_EP]) is None
    assert "GPU self-check of int8 on cpu skipped" in caplog.text
    assert not list((tmp_path / "cache").rglob("*.json"))


def test_export_validation_stores_the_sample_the_check_passes(toy, tmp_path):
    import shutil

    from onnxpress.export.translator import ExportOptions, validate
    from toy_translator import ENGLISH, GERMAN

    art = tmp_path / "art"
    shutil.copytree(toy[1], art)
    manifest = Artifact.open(art).manifest
    validate(art, toy[0], manifest, ExportOptions(variants=("fp32", "int8"), progress=False), GERMAN[:6],
             ENGLISH[:6], log=lambda _m: None)
    sample = Artifact.open(art).manifest.extra[SAMPLE_KEY]
    assert sample["texts"] == GERMAN[:6] and len(sample["tokens"]) == len(sample["log_probs"]) == 6
    fp32 = Translator.open(art, "fp32", "cpu", threads=1)
    assert run_gpu_check(_OnGpu(fp32, sample), fp32.greedy_outputs, str(tmp_path / "c.json"),
                         compare_translations)["passed"]
