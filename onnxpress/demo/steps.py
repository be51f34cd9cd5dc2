"""Resumable demo steps: each is one `onnxpress` command line, skipped when its outputs already exist.

A finished step is recorded in `steps.json` beside its outputs (command, seconds, when); a rerun
reuses a step whose command is unchanged, whose outputs are all present and none of whose inputs
were rebuilt in this run. A failing step
stops the demo with a one-line error that names the step and the fix.
"""
from __future__ import annotations

import json
import shlex
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from onnxpress.errors import UserError
from onnxpress.runtime.durable import atomic_write_text

LEDGER = "steps.json"


@dataclass(frozen=True)
class Step:
    """One demo step: an `onnxpress` command line and the files that prove it finished."""

    name: str  # short id, e.g. "train-classifier"
    title: str  # what the step does, for people
    argv: list[str]  # the command, without the leading `onnxpress`
    outputs: tuple[Path, ...]  # all present (and the command unchanged): the step is reused
    fix: str  # what to try when it fails
    needs: tuple[str, ...] = ()  # steps whose outputs this one reads: when one of them runs, this one reruns

    @property
    def command(self) -> str:
        return "onnxpress " + shlex.join(self.argv)


@dataclass(frozen=True)
class StepRecord:
    """How a step went in this run: `ran` or `reused`, and the seconds its last real run took."""

    name: str
    title: str
    command: str
    status: str
    seconds: float
    finished: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Ledger:
    """`steps.json` in the demo folder: the record of every finished step, kept across runs."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LEDGER
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text())["steps"]
            except (ValueError, KeyError, TypeError):
                self.entries = {}  # unreadable ledger: every step reruns (each is resumable itself)

    def finished(self, step: Step) -> dict[str, Any] | None:
        entry = self.entries.get(step.name)
        if entry and entry.get("command") == step.command and all(p.exists() for p in step.outputs):
            return entry
        return None

    def record(self, record: StepRecord) -> None:
        self.entries[record.name] = record.to_dict()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps({"steps": self.entries}, indent=1) + "\n")

    def forget(self, name: str) -> None:
        self.entries.pop(name, None)


def _invoke(argv: list[str]) -> int:
    """Run the CLI in this process; argparse exits and stray exceptions become a status."""
    from onnxpress.cli import main

    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    except Exception:  # a bug, not a user mistake: show its traceback, then the step and fix
        traceback.print_exc()
        return 1


def run_step(step: Step, ledger: Ledger, ran: set[str]) -> StepRecord:
    """Run `step` unless the ledger shows it finished with the same command and none of its `needs` is in
    `ran` (the steps that ran this time); add it to `ran` when it runs; raise UserError on failure."""
    done = None if ran.intersection(step.needs) else ledger.finished(step)
    if done:
        print(f"\n=== {step.title}: reused ({step.command})", flush=True)
        return StepRecord(step.name, step.title, step.command, "reused", float(done["seconds"]), done["finished"])
    print(f"\n=== {step.title}\n$ {step.command}", flush=True)
    ledger.forget(step.name)
    started = time.perf_counter()
    status = _invoke(step.argv)
    seconds = time.perf_counter() - started
    missing = [str(p) for p in step.outputs if not p.exists()]
    if status or missing:
        why = f"exit status {status}" if status else f"it did not write {', '.join(missing)}"
        raise UserError(f"demo step '{step.name}' failed ({why}; its message is above). Fix: {step.fix}; "
                        "then rerun `make demo`: finished steps are reused")
    print(f"--- {step.title}: done in {seconds:.0f} s", flush=True)
    record = StepRecord(step.name, step.title, step.command, "ran", round(seconds, 1),
                        datetime.now(timezone.utc).isoformat(timespec="seconds"))
    ledger.record(record)
    ran.add(step.name)
    return record
