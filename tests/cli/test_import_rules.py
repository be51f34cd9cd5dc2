"""The rooms' import rules (docs/architecture.md), checked on the source so a violation fails here.

Every import counts, also one inside a function: a lazy `import torch` in the runtime still breaks
a runtime-only install the first time that code path runs.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# folder -> (its package, modules it must never import)
RULES = {
    "runtime": ("onnxpress.runtime", ("onnxpress.training", "onnxpress.export", "onnxpress.benchmarks",
                                      "torch", "transformers", "optimum")),
    "training": ("onnxpress.training", ("onnxpress.export", "onnxpress.benchmarks")),
    "export": ("onnxpress.export", ("onnxpress.benchmarks",)),
}


def imported_names(path: Path, folder: Path, package: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in `path`, a file under `folder` (which is `package`)."""
    module_package = ".".join([package, *path.relative_to(folder).parent.parts])
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module_package.split(".")[: len(module_package.split(".")) - node.level + 1]
                base = ".".join([*parent, base]) if base else ".".join(parent)
            names.append((node.lineno, base))
            names += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return names


def violations(folder: str, root: Path = ROOT) -> list[str]:
    package, forbidden = RULES[folder]
    found = []
    for path in sorted((root / folder).rglob("*.py")):
        for line, name in imported_names(path, root / folder, package):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(root)}:{line} imports {name}")
    return found


@pytest.mark.parametrize("folder", sorted(RULES))
def test_room_imports_only_what_it_may(folder):
    assert violations(folder) == []


def test_the_check_sees_every_kind_of_import(tmp_path):
    """A planted violation of each form is found (so an empty list above means something)."""
    room = tmp_path / "runtime"
    (room / "jobs").mkdir(parents=True)
    (room / "a.py").write_text("import torch.nn\n")
    (room / "b.py").write_text("def f():\n    from onnxpress import training\n")
    (room / "jobs" / "c.py").write_text("from ...export.manifest import versions\n")
    (room / "ok.py").write_text("from onnxpress.runtime import durable\nimport numpy\n")
    assert violations("runtime", root=tmp_path) == ["runtime/a.py:1 imports torch.nn", "runtime/b.py:2 imports onnxpress.training",
                     "runtime/jobs/c.py:1 imports onnxpress.export.manifest",
                     "runtime/jobs/c.py:1 imports onnxpress.export.manifest.versions"]
