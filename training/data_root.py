"""Where data sets are found: an explicit path, `$ONNXPRESS_DATA`, `../shared/data` or `./data`."""
from __future__ import annotations

import os
from pathlib import Path

from onnxpress.errors import UserError

ENV_VAR = "ONNXPRESS_DATA"


def candidate_roots() -> list[Path]:
    roots = []
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]))
    roots += [Path.cwd().parent / "shared" / "data", Path.cwd() / "data"]
    return roots


def find_dataset(explicit: str | os.PathLike | None, subdir: str, marker: str) -> Path | None:
    """The directory holding data set `subdir` (containing file `marker`), or None if not found.

    `explicit` may be the data set directory itself or a data root containing `subdir`;
    if given, nothing else is searched, and a miss is an error.
    """
    if explicit is not None:
        path = Path(explicit)
        for candidate in (path, path / subdir):
            if (candidate / marker).is_file():
                return candidate
        raise UserError(f"no {subdir} data in {path} (expected {path / marker} or {path / subdir / marker})")
    for root in candidate_roots():
        if (root / subdir / marker).is_file():
            return root / subdir
    return None


def not_found_message(subdir: str, marker: str) -> str:
    looked = ", ".join(str(r / subdir) for r in candidate_roots())
    return (
        f"{subdir} data not found (looked for {marker} in: {looked}); "
        f"pass --data DIR or set {ENV_VAR}=DIR"
    )
