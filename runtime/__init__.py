"""onnxpress.runtime: the torch-free inference engine (onnxruntime + tokenizers + numpy).

    from onnxpress.runtime import Classifier
    clf = Classifier.load("artifacts/clf", variant="auto", device="auto", threads=None)
    clf.predict(["Stocks rally as ..."])      # -> [Prediction(label, score, truncated)]
    clf.predict_proba(texts)                  # -> np.ndarray [n, n_labels]

    from onnxpress.runtime import Translator
    tr = Translator.load("artifacts/mt", variant="auto", device="auto")
    tr.translate(["Ein Mann fährt Fahrrad."], beam_size=4, return_attention=True)

Importing this package is cheap: submodules (and onnxruntime itself) load on first use.
It never imports torch, transformers or optimum.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Classifier": "onnxpress.runtime.classifier",
    "Translator": "onnxpress.runtime.translator",
    "Translation": "onnxpress.runtime.translator",
    "Prediction": "onnxpress.runtime.classifier",
    "Scores": "onnxpress.runtime.classifier",
    "Artifact": "onnxpress.runtime.artifact",
    "Manifest": "onnxpress.runtime.artifact",
    "Variant": "onnxpress.runtime.artifact",
    "TensorSpec": "onnxpress.runtime.artifact",
    "TokenBudget": "onnxpress.runtime.token_budget",
    "Engine": "onnxpress.runtime.engine",
    "EngineConfig": "onnxpress.runtime.engine",
    "detect": "onnxpress.runtime.devices",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from onnxpress.runtime.artifact import Artifact, Manifest, TensorSpec, Variant
    from onnxpress.runtime.token_budget import TokenBudget
    from onnxpress.runtime.classifier import Classifier, Prediction, Scores
    from onnxpress.runtime.devices import detect
    from onnxpress.runtime.engine import Engine, EngineConfig
    from onnxpress.runtime.translator import Translation, Translator


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'onnxpress.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
