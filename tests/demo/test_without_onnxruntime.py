"""The base install (no `cpu` or `gpu` extra): loading a model says which extra to install, in one line.

Each case runs in a fresh interpreter whose import system refuses `onnxruntime`, as in a venv
where neither onnxruntime build is installed.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_classifier"
MESSAGE = 'onnxruntime is not installed: pip install "onnxpress[cpu]" (or [gpu] on a CUDA machine)'
BLOCK_ONNXRUNTIME = """
import importlib.abc, sys

class NoOnnxruntime(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoOnnxruntime())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_ONNXRUNTIME + code], capture_output=True, text=True,
                          timeout=120)


def test_cli_says_which_extra_to_install(tmp_path):
    texts = tmp_path / "texts.csv"
    texts.write_text("text\nStocks rally as oil prices fall\n")
    done = _run(f"from onnxpress.cli import main; sys.exit(main(['score', {str(FIXTURE)!r}, {str(texts)!r}, "
                f"'--out', {str(tmp_path / 'out.parquet')!r}, '--no-progress']))")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"onnxpress: error: {MESSAGE}"


def test_python_api_raises_user_error_and_import_still_works():
    done = _run(f"""
import onnxpress.runtime
from onnxpress.errors import UserError
from onnxpress.runtime import Classifier
try:
    Classifier.load({str(FIXTURE)!r}, device="cpu")
except UserError as exc:
    print(exc)
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == MESSAGE
