"""`onnxpress serve --ray-replicas N`: the server's FastAPI app as a Ray Serve deployment.

Each replica is a Ray actor that loads the models and builds the same app as `onnxpress serve`
(`build_app`: KServe v2 and JSON routes, limits, metrics, the dynamic batcher per model), so
requests that Ray Serve routes to one replica are batched together there. Ray Serve's proxy
listens on the host and port given and spreads requests over the replicas; each answer carries
`X-Onnxpress-Replica` (the Serve replica id), and `/metrics` reports the replica that answered.
A replica reserves `threads` CPUs, the intra-op threads of its sessions.
"""
from __future__ import annotations

import signal
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from onnxpress.runtime.jobs.ray.session import require_ray
from onnxpress.runtime.server.settings import ServerSettings

APP_NAME = "onnxpress"
REPLICA_HEADER = "x-onnxpress-replica"
DEFAULT_MAX_ONGOING = 64  # requests a replica accepts at once: room for its batcher to batch them


@dataclass(frozen=True)
class ReplicaPlan:
    """How many replicas (fixed, or Serve's `autoscaling_config`) and what each loads."""

    models: list[tuple[str, str]]  # (name, artifact path), readable on every node
    settings: ServerSettings
    load_options: dict[str, Any] = field(default_factory=dict)  # Classifier/Translator.load keywords
    replicas: int = 1
    autoscaling: dict[str, Any] | None = None
    max_ongoing_requests: int = DEFAULT_MAX_ONGOING

    def deployment_options(self) -> dict[str, Any]:
        threads = self.load_options.get("threads") or 1
        options: dict[str, Any] = {"ray_actor_options": {"num_cpus": threads},
                                   "max_ongoing_requests": self.max_ongoing_requests}
        if self.autoscaling:
            options["autoscaling_config"] = self.autoscaling
        else:
            options["num_replicas"] = self.replicas
        return options


class _ReplicaHeader:
    """ASGI middleware: names the replica that answered in every response."""

    def __init__(self, app: Any, replica: str):
        self.app, self.replica = app, replica.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def send_named(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [(REPLICA_HEADER.encode(), self.replica)]
            await send(message)

        await self.app(scope, receive, send_named if scope["type"] == "http" else send)


def deployment(plan: ReplicaPlan) -> Any:
    """The bound Ray Serve application for `plan` (pass it to `serve.run`)."""
    require_ray()
    from ray import serve

    @serve.ingress()
    class OnnxpressServer:
        def __init__(self, plan: ReplicaPlan):
            from onnxpress.runtime.server.app import build_app

            self.server_app = build_app(plan.models, plan.settings, **plan.load_options)
            replica = serve.get_replica_context().replica_id.unique_id
            self.server_app.add_middleware(_ReplicaHeader, replica=replica)

        def __serve_build_asgi_app__(self) -> Any:
            return self.server_app

    return serve.deployment(OnnxpressServer, name="server", **plan.deployment_options()).bind(plan)


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start(plan: ReplicaPlan) -> str:
    """Deploy `plan` on the connected Ray (Serve's proxy on the settings' host and port; port 0:
    a free one) and return its URL once every replica is up."""
    require_ray()
    from ray import serve

    host = plan.settings.host
    port = plan.settings.port or free_port(host)
    serve.start(http_options={"host": host, "port": port})
    serve.run(deployment(plan), name=APP_NAME, route_prefix="/", blocking=False)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve_until_stopped(plan: ReplicaPlan, address: str | None, announce: Any = print) -> None:
    """The CLI: deploy on Ray at `address` (None: a local Ray), announce the URL, serve until
    SIGINT/SIGTERM, then delete the application and shut Serve and Ray down."""
    from onnxpress.runtime.jobs.ray.session import ray_session

    stop = threading.Event()
    with ray_session(address):
        from ray import serve

        for sig in (signal.SIGINT, signal.SIGTERM):  # after ray.init, which installs its own SIGTERM handler
            signal.signal(sig, lambda *_: stop.set())
        url = start(plan)
        count = f"autoscaling {plan.autoscaling}" if plan.autoscaling else f"{plan.replicas} replica(s)"
        announce(f"onnxpress: serving {len(plan.models)} model(s) at {url} (Ray Serve, {count})")
        try:
            stop.wait()
        finally:
            serve.delete(APP_NAME)
            serve.shutdown()


def serve_command(args: Any, settings: ServerSettings, models: list[tuple[str, Any]]) -> int:
    """`onnxpress serve ... --ray-replicas N | --ray-autoscaling JSON [--address ...]`."""
    import json
    import sys

    from onnxpress.errors import UserError

    require_ray(local=args.address is None)  # a private Ray stays on loopback
    autoscaling = None
    if args.ray_autoscaling:
        try:
            autoscaling = json.loads(args.ray_autoscaling)
        except ValueError:
            autoscaling = None
        if not isinstance(autoscaling, dict):
            raise UserError("--ray-autoscaling takes a JSON object, e.g. '{\"min_replicas\": 1, \"max_replicas\": 4}'")
    if args.device not in ("auto", "cpu"):
        raise UserError("--ray-replicas serves on cpu (GPU replicas: use the Python API, ReplicaPlan)")
    plan = ReplicaPlan(models=[(name, str(path.resolve())) for name, path in models], settings=settings,
                       load_options={"variant": args.variant, "device": "cpu", "threads": args.threads or 1,
                                     "max_batch_tokens": args.max_batch_tokens,
                                     "max_batch_size": args.max_batch_size},
                       replicas=args.ray_replicas or 1, autoscaling=autoscaling)
    serve_until_stopped(plan, args.address, lambda line: print(line, file=sys.stderr, flush=True))
    return 0
