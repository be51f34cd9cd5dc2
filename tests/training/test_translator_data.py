"""Parallel data validation and tokenizer behaviour: clear errors for bad input, exact detokenization."""
from __future__ import annotations

from pathlib import Path

import pytest

from onnxpress.errors import UserError
from onnxpress.training import multi30k, subword
from translator_fixtures import PAIRS, mt_dir, pair_tokenizers, write_split  # noqa: F401 (fixtures)


def test_reads_aligned_split(mt_dir: Path):
    corpus = multi30k.read_parallel(mt_dir, "train", "de", "en")
    assert len(corpus) == 40
    assert (corpus.source[0], corpus.target[0]) == PAIRS[0]


def test_mismatched_line_counts(mt_dir: Path):
    (mt_dir / "val.en").write_text("One line.\n")
    with pytest.raises(UserError, match=r"differ in length: .*val.de has 8 lines, .*val.en has 1"):
        multi30k.read_parallel(mt_dir, "val", "de", "en")


def test_empty_line_names_file_and_line(mt_dir: Path):
    lines = (mt_dir / "val.de").read_text().splitlines()
    lines[2] = "   "
    (mt_dir / "val.de").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"val.de:3: empty line"):
        multi30k.read_parallel(mt_dir, "val", "de", "en")


@pytest.mark.parametrize("src,tgt,message", [
    ("xx", "en", "unknown language code 'xx'"),
    ("de", "fr", "no 'fr' files"),
    ("de", "de", "both 'de'"),
])
def test_bad_language_pairs(mt_dir: Path, src, tgt, message):
    with pytest.raises(UserError, match=message):
        multi30k.read_parallel(mt_dir, "train", src, tgt)


def test_missing_split(mt_dir: Path):
    with pytest.raises(UserError, match=r"split 'test_2017_flickr' missing.*splits here: test_2016_flickr, train, val"):
        multi30k.read_parallel(mt_dir, "test_2017_flickr", "de", "en")


def test_missing_data_dir(tmp_path: Path):
    with pytest.raises(UserError, match="no translation/multi30k data"):
        multi30k.resolve_data_dir(tmp_path)


def test_tokenizers_detokenize_exactly_and_use_fixed_special_ids(pair_tokenizers):
    src_tok, tgt_tok = pair_tokenizers
    assert subword.special_ids(src_tok) == subword.special_ids(tgt_tok) == {"pad": 0, "unk": 1, "bos": 2, "eos": 3}
    for _, text in PAIRS:
        ids = tgt_tok.encode(text).ids
        assert 3 not in ids  # the target tokenizer adds nothing
        assert tgt_tok.decode(ids) == text
    ids = src_tok.encode("Ein Mann fährt  Fahrrad. ").ids
    assert ids[-1] == 3  # the source tokenizer appends </s>
    assert src_tok.decode(ids) == "Ein Mann fährt Fahrrad."
    # punctuation is its own piece, so "Fahrrad." and "Fahrrad" share the word piece
    assert src_tok.encode("Fahrrad").tokens[0] == src_tok.encode("Fahrrad.").tokens[0]
