"""`onnxpress train translator` / `attention-plot` end to end on a tiny Multi30k-shaped folder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import sacrebleu

from onnxpress.cli import main
from onnxpress.training.decoding import translate
from onnxpress.training.translator import load_translator
from translator_fixtures import PAIRS, mt_dir, single_thread  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("single_thread")


def _train(mt_dir: Path, out: Path, *extra: str) -> int:
    return main(["train", "translator", "--data", str(mt_dir), "--out", str(out), "--preset", "tiny",
                 "--no-progress", "--threads", "1", *extra])


def test_train_resume_evaluate_and_plot(mt_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "mt"
    assert _train(mt_dir, out, "--epochs", "1") == 0
    for name in ("config.json", "model.safetensors", "source_tokenizer.json", "target_tokenizer.json",
                 "training.json", "checkpoint.pt"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "training.json").read_text())
    assert len(metrics["history"]) == 1
    assert metrics["val_ppl"] > 1
    test = metrics["test"]
    assert test["split"] == "test_2016_flickr" and test["sentences"] == 12
    # BLEU is sacrebleu's, on the detokenized outputs against the raw reference lines
    refs = (mt_dir / "test_2016_flickr.en").read_text().splitlines()
    for name in ("greedy", "beam"):
        hyps = (out / f"test_2016_flickr.{name}.en").read_text().split("\n")[:-1]
        assert len(hyps) == 12
        assert not any("▁" in h for h in hyps)
        assert test[name]["bleu"] == pytest.approx(round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2))
        assert test[name]["signature"].startswith("nrefs:1|case:mixed")
    assert test["beam"]["beam_size"] == 2

    # an existing run is not overwritten by accident
    assert _train(mt_dir, out, "--epochs", "1") == 2
    assert "--resume" in capsys.readouterr().err

    # resuming continues where the checkpoint left off
    assert _train(mt_dir, out, "--epochs", "2", "--resume") == 0
    metrics = json.loads((out / "training.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert len(metrics["commands"]) == 2 and metrics["commands"][1].endswith("--resume --no-progress")
    assert metrics["command"].startswith("onnxpress train translator --data ")

    model, (src_tok, tgt_tok), cfg = load_translator(out)
    assert not model.training and cfg.src_vocab_size == src_tok.get_vocab_size()
    results = translate(model, src_tok, tgt_tok, ["", PAIRS[0][0], "   "], beam_size=2)
    assert results[0].text == "" and results[2].text == ""
    assert results[1].attention.shape == (len(results[1].output_tokens), len(results[1].source_tokens))

    png = tmp_path / "attn.png"
    assert main(["attention-plot", PAIRS[0][0], "--model", str(out), "--out", str(png), "--beam-size", "2"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_is_a_one_line_error(mt_dir: Path, tmp_path: Path, capsys):
    (mt_dir / "train.en").write_text("too short\n")
    assert _train(mt_dir, tmp_path / "a") == 2
    assert "differ in length" in capsys.readouterr().err
    assert _train(mt_dir, tmp_path / "b", "--resume") == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["train", "translator", "--data", str(mt_dir), "--src", "xx", "--out", str(tmp_path / "c")]) == 2
    assert "unknown language code 'xx'" in capsys.readouterr().err
    assert main(["attention-plot", "Hallo", "--model", str(tmp_path / "missing")]) == 2
    assert "not a trained translator" in capsys.readouterr().err
