"""Train, checkpoint, resume and evaluate the GRU + Bahdanau attention translator.

Output directory (what export reads via `load_translator`):

- `config.json`        model hyperparameters + special token ids + max lengths (`Seq2SeqConfig`)
- `model.safetensors`  weights of the best epoch (lowest validation loss)
- `source_tokenizer.json`, `target_tokenizer.json`  BPE tokenizers (pad=0, unk=1, <s>=2, </s>=3;
  the source tokenizer appends </s> itself)
- `training.json`      settings, per-epoch history, val perplexity, greedy/beam BLEU, timings, command
- `checkpoint.pt`      last epoch's model + optimizer + scheduler state, for `--resume`
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
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from onnxpress.errors import UserError
from onnxpress.training import multi30k, subword
from onnxpress.training.bleu import corpus_bleu
from onnxpress.training.decoding import encode_sources, translate
from onnxpress.training.seq2seq import Seq2Seq, Seq2SeqConfig, count_parameters

CONFIG, WEIGHTS, CHECKPOINT, METRICS = "config.json", "model.safetensors", "checkpoint.pt", "training.json"
SRC_TOKENIZER, TGT_TOKENIZER = "source_tokenizer.json", "target_tokenizer.json"


@dataclass
class TrainSettings:
    """Everything `train_translator` needs; defaults are the measured full configuration."""

    out: str = "runs/mt"
    data: str | None = None
    src: str = "de"
    tgt: str = "en"
    src_vocab: int = 8000
    tgt_vocab: int = 6000
    emb_dim: int = 256
    enc_hidden: int = 256
    dec_hidden: int = 256
    attn_dim: int = 256
    dropout: float = 0.3
    tie_embeddings: bool = True
    batch_size: int = 64
    lr: float = 1e-3
    lr_decay: float = 0.5  # multiply the learning rate by this when validation loss stops improving
    clip: float = 1.0
    label_smoothing: float = 0.1
    teacher_forcing: float = 1.0
    epochs: int = 20
    patience: int = 3  # early stopping: epochs without a better validation loss
    max_minutes: float | None = None  # training time budget (the running epoch is cut short)
    max_train_len: int = 50  # training pairs with more subwords on either side are skipped
    train_limit: int | None = None  # use only the first N training pairs
    eval_split: str = "test_2016_flickr"
    eval_limit: int | None = None  # evaluate on the first N sentences only
    beam_size: int = 5  # 0 or 1: no beam-search evaluation
    length_penalty: float = 1.0
    threads: int | None = None
    seed: int = 0
    progress: bool = True
    command: str = ""  # the command line that produced the run, recorded in training.json


PRESETS: dict[str, dict] = {
    # the TrainSettings defaults: 5.8M parameters, ~0.7 CPU-s per batch of 64 on one core of this machine.
    # `--max-minutes 110` on the shared 2-core box (7.1 epochs; 6-7 min/epoch when the box was quiet,
    # 25-28 when busy): val ppl 6.67, test_2016_flickr BLEU 37.17 greedy / 38.51 beam 5
    "full": {},
    # 1.8M parameters; 2 epochs took 377 CPU-s on one busy core and reached val ppl 15.8,
    # test_2016 BLEU 26.2 greedy / 27.0 beam (first 200 sentences); capped at 5 minutes of training
    "demo": dict(
        src_vocab=4000, tgt_vocab=3000, emb_dim=128, enc_hidden=128, dec_hidden=256, attn_dim=128,
        dropout=0.2, batch_size=64, lr=2e-3, epochs=2, max_minutes=5.0, beam_size=5, eval_limit=200,
    ),
    # seconds: for tests and smoke runs
    "tiny": dict(
        src_vocab=300, tgt_vocab=300, emb_dim=32, enc_hidden=32, dec_hidden=64, attn_dim=32,
        dropout=0.0, batch_size=16, lr=3e-3, epochs=1, beam_size=2, eval_limit=20,
    ),
}


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

    tmp = path.with_suffix(".tmp")
    save_model(model, str(tmp))  # handles the tied embedding/output weight
    os.replace(tmp, path)


# -- data ----------------------------------------------------------------------------------


def make_batches(pairs: list[tuple[list[int], list[int]]], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Index batches of similar length (sorted with a little noise), in shuffled order."""
    order = sorted(range(len(pairs)), key=lambda i: (len(pairs[i][0]) + rng.random() * 2, len(pairs[i][1])))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(pairs, idx: list[int], cfg: Seq2SeqConfig) -> tuple[Tensor, Tensor, Tensor]:
    """(src_ids [B,S], src_mask [B,S], tgt [B,T+2] = <s> y </s> padded)."""
    src = [pairs[i][0] for i in idx]
    tgt = [[cfg.bos_id] + pairs[i][1] + [cfg.eos_id] for i in idx]
    s_w, t_w = max(map(len, src)), max(map(len, tgt))
    src_ids = torch.full((len(idx), s_w), cfg.pad_id, dtype=torch.long)
    tgt_ids = torch.full((len(idx), t_w), cfg.pad_id, dtype=torch.long)
    for row, (s, t) in enumerate(zip(src, tgt)):
        src_ids[row, : len(s)] = torch.tensor(s)
        tgt_ids[row, : len(t)] = torch.tensor(t)
    return src_ids, src_ids != cfg.pad_id, tgt_ids


