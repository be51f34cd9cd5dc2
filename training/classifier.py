"""Fine-tune a BERT-family classifier on AG News: the training loop.

`train(TrainConfig(...))` resolves the data and base model, tokenizes once, trains with AdamW +
linear warmup/decay + gradient clipping (CUDA autocast where present), saves resumable state
every `save_every` steps, evaluates on the test split and writes a Hugging Face checkpoint,
`training.json` and a confusion matrix. Rerunning the same recipe into the same `out` continues
an unfinished run and leaves a finished one alone. The pieces live in their own modules:
settings (`classifier_config`), batches (`classifier_batches`), evaluation (`classifier_eval`),
resumable state (`classifier_checkpoint`) and the saved run (`classifier_outputs`).
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from onnxpress.training.ag_news import load_ag_news
from onnxpress.training.base_model import PACKAGED_BASE, load_base_classifier, load_tokenizer, resolve_base_model
from onnxpress.training.classifier_batches import batch_stream, collate, encode, epoch_batches
from onnxpress.training.classifier_checkpoint import (
    CHECKPOINT_DIR, RECIPE_FILE, RESULT_FILE, STATE_FILE, load_checkpoint, prepare_out_dir, remove_checkpoint,
    save_checkpoint)
from onnxpress.training.classifier_config import DEFAULT_STEPS, TrainConfig
from onnxpress.training.classifier_eval import predict
from onnxpress.training.classifier_outputs import RUN_FORMAT, load_run, run_record, save_run
from onnxpress.training.device import autocast, needs_grad_scaling, pick_device
from onnxpress.training.metrics import classification_report

__all__ = [
    "TrainConfig", "train", "predict", "collate", "encode", "epoch_batches", "batch_stream",
    "resolve_base_model", "load_tokenizer", "pick_device", "prepare_out_dir", "save_checkpoint",
    "load_checkpoint", "DEFAULT_STEPS", "PACKAGED_BASE", "RUN_FORMAT", "CHECKPOINT_DIR", "STATE_FILE",
    "RECIPE_FILE", "RESULT_FILE",
]


def _log(msg: str) -> None:
    tqdm.write(msg, file=sys.stderr)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 else decay).append(p)  # biases and LayerNorm weights
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train(cfg: TrainConfig) -> dict:
    """Train, evaluate and save; returns the `training.json` contents."""
    from transformers import get_linear_schedule_with_warmup

    # -- data, base model, recipe; a finished run is left alone
    cfg.check()
    out = Path(cfg.out)
    base_name, base = resolve_base_model(cfg.base_model)
    train_split, test_split = load_ag_news(cfg.data)
    for split in (train_split, test_split):
        if split.skipped:
            _log(f"warning: {split.skipped_summary()}")
    train_split, test_split = train_split.head(cfg.train_rows), test_split.head(cfg.eval_rows)
    labels = train_split.label_names
    tokenizer = load_tokenizer(base)
    train_seqs = encode(tokenizer, train_split.texts, cfg.max_length)
    total_steps = cfg.total_steps(len(train_seqs))
    recipe = cfg.recipe(base_name, total_steps, train_split, test_split)
    status = prepare_out_dir(out, recipe, cfg.overwrite)
    if status == "done":
        result = load_run(out)
        _log(f"{out} already holds this run (test accuracy {result['metrics']['accuracy']:.4f}); "
             "pass --overwrite to train again")
        return result

    # -- model, optimizer, schedule; resumable state if there is some
    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = load_base_classifier(base, labels, cfg.pooling).to(device).train()
    # fused: the faster AdamW kernel on CPU and CUDA (benchmarks/README.md, "Training")
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, fused=True)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(cfg.warmup * total_steps), total_steps)
    scaler = torch.amp.GradScaler("cuda", enabled=needs_grad_scaling(device))
    step, prior_seconds, history = 0, 0.0, []
    if status == "resume":
        state = load_checkpoint(out)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"])
        step, prior_seconds, history = state["step"], state["train_seconds"], json.loads(state["history"])
        _log(f"resuming {out} at step {step}/{total_steps}")
    resumed_from = step

    def snapshot(seconds: float) -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state() if device.type == "cuda" else None,
                "step": step, "train_seconds": seconds, "history": json.dumps(history)}

    # -- the loop
    labels_t = torch.tensor(train_split.labels)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = batch_stream([len(s) for s in train_seqs], cfg.batch_size, cfg.seed, cfg.group_by_length, step)
    run_loss = run_correct = run_seen = 0.0
    pbar = tqdm(total=total_steps, initial=step, desc="train", unit="step", disable=not cfg.progress,
                dynamic_ncols=True)
    t0 = time.perf_counter()
    deadline = t0 + cfg.max_minutes * 60 if cfg.max_minutes else math.inf
    while step < total_steps:
        if time.perf_counter() > deadline:
            _log(f"stopping at step {step}/{total_steps}: --max-minutes {cfg.max_minutes:g} reached; "
                 "evaluating this model; rerun the same command to continue")
            break
        idx = next(batches)
        batch = {k: v.to(device) for k, v in collate([train_seqs[i] for i in idx], pad_id).items()}
        y = labels_t[idx].to(device)
        with autocast(device):
            logits = model(**batch).logits
        loss = nn.functional.cross_entropy(logits.float(), y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        step += 1
        pbar.update(1)

        run_loss += loss.item() * len(idx)
        run_correct += (logits.argmax(-1) == y).sum().item()
        run_seen += len(idx)
        if step % cfg.report_every == 0 or step == total_steps:
            entry = {"step": step, "loss": round(run_loss / run_seen, 4), "acc": round(run_correct / run_seen, 4),
                     "lr": scheduler.get_last_lr()[0]}
            history.append(entry)
            pbar.set_postfix(loss=f"{entry['loss']:.4f}", acc=f"{entry['acc']:.3f}")
            if not cfg.progress or not sys.stderr.isatty():
                _log(f"step {step}/{total_steps} loss {entry['loss']:.4f} acc {entry['acc']:.3f} lr {entry['lr']:.2e}")
            run_loss = run_correct = run_seen = 0.0
        if cfg.save_every and step % cfg.save_every == 0 and step < total_steps:
            save_checkpoint(out, recipe, snapshot(prior_seconds + time.perf_counter() - t0))
    pbar.close()
    session_seconds = time.perf_counter() - t0
    complete = step >= total_steps
    if not complete:
        save_checkpoint(out, recipe, snapshot(prior_seconds + session_seconds))

    # -- evaluate on the test split, save the run
    test_seqs = encode(tokenizer, test_split.texts, cfg.max_length)
    t1 = time.perf_counter()
    preds = predict(model, test_seqs, pad_id, cfg.eval_batch_size, device, cfg.progress)
    eval_seconds = time.perf_counter() - t1
    report = classification_report(test_split.labels, preds, labels)
    _log(f"test accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f} on {report['n']} rows")
    steps_here = step - resumed_from
    timing = {
        "train_seconds": round(prior_seconds + session_seconds, 2),
        "steps": step,
        "steps_per_second": round(steps_here / session_seconds, 3) if steps_here else None,
        "samples_per_second": round(steps_here * cfg.batch_size / session_seconds, 2) if steps_here else None,
        "resumed_from_step": resumed_from,
        "eval_seconds": round(eval_seconds, 2),
        "eval_texts_per_second": round(len(test_seqs) / eval_seconds, 1),
    }
    record = run_record(cfg, recipe=recipe, base_name=base_name, base_path=base, labels=labels,
                        splits={"train": train_split, "test": test_split}, report=report, history=history,
                        timing=timing, complete=complete, device=device)
    save_run(out, model, tokenizer, record)
    if complete and not cfg.keep_checkpoint:
        remove_checkpoint(out)
    return record
