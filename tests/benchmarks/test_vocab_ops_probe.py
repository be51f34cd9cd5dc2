"""The vocabulary-op probe: every form runs and picks the same ids as LogSoftmax + TopK."""
from __future__ import annotations

import re

import pytest

from onnxpress.benchmarks.probes import vocab_ops


@pytest.mark.parametrize("k", [1, 3])
def test_every_form_picks_the_same_continuations(capsys, k):
    assert vocab_ops.main(["--rows", "8", "--vocab", "50", "--k", str(k), "--rounds", "1", "--seconds", "0.02"]) == 0
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) ms \| same ids (\w+) \| max diff (\S+) \|$", capsys.readouterr().out, re.M)
    assert len(rows) == (6 if k == 1 else 4)
    for name, ms, same, diff in rows:
        assert float(ms) > 0 and same == "True", name
        if diff != "-":
            assert float(diff) < 1e-4, name
