"""The private local Ray that onnxpress starts (no `--address`) listens on loopback only."""
from __future__ import annotations

import ipaddress
import os
import subprocess
import sys

import psutil
from test_ray_cli import assert_no_ray_left, processes_of, ray_tmpdir  # noqa: F401 (fixture)

from onnxpress.runtime.jobs.ray.session import LOOPBACK_ENV

# The CLI's own session (`ray_session(None)`, used by --engine ray and serve --ray-replicas), held open
# until stdin closes.
HOLD_SESSION = """
import sys
from onnxpress.runtime.jobs.ray.session import ray_session
with ray_session(None):
    print("up", flush=True)
    sys.stdin.readline()
"""


def listening_sockets(pids: set[int]) -> list[tuple[str, int, str]]:
    """(address, port, process name) of every listening inet socket of `pids`."""
    found = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            found += [(c.laddr.ip, c.laddr.port, proc.name()) for c in proc.net_connections(kind="inet")
                      if c.status == psutil.CONN_LISTEN]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return (mapped or ip).is_loopback


def test_private_local_ray_listens_on_loopback_only(ray_tmpdir):
    env = {k: v for k, v in os.environ.items() if k != LOOPBACK_ENV}  # the session must set it itself
    proc = subprocess.Popen([sys.executable, "-c", HOLD_SESSION], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**env, "RAY_TMPDIR": ray_tmpdir})
    try:
        assert proc.stdout.readline().strip() == "up", "the Ray session did not start"
        driver = psutil.Process(proc.pid)
        pids = {proc.pid, *(p.pid for p in driver.children(recursive=True))}
        pids |= {int(line.split()[0]) for line in processes_of(ray_tmpdir)}
        sockets = listening_sockets(pids)
        names = {name for _, _, name in sockets}
        assert {"gcs_server", "raylet"} <= names, f"expected the GCS and the raylet listening, got {names}"
        public = [s for s in sockets if not is_loopback(s[0])]
        assert not public, f"Ray listens beyond loopback: {public}"
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert_no_ray_left(ray_tmpdir)
