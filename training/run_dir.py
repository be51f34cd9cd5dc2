"""The output folder of a training run: start it, resume it, or leave a finished one alone.

Both trainers follow one rule. A folder holding an unfinished run with the same recipe (the
settings that shape the model) is resumed by itself; a finished one is left as it is; a different
run, or files that are no run at all, are refused unless `overwrite` clears them first.
Resumable state is written with `onnxpress.runtime.jobs.durable.atomic_write`, so a crash mid-save
leaves the previous checkpoint.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from onnxpress.errors import UserError
from onnxpress.runtime.jobs.durable import atomic_write

Status = Literal["fresh", "resume", "done"]


@dataclass(frozen=True)
class PriorRun:
    """What a folder says about the run it holds."""

    recipe: dict
    finished: bool


def normalise(recipe: dict) -> dict:
    """The recipe as it reads back from JSON (tuples become lists, ...), so that equality is exact."""
    return json.loads(json.dumps(recipe))


def recipe_diff(old: dict, new: dict) -> str:
    """`key: old -> new` for the first four keys that differ."""
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    text = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:4])
    return text + (" ..." if len(keys) > 4 else "")


def run_status(out: Path, recipe: dict, read_prior: Callable[[], PriorRun | None], *, overwrite: bool,
               clear: Callable[[], None], kind: str) -> Status:
    """'fresh', 'resume' or 'done' for a run of `recipe` in `out`; raises `UserError` otherwise.

    `read_prior` returns the run the folder holds (None: none) and raises `UserError` if its
    files are corrupt; `clear` removes that run's files (for `overwrite`).
    """
    if not out.exists():
        return "fresh"
    if not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    if not any(out.iterdir()):
        return "fresh"
    if overwrite:
        clear()
        return "fresh"
    prior = read_prior()
    if prior is None:
        raise UserError(f"--out {out} is not empty and holds no {kind} run; "
                        "choose another directory or pass --overwrite")
    if prior.recipe != recipe:
        raise UserError(f"--out {out} holds a different run ({recipe_diff(prior.recipe, recipe)}); "
                        "choose another directory or pass --overwrite")
    return "done" if prior.finished else "resume"


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write resumable training state (model, optimizer, rng, ...) atomically and durably."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save(state, fh))


def load_state(path: Path, weights_only: bool = True) -> dict[str, Any]:
    """The state `save_state` wrote; a corrupt file is a `UserError` that names the way out."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # truncated/corrupt pickle or zip: any of several exception types
        raise UserError(f"checkpoint {path} is corrupt ({first_line(exc)}); "
                        "pass --overwrite to start afresh") from None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (third-party messages can run to pages)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
