"""AG News: the original CSV reader, text normalisation and label names.

The CSV has no header; each row is (class index 1..N, title, description). Texts keep the
original crawl's escapes, which `clean_text` normalises:

- a backslash stood for a line break (``this\\together``) -> a space; ``\\$`` -> ``$``;
- HTML entities, also the mangled ones whose ``&`` became a space (``France #39;s``,
  ``the  quot;x``) -> characters, dropping that space (``France's``, ``the "x``);
- HTML markup left in a few descriptions (``<b>...</b>``, ``<FONT ...>``) -> removed;
- runs of whitespace -> one space.
"""
from __future__ import annotations

import csv
import hashlib
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from onnxpress.errors import UserError
from onnxpress.training.data_root import find_dataset, not_found_message

SUBDIR = "ag_news"
MARKER = "test.csv"
DEFAULT_LABELS = ["World", "Sports", "Business", "Sci/Tech"]  # used only when classes.txt is missing

_ESCAPED_DOLLAR = re.compile(r"\\+\$")
_BACKSLASH = re.compile(r"\\+")
# Entities whose "&" the crawl turned into a space ("France #39;s", "the  quot;x"): numeric ones,
# and the named ones seen in the corpus. The space that replaced the "&" goes with it.
_BARE_NUMERIC = re.compile(r"(?<!&) ?#(\d{2,5});")
_BARE_NAMED = re.compile(
    r"(?: |(?<![&\w]))(quot|amp|lt|gt|nbsp|hellip|rsquo|lsquo|rdquo|ldquo|mdash|ndash|eacute|pound|euro);"
)
_TAG = re.compile(r"<[^<>]{0,200}>")
_SPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Normalise one AG News field (see the module docstring)."""
    text = _ESCAPED_DOLLAR.sub("$", text)
    text = _BACKSLASH.sub(" ", text)
    text = _BARE_NUMERIC.sub(r"&#\1;", text)
    text = _BARE_NAMED.sub(r"&\1;", text)
    text = html.unescape(text)
    text = _TAG.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


@dataclass
class Split:
    """One split: texts, 0-based labels, the class names, and the rows that were skipped."""

    texts: list[str]
    labels: list[int]
    label_names: list[str]
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    source: str = ""
    sha256: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int | None) -> "Split":
        """The first `n` rows (all if `n` is None)."""
        if n is None or n >= len(self):
            return self
        return Split(self.texts[:n], self.labels[:n], self.label_names, self.skipped, self.source, self.sha256)

    def skipped_summary(self, limit: int = 5) -> str:
        shown = "; ".join(f"line {line}: {reason}" for line, reason in self.skipped[:limit])
        more = f"; ... {len(self.skipped) - limit} more" if len(self.skipped) > limit else ""
        return f"{len(self.skipped)} malformed rows skipped in {self.source} ({shown}{more})"


def read_label_names(directory: Path) -> list[str]:
    """Class names from `classes.txt` (line i names class i), or the AG News names if it is absent."""
    path = Path(directory) / "classes.txt"
    if not path.is_file():
        return list(DEFAULT_LABELS)
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise UserError(f"{path} lists no class names")
    return names


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_csv(path: str | os.PathLike, label_names: list[str]) -> Split:
    """Read an AG News CSV. Malformed rows are skipped and recorded with their line numbers.

    Raises `UserError` if the file is missing, unreadable, or holds no usable row.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    n = len(label_names)
    texts: list[str] = []
    labels: list[int] = []
    skipped: list[tuple[int, str]] = []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            line = 1  # physical line where the next record starts (records may span lines)
            for row in reader:
                start, line = line, reader.line_num + 1
                if not row:
                    continue  # blank line
                if len(row) != 3:
                    skipped.append((start, f"expected 3 columns, got {len(row)}"))
                    continue
                label, title, description = row
                if not label.strip().isdigit() or not 1 <= int(label) <= n:
                    skipped.append((start, f"label {label[:20]!r} is not in 1..{n}"))
                    continue
                text = clean_text(f"{title} {description}")
                if not text:
                    skipped.append((start, "empty text"))
                    continue
                texts.append(text)
                labels.append(int(label) - 1)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path} is not a readable AG News CSV: {exc}") from None
    split = Split(texts, labels, list(label_names), skipped, str(path), file_sha256(path))
    if not texts:
        detail = f": {split.skipped_summary()}" if skipped else " (the file is empty)"
        raise UserError(f"{path} has no usable rows{detail}")
    return split


def _hub_available() -> bool:
    offline = {"1", "true", "yes", "on"}
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in offline:
        return False
    if os.environ.get("HF_DATASETS_OFFLINE", "").lower() in offline:
        return False
    try:
        import datasets  # noqa: F401
    except ImportError:
        return False
    return True


def _load_from_hub() -> tuple[Split, Split]:
    import datasets

    ds = datasets.load_dataset("ag_news")
    names = ds["train"].features["label"].names
    out = []
    for name in ("train", "test"):
        part = ds[name]
        texts = [clean_text(t) for t in part["text"]]
        out.append(Split(texts, list(part["label"]), names, source=f"hf:ag_news/{name}", sha256=part._fingerprint))
    return out[0], out[1]


def load_ag_news(data: str | os.PathLike | None = None) -> tuple[Split, Split]:
    """(train, test) splits from `data`, `$ONNXPRESS_DATA`, ../shared/data, ./data, or the hub if online."""
    directory = find_dataset(data, SUBDIR, MARKER)
    if directory is None:
        if _hub_available():
            return _load_from_hub()
        raise UserError(not_found_message(SUBDIR, MARKER))
    names = read_label_names(directory)
    if not (directory / "train.csv").is_file():
        raise UserError(f"{directory} has {MARKER} but no train.csv")
    return read_csv(directory / "train.csv", names), read_csv(directory / MARKER, names)