def sequence_loss(logits: Tensor, target: Tensor, pad_id: int, smoothing: float) -> tuple[Tensor, Tensor, int]:
    """(label-smoothed loss to optimize, summed NLL, number of target tokens); padding ignored."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    keep = target != pad_id
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    n = int(keep.sum())
    nll_sum = (nll * keep).sum()
    if smoothing > 0:
        smooth_sum = (-logp.mean(-1) * keep).sum()
        loss = ((1 - smoothing) * nll_sum + smoothing * smooth_sum) / max(n, 1)
    else:
        loss = nll_sum / max(n, 1)
    return loss, nll_sum.detach(), n


@torch.no_grad()
def evaluate_loss(model: Seq2Seq, pairs, batch_size: int) -> float:
    """Mean per-token NLL (no smoothing, no dropout) over `pairs`; exp of it is the perplexity."""
    model.eval()
    total, tokens = 0.0, 0
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]))
    for start in range(0, len(order), batch_size):
        src, mask, tgt = collate(pairs, order[start : start + batch_size], model.cfg)
        logits, _ = model(src, mask, tgt[:, :-1])
        _, nll, n = sequence_loss(logits, tgt[:, 1:], model.cfg.pad_id, 0.0)
        total += float(nll)
        tokens += n
    return total / max(tokens, 1)


def _encode_pairs(src_tok, tgt_tok, corpus, cfg: Seq2SeqConfig, max_len: int | None):
    src = encode_sources(src_tok, corpus.source, cfg.max_src_len)
    tgt = [e.ids for e in tgt_tok.encode_batch(corpus.target)]
    pairs = list(zip(src, tgt))
    if max_len is not None:
        pairs = [p for p in pairs if len(p[0]) <= max_len and len(p[1]) <= max_len]
    return pairs


# -- training --------------------------------------------------------------------------------


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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

    resume = out.joinpath(CHECKPOINT).is_file()
    if resume:
        cfg = Seq2SeqConfig.load(out / CONFIG)
        src_tok, tgt_tok = subword.load(out / SRC_TOKENIZER), subword.load(out / TGT_TOKENIZER)
        state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)
        if (state["src"], state["tgt"]) != (s.src, s.tgt):
            raise UserError(f"{out} holds a {state['src']}->{state['tgt']} model; cannot resume it as {s.src}->{s.tgt}")
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

    train_pairs = _encode_pairs(src_tok, tgt_tok, train, cfg, s.max_train_len)
    val_pairs = _encode_pairs(src_tok, tgt_tok, val, cfg, None)
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
        torch.save(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "epoch": epoch, "history": history, "best_val": best_val, "bad_epochs": bad_epochs,
             "train_seconds": train_seconds, "train_cpu_seconds": train_cpu_seconds, "stopped_by": stopped_by, "src": s.src, "tgt": s.tgt,
             "commands": commands, "torch_rng": torch.get_rng_state()},
            out / (CHECKPOINT + ".tmp"),
        )
        os.replace(out / (CHECKPOINT + ".tmp"), out / CHECKPOINT)
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
    (out / METRICS).write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
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
