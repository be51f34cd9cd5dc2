"""What the sections share: progress bars and the text files handed to probe children."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence


def progress(items: Sequence[Any], desc: str, enabled: bool) -> Any:
    """`items`, with a progress bar on stderr when `enabled`."""
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, file=sys.stderr, leave=False)


def write_lines(path: Path, texts: Sequence[str]) -> Path:
    """One text per line (line breaks inside a text become spaces), for the child processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(" ".join(t.splitlines()) + "\n" for t in texts), encoding="utf-8")
    return path
