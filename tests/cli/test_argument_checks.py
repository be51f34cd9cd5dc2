"""Out-of-range options are usage errors before any work starts (no model loaded, no data read)."""
from __future__ import annotations

import subprocess
import sys

import pytest


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "onnxpress", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, says", [
    (("export", "classifier", "no-such-ckpt", "--out", "x", "--opset", "5"), "--opset: must be from 17 to 20"),
    (("export", "classifier", "no-such-ckpt", "--out", "x", "--opset", "99"), "--opset: must be from 17 to 20"),
    (("export", "classifier", "no-such-ckpt", "--out", "x", "--max-accuracy-drop", "-1"), "must be >= 0"),
    (("export", "classifier", "no-such-ckpt", "--out", "x", "--threads", "0"), "--threads: must be >= 1"),
    (("export", "translator", "no-such-ckpt", "--out", "x", "--batch-size", "0"), "--batch-size: must be >= 1"),
    (("export", "translator", "no-such-ckpt", "--out", "x", "--max-bleu-drop", "nan"), "must be >= 0"),
])
def test_export_options_are_checked_first(args, says):
    res = _run(*args)
    assert res.returncode == 2 and says in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_serve_names_every_option_out_of_range(tmp_path):
    pytest.importorskip("fastapi")
    res = _run("serve", str(tmp_path), "--port", "-1", "--ort-spin-us", "-7")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "--port must be from 0 to 65535 (got -1)" in res.stderr and "--ort-spin-us must be >= 0" in res.stderr


def test_an_interrupted_main_called_in_process_keeps_the_callers_sigint_handler(monkeypatch, capsys):
    import signal

    from onnxpress import cli
    from onnxpress.commands import score

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(score, "run", interrupted)
    before = signal.getsignal(signal.SIGINT)
    assert cli.main(["score", "art", "in.csv", "--out", "out.csv"]) == 130
    assert signal.getsignal(signal.SIGINT) is before
    assert "run the same command again to continue" in capsys.readouterr().err
