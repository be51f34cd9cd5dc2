"""The training loop on a tiny random BERT: learning, checkpoints, resume, batching, bad input."""
from __future__ import annotations

import json

import pytest
import torch

from classifier_fixtures import ag_dir, tiny_bert, tiny_config  # noqa: F401 (pytest fixtures)
from onnxpress.errors import UserError
from onnxpress.training import classifier as clf
from onnxpress.training.classifier import collate, epoch_batches, predict, train
from onnxpress.training.modeling import load_classifier


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_tiny_bert_learns_and_round_trips(tiny_config, pooling):
    cfg = tiny_config(pooling=pooling, steps=40)
    result = train(cfg)
    losses = [h["loss"] for h in result["history"]]
    assert len(losses) == 8
    assert losses[-1] < 0.8 * losses[0], losses
    assert result["metrics"]["accuracy"] > 0.4  # 4 classes: chance is 0.25

    out = cfg.out
    for name in ("config.json", "model.safetensors", "tokenizer.json", "training.json",
                 "confusion_matrix.json", "confusion_matrix.png"):
        assert (out / name).is_file(), name
    assert not (out / "checkpoint").exists()  # removed after a finished run by default
    saved = json.loads((out / "training.json").read_text())
    assert saved["max_length"] == 32 and saved["pooling"] == pooling
    assert saved["labels"] == ["World", "Sports", "Business", "Sci/Tech"]
    assert saved["recipe"]["train_sha256"] == saved["data"]["train"]["sha256"]
    assert saved["timing"]["steps"] == 40 and saved["timing"]["steps_per_second"] > 0

    # The checkpoint reloads (via the export's entry point) and reproduces the reported metrics.
    from transformers import AutoTokenizer

    model = load_classifier(out)
    assert not model.training
    assert model.config.id2label == {0: "World", 1: "Sports", 2: "Business", 3: "Sci/Tech"}
    tokenizer = AutoTokenizer.from_pretrained(out)
    from onnxpress.training.ag_news import load_ag_news

    _, test = load_ag_news(cfg.data)
    seqs = clf.encode(tokenizer, test.texts, 32)
    preds = predict(model, seqs, tokenizer.pad_token_id, progress=False)
    accuracy = sum(p == y for p, y in zip(preds, test.labels)) / len(preds)
    assert accuracy == pytest.approx(result["metrics"]["accuracy"])

    batch = collate(seqs[:3], tokenizer.pad_token_id)
    logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
    assert logits.shape == (3, 4)


def test_rerun_of_a_finished_run_is_a_no_op(tiny_config):
    first = train(tiny_config(steps=4))
    again = train(tiny_config(steps=4))
    assert again["created"] == first["created"]


def test_resume_after_interruption_matches_an_uninterrupted_run(tiny_config, tmp_path, monkeypatch):
    reference = tiny_config(out=tmp_path / "straight", steps=12, save_every=4)
    train(reference)
    expected = load_classifier(reference.out).state_dict()

    cfg = tiny_config(out=tmp_path / "interrupted", steps=12, save_every=4)
    calls = {"n": 0}
    real_collate = clf.collate

    def crash_on_step_7(seqs, pad_id):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real_collate(seqs, pad_id)

    monkeypatch.setattr(clf, "collate", crash_on_step_7)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(clf, "collate", real_collate)
    assert (cfg.out / "checkpoint" / "state.pt").is_file()
    assert not (cfg.out / "training.json").exists()

    result = train(cfg)  # the same command again continues from step 4
    assert result["timing"]["resumed_from_step"] == 4 and result["timing"]["steps"] == 12
    assert [h["step"] for h in result["history"]] == [5, 10, 12]
    resumed = load_classifier(cfg.out).state_dict()
    for name, tensor in expected.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_out_dir_with_a_different_run_is_refused_unless_overwrite(tiny_config):
    train(tiny_config(steps=2))
    with pytest.raises(UserError, match=r"holds a different run \(lr: 0.01 -> 0.002\)"):
        train(tiny_config(steps=2, lr=2e-3))
    result = train(tiny_config(steps=2, lr=2e-3, overwrite=True))
    assert result["recipe"]["lr"] == 2e-3


