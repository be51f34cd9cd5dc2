"""`onnxpress bench` on a translation artifact: the toy translator, PyTorch vs onnxpress fp32."""
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
               "--threads", "1", "--quick", "--out", str(out)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "translation" and results["checks"]["threads_equal"] is True
    runs = results["translation"]["runs"]
    assert set(runs) == {"beam1", "beam2"}
    for run in runs.values():
        assert set(run) == {"pytorch", "onnxpress-fp32"}
        # same model, same search: the runtime reproduces the reference decoder's text
        assert run["onnxpress-fp32"]["same_output_as_pytorch"] == 1.0
        assert run["onnxpress-fp32"]["sentences_per_s"] > 0
    assert "| 1 | onnxpress-fp32 |" in (out / "results.md").read_text()
    assert (out / "throughput_vs_beam.png").read_bytes().startswith(b"\x89PNG")


def test_translation_bench_needs_checkpoint(toy_translation, tmp_path, capsys):
    from onnxpress.cli import main

    _, art, _ = toy_translation
    assert main(["bench", str(art), "--out", str(tmp_path / "o")]) == 2
    assert "--checkpoint" in capsys.readouterr().err
