"""Train, checkpoint, resume and evaluate the GRU + Bahdanau attention translator.

Output directory (what export reads via `load_translator`):

- `config.json`        model hyperparameters + special token ids + max lengths (`Seq2SeqConfig`)
- `model.safetensors`  weights of the best epoch (lowest validation loss)
- `source_tokenizer.json`, `target_tokenizer.json`  BPE tokenizers (pad=0, unk=1, <s>=2, </s>=3;
  the source tokenizer appends </s> itself)
- `training.json`      settings, per-epoch history, val perplexity, greedy/beam BLEU, timings, command
- `checkpoint.pt`      last epoch's model + optimizer + scheduler state and the run's recipe;
                       rerunning the same command continues it (see `onnxpress.training.run_dir`)
- `<split>.greedy.<tgt>`, `<split>.beam.<tgt>`  the evaluated translations
"""
from __future__ import annotations

import json
import math
import os
import platform
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from onnxpress.errors import UserError
from onnxpress.runtime.jobs.durable import atomic_write, atomic_write_text
from onnxpress.training import multi30k, subword
from onnxpress.training.bleu import corpus_bleu
from onnxpress.training.decoding import translate
from onnxpress.training.run_dir import PriorRun, load_state, run_status, save_state
from onnxpress.training.seq2seq import Seq2Seq, Seq2SeqConfig, count_parameters
from onnxpress.training.translator_batches import collate, encode_pairs, evaluate_loss, make_batches, sequence_loss
from onnxpress.training.translator_settings import PRESETS, TrainSettings

__all__ = ["TrainSettings", "PRESETS", "train_translator", "evaluate_dir", "load_translator", "collate",
           "sequence_loss", "make_batches", "evaluate_loss", "CONFIG", "WEIGHTS", "CHECKPOINT", "METRICS",
           "SRC_TOKENIZER", "TGT_TOKENIZER"]

CONFIG, WEIGHTS, CHECKPOINT, METRICS = "config.json", "model.safetensors", "checkpoint.pt", "training.json"
SRC_TOKENIZER, TGT_TOKENIZER = "source_tokenizer.json", "target_tokenizer.json"


# -- checkpoint directory ----------------------------------------------------------------


def load_translator(path: str | os.PathLike, device: str = "cpu"):
    """(model in eval mode, (source_tokenizer, target_tokenizer), Seq2SeqConfig) from an output dir."""
    from safetensors.torch import load_model

    path = Path(path)
    for name in (CONFIG, WEIGHTS, SRC_TOKENIZER, TGT_TOKENIZER):
        if not (path / name).is_file():
            raise UserError(f"{path} is not a trained translator: {name} is missing")
    cfg = Seq2SeqConfig.load(path / CONFIG)
    model = Seq2Seq(cfg)
    load_model(model, str(path / WEIGHTS), device=device)
    return model.to(device).eval(), (subword.load(path / SRC_TOKENIZER), subword.load(path / TGT_TOKENIZER)), cfg


