"""The event-loop overhead probe drives the real served app (no sockets) with each kind of answer."""
from __future__ import annotations

import re

import pytest

from onnxpress.benchmarks.probes import asgi_overhead


@pytest.mark.parametrize("answer, protocol", [("real", "v1"), ("thread", "v2"), ("instant", "v1")])
def test_probe_reports_event_loop_cpu_per_request(tiny_artifact, capsys, monkeypatch, answer, protocol):
    from onnxpress.runtime.server.models import ServedModel

    monkeypatch.setattr(ServedModel, "run", ServedModel.run)  # the probe replaces it for non-real answers
    assert asgi_overhead.main([str(tiny_artifact), "--answer", answer, "--protocol", protocol, "--requests", "40",
                               "--concurrency", "4", "--texts-per-request", "2", "--threads", "1"]) == 0
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(rf"answer={answer} {protocol} x2, 4 at a time: event loop \d+ us CPU per request", line)
    assert int(line.split("event loop ")[1].split()[0]) > 0
