"""Fixtures for the translator tests: 20 German-English caption pairs, a Multi30k-shaped folder,
tokenizers trained on the pairs and a tiny random model.

Test modules import what they use: `from translator_fixtures import mt_dir, tiny_model`.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PAIRS = [
    ("Ein Mann fährt Fahrrad.", "A man is riding a bike."),
    ("Eine Frau liest ein Buch.", "A woman is reading a book."),
    ("Zwei Hunde spielen im Schnee.", "Two dogs are playing in the snow."),
    ("Ein Kind isst einen Apfel.", "A child is eating an apple."),
    ("Eine Gruppe von Menschen steht vor einem Gebäude.", "A group of people stands in front of a building."),
    ("Ein Junge springt in den See.", "A boy jumps into the lake."),
    ("Ein Mädchen in einem roten Kleid tanzt.", "A girl in a red dress is dancing."),
    ("Männer arbeiten auf einer Baustelle.", "Men are working at a construction site."),
    ("Ein Hund läuft über das Gras.", "A dog runs across the grass."),
    ("Eine Frau kocht in der Küche.", "A woman is cooking in the kitchen."),
    ("Ein alter Mann sitzt auf einer Bank.", "An old man sits on a bench."),
    ("Kinder spielen Fußball im Park.", "Children play soccer in the park."),
    ("Ein Mann mit Hut spielt Gitarre.", "A man with a hat plays the guitar."),
    ("Zwei Frauen gehen die Straße entlang.", "Two women walk down the street."),
    ("Ein Radfahrer fährt einen Berg hinauf.", "A cyclist rides up a hill."),
    ("Eine Katze schläft auf dem Sofa.", "A cat sleeps on the sofa."),
    ("Ein Mann schwimmt im Meer.", "A man swims in the ocean."),
    ("Leute warten an einer Bushaltestelle.", "People wait at a bus stop."),
    ("Ein Baby lacht.", "A baby laughs."),
    ("Ein Koch schneidet Gemüse.", "A cook cuts vegetables."),
]


def write_split(folder: Path, split: str, pairs, src: str = "de", tgt: str = "en") -> None:
    (folder / f"{split}.{src}").write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    (folder / f"{split}.{tgt}").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")


@pytest.fixture
def mt_dir(tmp_path: Path) -> Path:
    """A Multi30k-shaped folder: train (the 20 pairs, twice), val and test_2016_flickr."""
    folder = tmp_path / "multi30k"
    folder.mkdir()
    write_split(folder, "train", PAIRS * 2)
    write_split(folder, "val", PAIRS[:8])
    write_split(folder, "test_2016_flickr", PAIRS[8:])
    return folder


@pytest.fixture(scope="module")
def pair_tokenizers():
    from onnxpress.training import subword

    src = subword.train_bpe([s for s, _ in PAIRS], 200, min_frequency=1, append_eos=True)
    tgt = subword.train_bpe([t for _, t in PAIRS], 200, min_frequency=1)
    return src, tgt


def tiny_config(src_vocab: int = 50, tgt_vocab: int = 40, **kw):
    from onnxpress.training.seq2seq import Seq2SeqConfig

    base = dict(emb_dim=16, enc_hidden=16, dec_hidden=24, attn_dim=12, dropout=0.0, max_tgt_len=30)
    base.update(kw)
    return Seq2SeqConfig(src_vocab, tgt_vocab, **base)


@pytest.fixture
def tiny_model():
    from onnxpress.training.seq2seq import Seq2Seq

    torch.manual_seed(0)
    return Seq2Seq(tiny_config()).eval()


def random_batch(lengths: list[int], vocab: int = 50, seed: int = 0):
    """Right-padded source ids (each ending in </s>=3) and their mask."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, : n - 1] = torch.randint(4, vocab, (n - 1,), generator=g)
        ids[i, n - 1] = 3
    return ids, ids != 0


@pytest.fixture
def single_thread():
    """Run torch on one thread for the test (tiny models; extra threads only spin on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
