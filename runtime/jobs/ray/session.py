"""Ray for one process: importing it (or saying how to install it) and connecting or starting it.

A Ray that onnxpress starts for its own use (no `--address`) binds all its daemons to loopback:
Ray 2.60 otherwise binds gcs_server, raylet, workers and the dashboard agent to the machine's
own address even when told `_node_ip_address="127.0.0.1"`. Ray reads the switch, the variable
`LOOPBACK_ENV`, once, when `ray` is imported, and its daemons and workers inherit it; so it is
set before the first `import ray`, and never when joining a real cluster (`ray start` there
chose the addresses).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

from onnxpress.errors import UserError

INSTALL_HINT = 'the Ray engine needs Ray: pip install "onnxpress[ray]"'
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": a single-node Ray on 127.0.0.1


def require_ray(*, local: bool = False) -> Any:
    """The `ray` module, or a one-line `UserError` saying how to install it. `local`: this process
    will start its own Ray, to be kept on loopback (effective only before the first `import ray`)."""
    if local:
        os.environ.setdefault(LOOPBACK_ENV, "0")
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return ray


@contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """Ray for one command: connect to `address` ("auto", "ray://host:10001") or start a private
    local Ray on loopback (None); shut down on exit what this call started. An initialised Ray is reused."""
    ray = require_ray(local=address is None)
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    except ConnectionError as exc:
        raise UserError(f"cannot connect to Ray at {address}: {str(exc).splitlines()[0]}") from None
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        yield ray
    finally:
        ray.shutdown()