def test_out_dir_with_foreign_files_is_refused(tiny_config, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty and holds no classifier run"):
        train(tiny_config(steps=2))


def test_corrupt_checkpoint_is_a_clear_error(tiny_config, tmp_path, monkeypatch):
    cfg = tiny_config(steps=6, save_every=2, keep_checkpoint=True)
    calls = {"n": 0}
    real_collate = clf.collate

    def crash(seqs, pad_id):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_collate(seqs, pad_id)

    monkeypatch.setattr(clf, "collate", crash)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(clf, "collate", real_collate)
    (cfg.out / "checkpoint" / "state.pt").write_bytes(b"truncated")
    with pytest.raises(UserError, match="checkpoint .* is corrupt.*--overwrite"):
        train(cfg)


def test_bad_base_model_is_a_clear_error(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (str(empty), "not a Hugging Face checkpoint"),
        (str(tmp_path / "absent"), "does not exist"),
        ("someone/unknown-model", "unknown base model.*hub is off"),
    ]
    for base, message in cases:
        with pytest.raises(UserError, match=message):
            train(tiny_config(base_model=base, steps=1))


def test_corrupt_base_model_weights_are_a_clear_error(tiny_config, tiny_bert, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_bert, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="cannot load base model"):
        train(tiny_config(base_model=str(broken), steps=1))


def test_bad_numbers_are_clear_errors(tiny_config):
    with pytest.raises(UserError, match="--batch-size must be positive"):
        train(tiny_config(batch_size=0))
    with pytest.raises(UserError, match="--steps or --epochs"):
        train(tiny_config(steps=3, epochs=1.0))
    with pytest.raises(UserError, match="unknown pooling"):
        train(tiny_config(pooling="max"))


def test_epochs_set_the_step_count(tiny_config):
    result = train(tiny_config(steps=None, epochs=0.5, train_rows=40))  # 5 batches of 8 per epoch
    assert result["recipe"]["steps"] == 3 and result["timing"]["steps"] == 3
    assert result["data"]["train"]["rows_used"] == 40


def test_collate_pads_with_an_attention_mask():
    batch = collate([[2, 5, 3], [2, 3]], pad_id=0)
    assert batch["input_ids"].tolist() == [[2, 5, 3], [2, 3, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0], [0, 0, 0]]


@pytest.mark.parametrize("grouped", [False, True])
def test_epoch_batches_cover_every_row_once_and_are_reproducible(grouped):
    lengths = [(i * 37) % 50 + 3 for i in range(1000)]
    batches = epoch_batches(lengths, 16, seed=1, epoch=2, group_by_length=grouped)
    rows = sorted(int(i) for b in batches for i in b)
    assert rows == list(range(1000)) and len(batches) == 63
    again = epoch_batches(lengths, 16, seed=1, epoch=2, group_by_length=grouped)
    assert all((a == b).all() for a, b in zip(batches, again))
    other = epoch_batches(lengths, 16, seed=1, epoch=3, group_by_length=grouped)
    assert any((a != b).any() for a, b in zip(batches, other) if len(a) == len(b))
    padding = sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)
    if grouped:  # grouped batches waste far less on padding
        random_padding = sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b)
                             for b in epoch_batches(lengths, 16, seed=1, epoch=2))
        assert padding < 0.2 * random_padding


def test_max_minutes_stops_early_and_a_rerun_finishes(tiny_config, monkeypatch):
    real_collate = clf.collate

    def slow_collate(seqs, pad_id):
        import time

        time.sleep(0.2)
        return real_collate(seqs, pad_id)

    monkeypatch.setattr(clf, "collate", slow_collate)
    cfg = tiny_config(steps=12, max_minutes=0.5 / 60)
    first = train(cfg)
    stopped_at = first["timing"]["steps"]
    assert first["complete"] is False and 1 <= stopped_at < 12
    assert (cfg.out / "training.json").is_file() and (cfg.out / "checkpoint" / "state.pt").is_file()

    monkeypatch.setattr(clf, "collate", real_collate)
    second = train(tiny_config(steps=12))
    assert second["complete"] is True and second["timing"]["resumed_from_step"] == stopped_at
    assert second["timing"]["steps"] == 12 and not (cfg.out / "checkpoint").exists()
