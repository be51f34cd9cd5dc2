"""Multi30k-style parallel text: `<split>.<lang>` files, one sentence per line, line i aligned.

Reading validates what a translator needs (both files exist, equal line counts, no empty
lines, a real language pair) and fails with a `UserError` naming the file and line.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from onnxpress.errors import UserError
from onnxpress.training.data_root import find_dataset, not_found_message

SUBDIR = "translation/multi30k"
MARKER = "train.en"
# Language codes Multi30k publishes; `available_languages` says which are on disk.
KNOWN_LANGUAGES = ("en", "de", "fr", "cs")
SPLITS = ("train", "val", "test_2016_flickr", "test_2017_flickr")


@dataclass(frozen=True)
class ParallelCorpus:
    """Aligned sentence lists of one split (`source[i]` translates to `target[i]`)."""

    split: str
    src_lang: str
    tgt_lang: str
    source: list[str]
    target: list[str]

    def __len__(self) -> int:
        return len(self.source)


def resolve_data_dir(explicit: str | os.PathLike | None) -> Path:
    """The Multi30k directory: `explicit` (the directory or a data root) or the usual places."""
    found = find_dataset(explicit, SUBDIR, MARKER)
    if found is None:
        raise UserError(not_found_message(SUBDIR, MARKER))
    return found


def available_languages(data_dir: Path, split: str = "train") -> list[str]:
    return sorted(p.suffix[1:] for p in Path(data_dir).glob(f"{split}.*") if p.suffix[1:].isalpha())


def check_language_pair(data_dir: Path, src: str, tgt: str) -> None:
    """Raise a UserError unless `src` and `tgt` are two different languages present in `data_dir`."""
    on_disk = available_languages(data_dir)
    for code in (src, tgt):
        if code not in KNOWN_LANGUAGES and code not in on_disk:
            raise UserError(
                f"unknown language code {code!r}; Multi30k has {', '.join(KNOWN_LANGUAGES)}"
                f" (here: {', '.join(on_disk) or 'none'})"
            )
        if code not in on_disk:
            raise UserError(f"no {code!r} files in {data_dir} (languages here: {', '.join(on_disk) or 'none'})")
    if src == tgt:
        raise UserError(f"source and target language are both {src!r}; pick two different languages")


def read_lines(path: Path, allow_empty: bool = False) -> list[str]:
    """Lines of a UTF-8 text file without their line ends; an empty line is an error unless allowed."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start a new one
    if not allow_empty:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                raise UserError(f"{path}:{number}: empty line (every line must hold one sentence)")
    return lines


def read_parallel(data_dir: str | os.PathLike, split: str, src: str, tgt: str, allow_empty: bool = False) -> ParallelCorpus:
    """Read `split.src` / `split.tgt` from `data_dir`, checking they are aligned."""
    data_dir = Path(data_dir)
    check_language_pair(data_dir, src, tgt)
    paths = [data_dir / f"{split}.{lang}" for lang in (src, tgt)]
    for path in paths:
        if not path.is_file():
            present = sorted({p.name.rsplit(".", 1)[0] for p in data_dir.glob(f"*.{src}")})
            raise UserError(f"split {split!r} missing: no {path} (splits here: {', '.join(present) or 'none'})")
    source, target = (read_lines(p, allow_empty) for p in paths)
    if len(source) != len(target):
        raise UserError(
            f"parallel files differ in length: {paths[0]} has {len(source)} lines, {paths[1]} has {len(target)}"
        )
    if not source:
        raise UserError(f"split {split!r} is empty: {paths[0]}")
    return ParallelCorpus(split, src, tgt, source, target)
