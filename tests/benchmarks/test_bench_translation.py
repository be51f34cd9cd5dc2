"""`onnxpress bench` on a translation artifact: the toy translator, PyTorch (same search) vs onnxpress fp32."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def toy_translation(tmp_path_factory):
    from safetensors.torch import save_model

    from onnxpress.export.translator import ExportOptions, build_artifact
    from toy_translator import ENGLISH, GERMAN, build_toy_translator
    from onnxpress.training.translator import CONFIG, WEIGHTS

    root = tmp_path_factory.mktemp("toy_mt")
    ckpt = root / "ckpt"
    loaded = build_toy_translator(ckpt)  # writes the two tokenizers into ckpt
    loaded.config.save(ckpt / CONFIG)
    save_model(loaded.model, str(ckpt / WEIGHTS))
    (ckpt / "training.json").write_text(json.dumps({"src": "de", "tgt": "en"}))
    build_artifact(loaded, root / "art", ExportOptions(variants=("fp32",), progress=False))
    data = root / "data"
    data.mkdir()
    (data / "train.de").write_text("\n".join(GERMAN) + "\n")
    (data / "train.en").write_text("\n".join(ENGLISH) + "\n")
    (data / "test_2016_flickr.de").write_text("\n".join(GERMAN) + "\n")
    (data / "test_2016_flickr.en").write_text("\n".join(ENGLISH) + "\n")
    return ckpt, root / "art", data


def test_translation_bench_end_to_end(toy_translation, tmp_path):
    from onnxpress.cli import main

    ckpt, art, data = toy_translation
    out = tmp_path / "out"
    rc = main(["bench", str(art), "--checkpoint", str(ckpt), "--data", str(data), "--beams", "1,2",
               "--threads", "2", "--quick", "--out", str(out)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "translation" and results["checks"]["threads_equal"] is True
    contenders = results["translation"]["contenders"]
    # each engine intra-op and as two parallel batches, every one computing on 2 threads in all
    assert sorted((c["engine"], c["workers"]) for c in contenders.values()) == [
        ("fp32", 1), ("fp32", 2), ("pytorch", 1), ("pytorch", 2)]
    assert all(c["compute_threads"] == 2 for c in contenders.values())
    runs = results["translation"]["runs"]
    assert set(runs) == {"beam1", "beam2"}
    for run in runs.values():
        assert set(run) == set(contenders)
        for r in run.values():
            # same model, same search: every contender and mode gives the same text
            assert r["same_output_as_pytorch"] == 1.0
            assert r["sentences_per_s"] > 0 and r["baseline"].startswith("pytorch, 2t")
    assert "| 1 | 2 | onnxpress-fp32 | 2 batches x 1 thread |" in (out / "results.md").read_text()
    assert (out / "throughput_vs_beam.png").read_bytes().startswith(b"\x89PNG")


def test_torch_contender_runs_the_runtime_search(toy_translation):
    """The PyTorch modules behind the runtime's Translator: the ONNX fp32 graphs' tokens and attention."""
    import numpy as np

    from onnxpress.benchmarks.torch_search import torch_translator
    from onnxpress.runtime.translator import Translator
    from toy_translator import GERMAN

    ckpt, art, _ = toy_translation
    torch_side = torch_translator(ckpt, art, max_batch_size=4)
    onnx_side = Translator.load(art, variant="fp32", device="cpu", threads=1, max_batch_size=4)
    for beam in (1, 3):
        want = onnx_side.translate(GERMAN, beam_size=beam, return_attention=True)
        got = torch_side.translate(GERMAN, beam_size=beam, return_attention=True)
        for a, b in zip(want, got, strict=True):
            assert a.tokens == b.tokens
            assert abs(a.score - b.score) < 1e-4
            np.testing.assert_allclose(a.attention, b.attention, atol=1e-4)
    assert torch_side.describe()["engine"].startswith("torch")


def test_translation_bench_needs_checkpoint(toy_translation, tmp_path, capsys):
    from onnxpress.cli import main

    _, art, _ = toy_translation
    assert main(["bench", str(art), "--out", str(tmp_path / "o")]) == 2
    assert "--checkpoint" in capsys.readouterr().err


def test_a_failing_contender_is_one_line_naming_it(toy_translation, tmp_path):
    from onnxpress.benchmarks.translator_bench import Contender, _measure_in_child
    from onnxpress.errors import UserError

    ckpt, art, _ = toy_translation
    job = {"checkpoint": str(ckpt), "artifact": str(art), "sources": ["Ein Mann."], "beams": [1], "batch_size": 4}
    with pytest.raises(UserError, match=r"onnxpress-fp16x, 1t 1 thread failed: .*no variant 'fp16x'"):
        _measure_in_child(Contender("fp16x", 1), job, tmp_path)
