"""The shared loading path: `open` takes variant and device as given, `load` chooses; budgets checked."""
from __future__ import annotations

import numpy as np
import pytest

from onnxpress.errors import UserError
from onnxpress.runtime import Classifier
from onnxpress.runtime.artifact import Artifact
from onnxpress.runtime.devices import CPU_EP, CUDA_EP, TRT_EP, detect
from onnxpress.runtime.loading import open_variant, token_budget

NO_GPU = detect([TRT_EP, CUDA_EP, CPU_EP], (False, "no NVIDIA GPU device (/dev/nvidia*)", False, "x"))


def test_open_runs_a_gpu_variant_on_cpu_as_given(artifact_dir, texts):
    # export validation runs fp16/GPU variants on CPU: no auto choice, no device check
    clf = Classifier.open(artifact_dir, "fp16", "cpu", threads=1)
    assert (clf.variant, clf.device) == ("fp16", "cpu")
    ref = Classifier.load(artifact_dir, variant="fp32", threads=1, accelerators=NO_GPU)
    np.testing.assert_allclose(clf.predict_proba(texts), ref.predict_proba(texts), atol=1e-6)  # same graph
    same = Classifier.open(Artifact.open(artifact_dir), "fp16", "cpu", threads=1)  # an opened artifact too
    assert same.labels == clf.labels


def test_open_refuses_auto_and_rejected_variants(artifact_dir):
    with pytest.raises(UserError, match="use load"):
        Classifier.open(artifact_dir, "auto", "cpu")
    with pytest.raises(UserError, match="rejected.*accuracy 0.61"):
        Classifier.open(artifact_dir, "int4", "cpu")
    with pytest.raises(UserError, match="unknown device"):
        Classifier.open(artifact_dir, "fp32", "tpu")


def test_budget_limits_are_checked_not_replaced():
    assert token_budget(None, None, 512, 64) == token_budget(512, 64, 1, 1)
    for bad in (0, -5, "many", True):
        with pytest.raises(UserError, match="max_batch_tokens must be an integer >= 1"):
            token_budget(bad, None, 512, 64)
        with pytest.raises(UserError, match="max_batch_size must be an integer >= 1"):
            token_budget(None, bad, 512, 64)


def test_load_refuses_bad_budgets(artifact_dir):
    with pytest.raises(UserError, match="max_batch_size must be an integer >= 1"):
        Classifier.load(artifact_dir, variant="fp32", max_batch_size=0, accelerators=NO_GPU)


def test_open_variant_verifies_every_model_it_hands_out(artifact_copy):
    art = Artifact.open(artifact_copy)
    opened = open_variant(art, "int8", "cpu", ("model",))
    assert opened.models["model"].name == "model.int8.onnx"
    with pytest.raises(UserError, match="lists no encoder"):
        open_variant(art, "int8", "cpu", ("encoder",))
