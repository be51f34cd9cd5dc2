"""The served classifier's ONNX Runtime session: no spin-waiting threads unless asked for."""
from __future__ import annotations

from onnxpress.runtime.batcher import BatcherConfig
from onnxpress.runtime.server.models import load_model

SPINNING = "session.intra_op.allow_spinning"


def test_served_classifier_threads_do_not_spin_by_default(classifier_dir):
    served = load_model("clf", classifier_dir, BatcherConfig(), None, variant="fp32", threads=2)
    try:
        assert served.model.engine.options.get_session_config_entry(SPINNING) == "0"
    finally:
        served.batcher.close()


def test_spinning_can_be_kept_and_other_session_entries_pass_through(classifier_dir):
    served = load_model("clf", classifier_dir, BatcherConfig(), None, spinning=True, variant="fp32",
                        session_config={"session.intra_op.spin_duration_us": "50"})
    try:
        options = served.model.engine.options
        assert SPINNING not in served.model.engine.describe()["session_config"]
        assert options.get_session_config_entry("session.intra_op.spin_duration_us") == "50"
    finally:
        served.batcher.close()
