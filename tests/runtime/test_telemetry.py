"""onnxpress keeps ONNX Runtime's telemetry off: no device id, no event cache, no upload."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# ONNX Runtime stays quiet on CI machines by itself; these variables would hide what the test looks for
CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "TF_BUILD", "JENKINS_URL", "BUILDKITE",
                "TRAVIS", "APPVEYOR", "TEAMCITY_VERSION", "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ID")


def _telemetry_state(home: Path, code: str, **env: str) -> list[str]:
    """Files ONNX Runtime's telemetry left in a fresh HOME after `code` ran in a fresh interpreter."""
    clean = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES and k != "ORT_DISABLE_TELEMETRY"}
    subprocess.run([sys.executable, "-c", code], env={**clean, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
                                                      **env}, check=True, timeout=120)
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())


def test_importing_onnxpress_first_turns_onnx_runtime_telemetry_off(tmp_path):
    plain = _telemetry_state(tmp_path / "plain", "import onnxruntime")
    if not plain:
        pytest.skip("this onnxruntime build keeps no telemetry state (built without telemetry)")
    assert any("onnxruntime" in p for p in plain), plain  # the state the test looks for
    assert _telemetry_state(tmp_path / "ours", "import onnxpress.runtime.engine, onnxruntime") == []
    # the user's own choice wins
    assert _telemetry_state(tmp_path / "asked", "import onnxpress.runtime.engine, onnxruntime",
                            ORT_DISABLE_TELEMETRY="0") == plain
