"""A tiny translator trained for a few seconds on a handful of sentences: for tests and smoke runs.

It has the real architecture (`onnxpress.training.seq2seq.Seq2Seq`) and real BPE tokenizers,
just very small, so the export and runtime paths run end to end in a second or two.
"""
from __future__ import annotations

from pathlib import Path

GERMAN = [
    "Ein Mann fährt Fahrrad.", "Eine Frau liest ein Buch.", "Zwei Hunde spielen im Park.",
    "Ein Kind isst einen Apfel.", "Ein Mann trinkt Kaffee.", "Eine Frau fährt ein Auto.",
    "Drei Kinder spielen Fußball.", "Ein Hund läuft über die Straße.", "Ein Mann liest eine Zeitung.",
    "Eine Frau trinkt Tee.", "Zwei Männer spielen Karten.", "Ein Kind fährt Fahrrad.",
    "Ein Hund schläft im Gras.", "Eine Frau isst einen Apfel.", "Zwei Frauen laufen im Park.",
    "Ein Mann spielt Gitarre.", "Ein Mädchen liest ein Buch im Park.", "Ein Junge trinkt Wasser.",
    "Zwei Kinder essen Eis.", "Ein alter Mann sitzt auf einer Bank.",
]
ENGLISH = [
    "A man rides a bike.", "A woman reads a book.", "Two dogs play in the park.",
    "A child eats an apple.", "A man drinks coffee.", "A woman drives a car.",
    "Three children play soccer.", "A dog runs across the street.", "A man reads a newspaper.",
    "A woman drinks tea.", "Two men play cards.", "A child rides a bike.",
    "A dog sleeps in the grass.", "A woman eats an apple.", "Two women run in the park.",
    "A man plays guitar.", "A girl reads a book in the park.", "A boy drinks water.",
    "Two children eat ice cream.", "An old man sits on a bench.",
]


def build_toy_translator(out_dir: str | Path, steps: int = 40, seed: int = 0, dims: int = 24):
    """Train a toy de->en model; returns `LoadedTranslator` with tokenizers saved in `out_dir`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread is fastest, and far faster on a loaded machine
    try:
        return _build(Path(out_dir), steps, seed, dims)
    finally:
        torch.set_num_threads(threads)


def _build(out_dir: Path, steps: int, seed: int, dims: int):
    import torch

    from onnxpress.export.translator import LoadedTranslator
    from onnxpress.training.seq2seq import Seq2Seq, Seq2SeqConfig
    from onnxpress.training.subword import save, special_ids, train_bpe

    out_dir.mkdir(parents=True, exist_ok=True)
    src_tok = train_bpe(GERMAN, vocab_size=120, min_frequency=1, append_eos=True)
    tgt_tok = train_bpe(ENGLISH, vocab_size=100, min_frequency=1)
    ids = special_ids(tgt_tok)
    save(src_tok, out_dir / "source_tokenizer.json")
    save(tgt_tok, out_dir / "target_tokenizer.json")
    torch.manual_seed(seed)
    cfg = Seq2SeqConfig(
        src_vocab_size=src_tok.get_vocab_size(), tgt_vocab_size=tgt_tok.get_vocab_size(), emb_dim=dims,
        enc_hidden=dims, dec_hidden=dims + 8, attn_dim=dims - 8, dropout=0.0,
        pad_id=ids["pad"], unk_id=ids["unk"], bos_id=ids["bos"], eos_id=ids["eos"], max_src_len=32, max_tgt_len=40,
    )
    model = Seq2Seq(cfg)
    src = [e.ids for e in src_tok.encode_batch(GERMAN)]
    tgt = [[cfg.bos_id] + e.ids + [cfg.eos_id] for e in tgt_tok.encode_batch(ENGLISH)]

    def pad(rows):
        width = max(map(len, rows))
        t = torch.full((len(rows), width), cfg.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            t[i, : len(r)] = torch.tensor(r)
        return t

    src_ids, tgt_ids = pad(src), pad(tgt)
    src_mask = (src_ids != cfg.pad_id).long()
    # Adam by hand: torch.optim's first use imports torch._dynamo, seconds of start-up for a toy
    params = [p for p in model.parameters() if p.requires_grad]
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    lr, b1, b2 = 0.03, 0.9, 0.999
    model.train()
    for step in range(1, steps + 1):
        logits, _ = model(src_ids, src_mask, tgt_ids[:, :-1])
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), tgt_ids[:, 1:].reshape(-1), ignore_index=cfg.pad_id)
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p, (m, v) in zip(params, moments):
                if p.grad is None:
                    continue
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                p.sub_(lr * (m / (1 - b1**step)) / ((v / (1 - b2**step)).sqrt() + 1e-8))
    model.eval()
    return LoadedTranslator(model=model, config=cfg, source_tokenizer=out_dir / "source_tokenizer.json",
                            target_tokenizer=out_dir / "target_tokenizer.json",
                            meta={"src": "de", "tgt": "en", "final_loss": float(loss.detach())})


def build_toy_artifact(root: str | Path, variants: tuple[str, ...] = ("fp32", "int8")):
    """The toy translator trained in `root/ckpt` and exported to `root/art`: (LoadedTranslator, artifact dir)."""
    from onnxpress.export.translator import ExportOptions, build_artifact

    root = Path(root)
    loaded = build_toy_translator(root / "ckpt")
    build_artifact(loaded, root / "art", ExportOptions(variants=variants, progress=False), calibration=GERMAN)
    return loaded, root / "art"
