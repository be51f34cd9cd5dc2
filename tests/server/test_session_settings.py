"""The served classifier's ONNX Runtime session: idle threads spin-wait for a bounded time only;
the serve command's process settings."""
from __future__ import annotations

import pytest

from onnxpress.runtime.batcher import BatcherConfig
from onnxpress.runtime.int8_gemm import precise_int8_entries
from onnxpress.runtime.server.models import load_model
from onnxpress.runtime.server.settings import DEFAULT_SPIN_US

SPINNING = "session.intra_op.allow_spinning"
SPIN_US = "session.intra_op.spin_duration_us"


def entries(classifier_dir, **options) -> dict[str, str]:
    served = load_model("clf", classifier_dir, BatcherConfig(), None, variant="fp32", **options)
    try:
        got = served.model.engine.describe()["session_config"]
    finally:
        served.batcher.close()
    exact = precise_int8_entries()  # present on CPUs without VNNI (tests/runtime/test_int8_gemm.py)
    assert {k: got.pop(k) for k in exact} == exact
    return got


def test_served_classifier_threads_spin_for_a_bounded_time_by_default(classifier_dir):
    assert entries(classifier_dir) == {SPIN_US: str(DEFAULT_SPIN_US)}


@pytest.mark.parametrize("spin_us, want", [(0, {SPINNING: "0"}), (None, {}), (50, {SPIN_US: "50"})])
def test_spinning_can_be_turned_off_or_left_to_onnxruntime(classifier_dir, spin_us, want):
    assert entries(classifier_dir, spin_us=spin_us) == want


def test_other_session_entries_pass_through(classifier_dir):
    got = entries(classifier_dir, spin_us=0, session_config={"session.use_env_allocators": "0"})
    assert got == {SPINNING: "0", "session.use_env_allocators": "0"}


def test_onnxruntime_receives_the_entries(classifier_dir):
    served = load_model("clf", classifier_dir, BatcherConfig(), None, variant="fp32", spin_us=0)
    try:
        assert served.model.engine.options.get_session_config_entry(SPINNING) == "0"
    finally:
        served.batcher.close()


def test_the_serve_command_tunes_its_process(monkeypatch):
    """`onnxpress serve` shortens the GIL switch interval and turns tokenizers' thread pool off."""
    import os
    import sys

    from onnxpress.commands import serve

    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    before = sys.getswitchinterval()
    try:
        serve.tune_process()
        assert sys.getswitchinterval() == pytest.approx(serve.GIL_SWITCH_INTERVAL_S)
        assert sys.getswitchinterval() < before
        assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    finally:
        sys.setswitchinterval(before)
