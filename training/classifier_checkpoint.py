"""The classifier's resumable state in `OUT/checkpoint/`, and what a folder holds (see `run_dir`).

`checkpoint/state.pt` (model, optimizer, scheduler, rng, step, history) and `checkpoint/recipe.json`
are written every `save_every` steps and removed after a finished run; `training.json` marks a
run finished (or stopped early by `max_minutes`, `"complete": false`, which its checkpoint continues).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from onnxpress.errors import UserError
from onnxpress.runtime.jobs.durable import atomic_write_text
from onnxpress.training import run_dir
from onnxpress.training.run_dir import PriorRun

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.pt"
RECIPE_FILE = "recipe.json"
RESULT_FILE = "training.json"


def _read_prior(out: Path) -> PriorRun | None:
    result, ckpt_recipe = out / RESULT_FILE, out / CHECKPOINT_DIR / RECIPE_FILE
    for path in (result, ckpt_recipe):
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
            if path == result:
                # stopped early by --max-minutes: its checkpoint continues it
                return PriorRun(recipe=data["recipe"], finished=data.get("complete", True))
            return PriorRun(recipe=data, finished=False)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UserError(f"{path} is corrupt; pass --overwrite to start {out} afresh") from None
    return None


def _clear(out: Path) -> None:
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    (out / RESULT_FILE).unlink(missing_ok=True)


def prepare_out_dir(out: Path, recipe: dict, overwrite: bool) -> run_dir.Status:
    """'fresh', 'resume' or 'done' for a classifier run of `recipe` in `out`; `UserError` otherwise."""
    status = run_dir.run_status(out, recipe, lambda: _read_prior(out), overwrite=overwrite,
                                clear=lambda: _clear(out), kind="classifier")
    if status == "resume" and not (out / CHECKPOINT_DIR / STATE_FILE).is_file():
        if (out / RESULT_FILE).is_file():
            raise UserError(f"{out} holds a run stopped early whose checkpoint is gone; "
                            "pass --overwrite to start afresh")
        raise UserError(f"{out / CHECKPOINT_DIR} has no {STATE_FILE}; pass --overwrite to start afresh")
    return status


def save_checkpoint(out: Path, recipe: dict, state: dict) -> None:
    """Write resumable state, then its recipe (a crash mid-write leaves the previous checkpoint)."""
    run_dir.save_state(out / CHECKPOINT_DIR / STATE_FILE, state)
    atomic_write_text(out / CHECKPOINT_DIR / RECIPE_FILE, json.dumps(recipe, indent=2) + "\n")


def load_checkpoint(out: Path) -> dict:
    return run_dir.load_state(out / CHECKPOINT_DIR / STATE_FILE)


def remove_checkpoint(out: Path) -> None:
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
