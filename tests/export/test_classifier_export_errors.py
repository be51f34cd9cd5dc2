"""Bad input to the classifier exporter: clear errors, and nothing half-written left behind."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from export_fixtures import build_tokenizer, make_checkpoint, options, synthetic_texts, tiny_config, write_ag_news
from onnxpress.cli import main
from onnxpress.errors import UserError
from onnxpress.export.classifier import export_classifier, parse_variants
from onnxpress.runtime.artifact import Artifact

EVAL = synthetic_texts(40, seed=3)


def export(checkpoint, out, **kw):
    return export_classifier(checkpoint, out, eval_texts=EVAL[0], eval_labels=EVAL[1],
                             options=options(**kw))


def leftovers(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(".")]


def test_not_a_sequence_classifier(tmp_path):
    from transformers import BertModel

    ckpt = tmp_path / "encoder"
    BertModel(tiny_config()).save_pretrained(ckpt)
    build_tokenizer(ckpt)
    with pytest.raises(UserError, match="not a sequence classifier"):
        export(ckpt, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(UserError, match="not found"):
        export(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        export(tmp_path / "empty", tmp_path / "out")


def test_missing_tokenizer(tiny_checkpoint, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    (ckpt / "tokenizer.json").unlink()
    with pytest.raises(UserError, match="no tokenizer.json"):
        export(ckpt, tmp_path / "out")


def test_unknown_variant(tiny_checkpoint, tmp_path):
    with pytest.raises(UserError, match="unknown variant 'int4'"):
        parse_variants("fp32,int4")
    with pytest.raises(UserError, match="unknown variant"):
        export(tiny_checkpoint, tmp_path / "out", variants=["fp32", "bf16"])
    assert not (tmp_path / "out").exists()


def test_unwritable_output(tiny_checkpoint, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(UserError, match="cannot write"):
        export(tiny_checkpoint, blocker / "out")
    with pytest.raises(UserError, match="not a directory"):
        export(tiny_checkpoint, blocker)


def test_non_empty_output_needs_force(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        export(tiny_checkpoint, out)
    with pytest.raises(UserError, match="not an onnxpress artifact"):
        export(tiny_checkpoint, out, force=True)  # never delete a directory we did not write
    assert (out / "notes.txt").read_text() == "mine"


def test_parity_failure_leaves_nothing(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(UserError, match="parity check failed"):
        export(tiny_checkpoint, out, variants=["fp32"], fp32_tolerance=1e-12)
    assert not out.exists() and leftovers(tmp_path) == []


def test_force_replaces_an_artifact_and_cls_head_exports(tmp_path):
    ckpt = make_checkpoint(tmp_path / "cls", pooling="cls", train=False)
    out = tmp_path / "out"
    export(ckpt, out, variants=["fp32"])
    first = Artifact.open(out).manifest.created
    with pytest.raises(UserError, match="not empty"):
        export(ckpt, out, variants=["fp32"])
    export(ckpt, out, variants=["fp32"], overwrite=True)
    art = Artifact.open(out)
    assert art.manifest.variants["fp32"].parity["max_abs_diff"] <= 1e-4
    assert art.manifest.extra["architecture"] == "BertForSequenceClassification"
    assert art.manifest.created >= first and leftovers(tmp_path) == []


def test_cli_end_to_end(tiny_checkpoint, tmp_path, capsys):
    data = write_ag_news(tmp_path / "data")
    out = tmp_path / "art"
    rc = main(["export", "classifier", str(tiny_checkpoint), "--out", str(out), "--data", str(data),
               "--variants", "fp32,int8,int8-static", "--eval-rows", "50", "--calibration-size", "16",
               "--threads", "1", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "variant" in captured.out and "int8-static" in captured.out and "wrote" in captured.out
    art = Artifact.open(out)
    assert sorted(art.servable_variants()) == ["fp32", "int8", "int8-static"]
    assert art.manifest.extra["reference"]["eval_rows"] == 50
    assert art.manifest.variants["int8-static"].method["calibration_texts"] == 16


def test_cli_bad_input_is_one_line(tiny_checkpoint, tmp_path, capsys):
    rc = main(["export", "classifier", str(tiny_checkpoint), "--out", str(tmp_path / "o"), "--variants", "int3"])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip().count("\n") == 0 and "unknown variant 'int3'" in err
