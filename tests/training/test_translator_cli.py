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

    # the same command again leaves the finished run alone
    capsys.readouterr()
    before = (out / "training.json").read_bytes()
    assert _train(mt_dir, out, "--epochs", "1") == 0
    assert "already holds this finished run; pass --overwrite" in capsys.readouterr().err
    assert (out / "training.json").read_bytes() == before

    # more epochs continue where the checkpoint left off, without --resume
    assert _train(mt_dir, out, "--epochs", "2") == 0
    assert "resuming" in capsys.readouterr().err
    metrics = json.loads((out / "training.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert len(metrics["commands"]) == 2 and metrics["commands"][1].endswith("--epochs 2 --threads 1 --no-progress")
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
    assert main(["train", "translator", "--data", str(mt_dir), "--src", "xx", "--out", str(tmp_path / "c")]) == 2
    assert "unknown language code 'xx'" in capsys.readouterr().err
    assert main(["attention-plot", "Hallo", "--model", str(tmp_path / "missing")]) == 2
    assert "not a trained translator" in capsys.readouterr().err


def test_a_different_run_is_refused_unless_overwrite(mt_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "mt"
    assert _train(mt_dir, out, "--resume") == 0  # --resume: accepted, a no-op kept for old scripts
    capsys.readouterr()
    assert _train(mt_dir, out, "--lr", "0.01") == 2
    assert "holds a different run (lr: 0.003 -> 0.01)" in capsys.readouterr().err
    assert json.loads((out / "training.json").read_text())["settings"]["lr"] == 0.003

    assert _train(mt_dir, out, "--lr", "0.01", "--force") == 0  # --force: the old name of --overwrite
    metrics = json.loads((out / "training.json").read_text())
    assert metrics["settings"]["lr"] == 0.01 and len(metrics["commands"]) == 1


def test_a_folder_of_other_files_is_refused(mt_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _train(mt_dir, out) == 2
    assert "not empty and holds no translator run" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_old_flag_spellings_are_hidden_aliases():
    from onnxpress.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["attention-plot", "x", "--beam", "3"]).beam_size == 3
    assert parser.parse_args(["attention-plot", "x"]).beam_size == 5
    assert parser.parse_args(["train", "classifier", "--force"]).overwrite is True
    assert parser.parse_args(["train", "translator", "--force"]).overwrite is True
    help_text = parser._subparsers._group_actions[0].choices["attention-plot"].format_help()
    assert "--beam-size" in help_text and "--beam " not in help_text
