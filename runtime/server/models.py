"""The served models: each a loaded Classifier or Translator behind its own Batcher."""
from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from onnxpress.errors import UserError
from onnxpress.runtime.batcher import Batcher, BatcherConfig, BatcherError, BatchObserver
from onnxpress.runtime.server.errors import InvalidInput, ModelNotFound, Timeout, from_batcher
from onnxpress.runtime.server.settings import DEFAULT_SPIN_US
from onnxpress.runtime.session_setup import spin_config

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KINDS = {"text-classification": "classifier", "translation": "translator"}


@dataclass
class ServedModel:
    name: str
    kind: str  # "classifier" | "translator"
    model: Any
    batcher: Batcher
    load_seconds: float

    async def run(self, texts: Sequence[str], timeout_s: float, **options: Any) -> Any:
        """Results for `texts` through the batcher, off the event loop; ApiError when not computed.
        `timeout_s`: what is left of the request's deadline."""
        if timeout_s <= 0:
            raise Timeout(f"deadline exceeded: no time left for {self.name} once the request was read")
        try:
            future = self.batcher.submit(texts, timeout_s=timeout_s, **options)
        except BatcherError as exc:
            raise from_batcher(exc) from None
        except (TypeError, ValueError) as exc:
            raise InvalidInput(str(exc)) from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        except asyncio.TimeoutError:
            future.cancel()
            raise Timeout(f"deadline exceeded: {self.name} did not answer in the {timeout_s:.3g} s left "
                          "of the request's deadline") from None
        except BatcherError as exc:
            raise from_batcher(exc) from None

    def metadata(self) -> dict[str, Any]:
        """KServe v2 model metadata."""
        inputs = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        if self.kind == "classifier":
            outputs = [{"name": "label", "datatype": "BYTES", "shape": [-1]},
                       {"name": "score", "datatype": "FP32", "shape": [-1]},
                       {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(self.model.labels)]}]
        else:
            outputs = [{"name": "translation", "datatype": "BYTES", "shape": [-1]},
                       {"name": "score", "datatype": "FP32", "shape": [-1]},
                       {"name": "attention", "datatype": "FP32", "shape": [-1, -1, -1]}]
        info: dict[str, Any] = {"name": self.name, "versions": ["1"], "platform": "onnxruntime_onnx",
                                "inputs": inputs, "outputs": outputs}
        if self.kind == "classifier":
            info["parameters"] = {"labels": list(self.model.labels)}
        return info


class Registry:
    """Models by name; lookups reject malformed names before touching the table."""

    def __init__(self, models: Sequence[ServedModel]):
        self.models = {m.name: m for m in models}

    def get(self, name: str) -> ServedModel:
        model = self.models.get(name) if NAME.match(name) else None
        if model is None:
            raise ModelNotFound(f"unknown model {name[:80]!r}; served: {', '.join(sorted(self.models))}")
        return model

    def only(self, kind: str, name: str | None) -> ServedModel:
        """The model `name`, or the single model of `kind` when no name is given."""
        if name is not None:
            model = self.get(name)
            if model.kind != kind:
                raise InvalidInput(f"model {name!r} is a {model.kind}, not a {kind}")
            return model
        matching = [m for m in self.models.values() if m.kind == kind]
        if len(matching) != 1:
            raise ModelNotFound(f"no {kind} is served" if not matching else
                                f"{len(matching)} {kind}s are served ({', '.join(m.name for m in matching)}): "
                                f"say which with \"model\"")
        return matching[0]

    def close(self, drain: bool = True) -> None:
        for model in self.models.values():
            model.batcher.close(drain=drain)

    @property
    def idle(self) -> bool:
        return all(m.batcher.idle for m in self.models.values())


def parse_model_args(paths: Sequence[str], named: Sequence[str]) -> list[tuple[str, Path]]:
    """(name, path) pairs from bare paths (named after their folder) and NAME=PATH items."""
    pairs = [(Path(p).resolve().name, Path(p)) for p in paths]
    for item in named:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise UserError(f"--name takes NAME=PATH (got {item!r})")
        pairs.append((name, Path(path)))
    if not pairs:
        raise UserError("give at least one artifact directory to serve")
    seen: set[str] = set()
    for name, path in pairs:
        if not NAME.match(name):
            raise UserError(f"model name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        if name in seen:
            raise UserError(f"two models are named {name!r}: name them with --name NAME=PATH")
        seen.add(name)
        if not path.is_dir():
            raise UserError(f"{path} is not an artifact directory")
    return pairs


def load_model(name: str, path: str | os.PathLike, config: BatcherConfig, observer: BatchObserver | None,
               spin_us: int | None = DEFAULT_SPIN_US, **load_options: Any) -> ServedModel:
    """Load an artifact as the model its manifest names, behind a new Batcher.

    `spin_us` bounds a classifier's ORT spin-waiting (`session_setup.spin_config`). A translator keeps
    ONNX Runtime's default: on CPU a translator of up to 30M weights runs one-thread sessions side by
    side (`parallel_runs`), which have no thread pool to spin; a larger one's spinning is unmeasured.
    """
    from onnxpress.runtime import Artifact, Classifier, Translator

    start = time.perf_counter()
    task = Artifact.open(path).manifest.task
    kind = KINDS.get(task)
    if kind is None:
        raise UserError(f"{path}: cannot serve a {task!r} artifact (serves {', '.join(KINDS)})")
    if kind == "classifier":
        load_options["session_config"] = {**spin_config(spin_us), **(load_options.get("session_config") or {})}
    model = (Classifier if kind == "classifier" else Translator).load(path, **load_options)
    seconds = time.perf_counter() - start
    return ServedModel(name, kind, model, Batcher(model, config, observer, name=name), seconds)
