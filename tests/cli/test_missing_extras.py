"""On an install without extras, a command that needs one says which to install, in one line, exit 2."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# Runs the CLI in a fresh interpreter where importing `blocked` fails as if it were not installed.
RUNNER = textwrap.dedent("""
    import sys

    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == sys.argv[1]:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    from onnxpress.cli import main
    raise SystemExit(main(sys.argv[2:]))
""")


def run_without(module: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUNNER, module, *argv], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("blocked, argv, expected", [
    ("torch", ["train", "classifier", "--out", "unused"], 'train classifier needs torch: pip install "onnxpress[train]"'),
    ("torch", ["train", "translator", "--out", "unused"], 'train translator needs torch: pip install "onnxpress[train]"'),
    ("torch", ["attention-plot", "Hallo", "--model", "unused"], 'attention-plot needs torch: pip install "onnxpress[train]"'),
    ("tqdm", ["train", "classifier", "--out", "unused"], 'train classifier needs tqdm: pip install "onnxpress[train]"'),
    ("torch", ["export", "classifier", "unused", "--out", "unused2"],
     'export classifier needs torch: pip install "onnxpress[export]"'),
])
def test_missing_extra_is_one_line_naming_it(blocked, argv, expected, tmp_path):
    proc = run_without(blocked, *argv)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"onnxpress: error: {expected}"
    assert not (tmp_path / "unused").exists()


def test_an_unknown_missing_module_is_not_disguised(tmp_path):
    """Only known optional dependencies get the install hint; anything else stays a real error."""
    from onnxpress.cli import EXTRA_OF_MODULE

    assert "numpy" not in EXTRA_OF_MODULE  # a core dependency: missing means a broken install
    proc = run_without("numpy", "train", "classifier", "--out", str(tmp_path / "o"))
    assert proc.returncode not in (0, 2)
    assert "ModuleNotFoundError" in proc.stderr
