"""What the sections share: progress bars, the text files handed to probe children, GPU memory."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence


def progress(items: Sequence[Any], desc: str, enabled: bool) -> Any:
    """`items`, with a progress bar on stderr when `enabled`."""
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, file=sys.stderr, leave=False)


def write_lines(path: Path, texts: Sequence[str]) -> Path:
    """One text per line (line breaks inside a text become spaces), for the child processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(" ".join(t.splitlines()) + "\n" for t in texts), encoding="utf-8")
    return path


def gpu_memory_mib(contender: Any) -> float | None:
    """GPU memory of a loaded contender in this process, None on CPU (reported "n/a").

    PyTorch contenders report their own peak (`torch.cuda.max_memory_allocated`); onnxpress on a GPU
    reports this process's use from nvidia-smi (ORT's arena high-water mark plus the CUDA context),
    which is clean in the fresh-process throughput runs, where the contender is alone.
    """
    own = getattr(contender, "gpu_memory_mib", None)
    if callable(own):
        return own()
    if contender.spec.get("device", "cpu") == "cpu":
        return None
    return process_gpu_memory_mib(os.getpid())


def process_gpu_memory_mib(pid: int) -> float | None:
    """GPU memory nvidia-smi reports for process `pid` (None without nvidia-smi or when it lists none)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    used = [float(mem) for line in out.splitlines() if "," in line
            for app, mem in [line.split(",", 1)] if app.strip() == str(pid) and mem.strip().isdigit()]
    return sum(used) if used else None