def _save_weights(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_model

    # save_model (which handles the tied embedding/output weight) writes by name into the temp file
    atomic_write(path, lambda fh: save_model(model, fh.name))


# -- training --------------------------------------------------------------------------------


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _clear(out: Path) -> None:
    """Remove the files of the run in `out` (for `overwrite`); other files stay."""
    for name in (CHECKPOINT, METRICS, WEIGHTS, CONFIG, SRC_TOKENIZER, TGT_TOKENIZER):
        (out / name).unlink(missing_ok=True)
    for translations in [*out.glob("*.greedy.*"), *out.glob("*.beam.*")]:
        translations.unlink()


def train_translator(s: TrainSettings) -> dict:
    """Train (or resume) into `s.out`, then evaluate; returns the metrics written to training.json."""
    from tqdm import tqdm

    if s.threads:
        torch.set_num_threads(s.threads)
    out = Path(s.out)
    data_dir = multi30k.resolve_data_dir(s.data)
    train = multi30k.read_parallel(data_dir, "train", s.src, s.tgt)
    val = multi30k.read_parallel(data_dir, "val", s.src, s.tgt)
    test = multi30k.read_parallel(data_dir, s.eval_split, s.src, s.tgt)
    if s.train_limit:
        train = multi30k.ParallelCorpus("train", s.src, s.tgt, train.source[: s.train_limit], train.target[: s.train_limit])

    recipe = s.recipe(data_dir)
    state: dict | None = None

    def read_prior() -> PriorRun | None:
        nonlocal state
        if not (out / CHECKPOINT).is_file():
            return None
        state = load_state(out / CHECKPOINT)
        # checkpoints written before recipes were recorded name only their languages
        old = state.get("recipe") or {**recipe, "src": state["src"], "tgt": state["tgt"]}
        stop = s.stop_reason(state["epoch"], state["bad_epochs"], state["train_seconds"])
        return PriorRun(recipe=old, finished=stop is not None and (out / METRICS).is_file())

    status = run_status(out, recipe, read_prior, overwrite=s.overwrite, clear=lambda: _clear(out), kind="translator")
    if status == "done":
        _log(f"{out} already holds this finished run; pass --overwrite to train again "
             "(or raise --epochs / --max-minutes to continue it)")
        return json.loads((out / METRICS).read_text())
    if status == "resume":
        assert state is not None
        cfg = Seq2SeqConfig.load(out / CONFIG)
        src_tok, tgt_tok = subword.load(out / SRC_TOKENIZER), subword.load(out / TGT_TOKENIZER)
        _log(f"resuming {out} after epoch {state['epoch']}")
    else:
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        src_tok = subword.train_bpe(train.source, s.src_vocab, append_eos=True)
        tgt_tok = subword.train_bpe(train.target, s.tgt_vocab)
        ids = subword.special_ids(src_tok)
        if ids != subword.special_ids(tgt_tok):
            raise RuntimeError("source and target special ids differ")
        cfg = Seq2SeqConfig(
            src_vocab_size=src_tok.get_vocab_size(), tgt_vocab_size=tgt_tok.get_vocab_size(),
            emb_dim=s.emb_dim, enc_hidden=s.enc_hidden, dec_hidden=s.dec_hidden, attn_dim=s.attn_dim,
            dropout=s.dropout, tie_embeddings=s.tie_embeddings,
            pad_id=ids["pad"], unk_id=ids["unk"], bos_id=ids["bos"], eos_id=ids["eos"],
        )
        subword.save(src_tok, out / SRC_TOKENIZER)
        subword.save(tgt_tok, out / TGT_TOKENIZER)
        cfg.save(out / CONFIG)
        _log(f"tokenizers trained in {time.time() - t0:.1f}s: {cfg.src_vocab_size} {s.src} / {cfg.tgt_vocab_size} {s.tgt} subwords")
        state = None

    torch.manual_seed(s.seed)
    model = Seq2Seq(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=s.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=s.lr_decay, patience=0)
    history: list[dict] = []
    commands: list[str] = []
    best_val, bad_epochs, start_epoch, train_seconds, stopped_by = math.inf, 0, 0, 0.0, None
    train_cpu_seconds = 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, best_val, bad_epochs = state["history"], state["best_val"], state["bad_epochs"]
        commands = state.get("commands", [])
        start_epoch, train_seconds = state["epoch"], state["train_seconds"]
        train_cpu_seconds = state.get("train_cpu_seconds", 0.0)
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])  # dropout continues as if never interrupted
        # stopping reasons are re-checked against this call's settings (a larger budget or more epochs continue)

    train_pairs = encode_pairs(src_tok, tgt_tok, train, cfg, s.max_train_len)
    val_pairs = encode_pairs(src_tok, tgt_tok, val, cfg, None)
    _log(
        f"{len(train_pairs)} training pairs ({len(train) - len(train_pairs)} longer than {s.max_train_len} skipped), "
        f"{len(val_pairs)} validation pairs; model {count_parameters(model) / 1e6:.2f}M parameters, "
        f"{torch.get_num_threads()} threads"
    )

    commands = commands + [s.command]
    budget = s.max_minutes * 60 if s.max_minutes else math.inf
    epoch = start_epoch
    while stopped_by is None and epoch < s.epochs:
        if train_seconds >= budget:
            stopped_by = "time budget"
            break
        if bad_epochs >= s.patience:
            stopped_by = f"early stopping (no val improvement in {s.patience} epochs)"
            break
        rng = random.Random(s.seed * 1000 + epoch)
        batches = make_batches(train_pairs, s.batch_size, rng)
        model.train()
        epoch_start, epoch_cpu = time.time(), time.process_time()
        nll_total, tok_total, loss_ema = 0.0, 0, None
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{s.epochs}", unit="batch", disable=not s.progress,
                   mininterval=1.0 if sys.stderr.isatty() else 30.0, miniters=1)
        for idx in bar:
            src, mask, tgt = collate(train_pairs, idx, cfg)
            logits, _ = model(src, mask, tgt[:, :-1], teacher_forcing=s.teacher_forcing)
            loss, nll, n = sequence_loss(logits, tgt[:, 1:], cfg.pad_id, s.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), s.clip)
            optimizer.step()
            nll_total += float(nll)
            tok_total += n
            loss_value = loss.item()
            loss_ema = loss_value if loss_ema is None else 0.98 * loss_ema + 0.02 * loss_value
            bar.set_postfix(loss=f"{loss_ema:.3f}", ppl=f"{math.exp(nll_total / tok_total):.1f}", refresh=False)
            if train_seconds + time.time() - epoch_start >= budget:
                stopped_by = "time budget"
                break
        bar.close()
        seconds = time.time() - epoch_start
        train_seconds += seconds
        cpu_seconds = time.process_time() - epoch_cpu
        train_cpu_seconds += cpu_seconds
        val_loss = evaluate_loss(model, val_pairs, 2 * s.batch_size)
        epoch += 1
        improved = val_loss < best_val
        if improved:
            best_val, bad_epochs = val_loss, 0
            _save_weights(model, out / WEIGHTS)
        else:
            bad_epochs += 1
        record = {
            "epoch": epoch,
            "train_ppl": round(math.exp(nll_total / max(tok_total, 1)), 3),
            "val_loss": round(val_loss, 4),
            "val_ppl": round(math.exp(val_loss), 3),
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu_seconds, 1),  # differs from seconds on a shared machine
            "target_tokens_per_s": round(tok_total / max(seconds, 1e-9), 1),
            "complete": stopped_by is None,
        }
        history.append(record)
        scheduler.step(val_loss)
        _log(
            f"epoch {epoch}: train ppl {record['train_ppl']:.2f}, val ppl {record['val_ppl']:.2f}"
            f"{' (best)' if improved else ''}, {seconds / 60:.1f} min, {record['target_tokens_per_s']:.0f} target tok/s"
        )
        if stopped_by is None and bad_epochs >= s.patience:
            stopped_by = f"early stopping (no val improvement in {s.patience} epochs)"
        elif stopped_by is None and epoch >= s.epochs:
            stopped_by = f"{s.epochs} epochs"
        save_state(out / CHECKPOINT, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "epoch": epoch, "history": history, "best_val": best_val, "bad_epochs": bad_epochs,
            "train_seconds": train_seconds, "train_cpu_seconds": train_cpu_seconds, "stopped_by": stopped_by,
            "src": s.src, "tgt": s.tgt, "recipe": recipe, "commands": commands, "torch_rng": torch.get_rng_state()})
    stopped_by = stopped_by or f"{s.epochs} epochs"
    if not (out / WEIGHTS).is_file():
        raise UserError(f"no epoch finished in {out}; nothing to evaluate")

    _log(f"training stopped: {stopped_by}; evaluating the best epoch")
    metrics = evaluate_dir(out, s, data_dir, test, val_pairs=val_pairs)
    metrics.update(
        settings=asdict(s), model=cfg.to_dict(), parameters=count_parameters(model), history=history,
        best_epoch=min(history, key=lambda r: r["val_loss"])["epoch"] if history else None,
        stopped_by=stopped_by, train_seconds=round(train_seconds, 1), train_minutes=round(train_seconds / 60, 2),
        train_cpu_seconds=round(train_cpu_seconds, 1),
        train_pairs=len(train_pairs), data_dir=str(data_dir), src=s.src, tgt=s.tgt,
        machine={"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
                 "torch": torch.__version__},
        command=s.command,
        commands=commands,  # every invocation that trained this run (first one, then resumes)
    )
    atomic_write_text(out / METRICS, json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    return metrics


def evaluate_dir(out: Path, s: TrainSettings, data_dir: Path, test, val_pairs=None) -> dict:
    """Validation perplexity and greedy / beam BLEU of the weights in `out`."""
    model, (src_tok, tgt_tok), cfg = load_translator(out)
    metrics: dict = {}
    if val_pairs is not None:
        metrics["val_ppl"] = round(math.exp(evaluate_loss(model, val_pairs, 2 * s.batch_size)), 3)
    sources, refs = test.source, test.target
    if s.eval_limit:
        sources, refs = sources[: s.eval_limit], refs[: s.eval_limit]
    results: dict = {"split": s.eval_split, "sentences": len(sources)}
    for name, beam in (("greedy", 1), ("beam", s.beam_size)):
        if name == "beam" and beam <= 1:
            continue
        t0 = time.time()
        hyps = [t.text for t in translate(model, src_tok, tgt_tok, sources, beam_size=beam, progress=s.progress,
                                          length_penalty=s.length_penalty)]
        seconds = time.time() - t0
        (out / f"{s.eval_split}.{name}.{s.tgt}").write_text("".join(h + "\n" for h in hyps))
        bleu = corpus_bleu(hyps, refs)
        bleu.update(beam_size=beam, seconds=round(seconds, 1), sentences_per_s=round(len(sources) / seconds, 1))
        if name == "beam":
            bleu["length_penalty"] = s.length_penalty
        results[name] = bleu
        _log(f"{s.eval_split} {name} (beam {beam}): BLEU {bleu['bleu']:.2f} in {seconds:.0f}s  [{bleu['signature']}]")
    results["examples"] = [
        {"source": src, "reference": ref, "greedy": g}
        for src, ref, g in zip(sources[:5], refs[:5], (out / f"{s.eval_split}.greedy.{s.tgt}").read_text().splitlines())
    ]
    metrics["test"] = results
    return metrics
