"""A progress bar on stderr when tqdm is installed and wanted; nothing otherwise (tqdm is optional)."""
from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Rows done out of a total that may be unknown (then estimated from the bytes read)."""

    def __init__(self, total: int | None, unit: str, description: str, enabled: bool):
        self._bar: Any = None
        self._estimate = total is None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, unit=unit, desc=description, dynamic_ncols=True, file=sys.stderr)

    def advance(self, n: int, done: int, fraction_read: float) -> None:
        if self._bar is None:
            return
        self._bar.update(n)
        if self._estimate and fraction_read > 0:
            self._bar.total = max(done, int(done / fraction_read))
            self._bar.refresh()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

