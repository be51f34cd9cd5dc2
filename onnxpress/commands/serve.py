"""`onnxpress serve ARTIFACT...`: KServe v2 + JSON HTTP server over dynamically batched models."""
from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys

from onnxpress.cli import positive_int
from onnxpress.errors import UserError

API_KEY_ENV = "ONNXPRESS_API_KEY"
GIL_SWITCH_INTERVAL_S = 0.0005  # CPython default: 0.005


def register(subparsers: argparse._SubParsersAction) -> None:
    from onnxpress.runtime.server.settings import DEFAULT_HOST, DEFAULT_PORT, Limits, ServerSettings

    limits, server = Limits(), ServerSettings()
    p = subparsers.add_parser(
        "serve", help="serve artifacts over HTTP (KServe v2, JSON API, /metrics, a playground page)",
        description="Serves every artifact given (classifiers and translators) with a dynamic batcher per model: "
                    "KServe v2 / Triton HTTP at /v2, a JSON API at /v1, OpenAPI docs at /docs, Prometheus "
                    "metrics at /metrics and a playground page at /. Binds 127.0.0.1 unless told otherwise. "
                    "Needs the serve extra: pip install 'onnxpress[serve]'.")
    p.add_argument("artifacts", nargs="*", help="artifact directories, served under their folder name")
    p.add_argument("--name", action="append", default=[], metavar="NAME=PATH",
                   help="serve the artifact at PATH as NAME (repeatable)")
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0: any free port, printed at start)")
    p.add_argument("--api-key", default=None,
                   help=f"require 'Authorization: Bearer KEY' on all but health and the page (or ${API_KEY_ENV})")
    p.add_argument("--variant", default="auto", help="model variant: auto or a manifest variant name")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or tensorrt")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per model (default: one per core)")
    p.add_argument("--workers", default="auto", metavar="N|auto",
                   help="CPU: model runs computing at once, sharing --threads (auto: the runtime's rule by "
                        "model size; 1: one run on every thread, the lowest single-request latency)")
    p.add_argument("--max-batch-tokens", type=int, default=None, help="padded tokens per model run")
    p.add_argument("--max-batch-size", type=int, default=None, help="rows per model run")
    p.add_argument("--max-queue-delay-ms", type=float, default=server.max_queue_delay_ms,
                   help="how long a request reaching an idle model waits for others to batch with (default 0: "
                        "none; requests that arrive while a run computes are batched anyway)")
    p.add_argument("--max-queue-size", type=int, default=server.max_queue_size,
                   help="queued requests per model before answering 503")
    p.add_argument("--request-timeout", type=float, default=server.request_timeout_s,
                   help="seconds before a request is answered 504")
    p.add_argument("--max-texts", type=int, default=limits.max_texts, help="texts per request")
    p.add_argument("--max-chars", type=int, default=limits.max_chars, help="characters per text")
    p.add_argument("--max-body-bytes", type=int, default=limits.max_body_bytes, help="request body bytes")
    p.add_argument("--shutdown-grace", type=float, default=server.shutdown_grace_s,
                   help="seconds to stay up answering not-ready after SIGTERM (for load balancers)")
    p.add_argument("--ort-spin-us", type=int, default=server.ort_spin_us, metavar="US",
                   help="how long an idle ONNX Runtime thread spin-waits for work, in microseconds "
                        "(0: never; -1: ONNX Runtime's default; default %(default)s)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="info logs every request (the access log); warning turns that off")
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="json: every line on stderr is one JSON object (the access log is JSON either way)")
    p.add_argument("--ray-replicas", type=positive_int, default=None, metavar="N",
                   help="serve N replicas of this server on Ray Serve (needs onnxpress[ray]; docs/ray.md)")
    p.add_argument("--ray-autoscaling", default=None, metavar="JSON",
                   help="Ray Serve autoscaling_config instead of a fixed N, e.g. "
                        "'{\"min_replicas\": 1, \"max_replicas\": 4}'")
    p.add_argument("--address", default=None,
                   help="with --ray-replicas: Ray cluster (auto, ray://HOST:10001; default: a private local Ray)")
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace):
    from onnxpress.runtime.server.settings import Limits, ServerSettings

    ranges = {  # flag: (value, what it must be, whether it is)
        "--max-queue-size": (args.max_queue_size, "> 0", args.max_queue_size > 0),
        "--request-timeout": (args.request_timeout, "> 0", args.request_timeout > 0),
        "--max-texts": (args.max_texts, "> 0", args.max_texts > 0),
        "--max-chars": (args.max_chars, "> 0", args.max_chars > 0),
        "--max-body-bytes": (args.max_body_bytes, "> 0", args.max_body_bytes > 0),
        "--max-queue-delay-ms": (args.max_queue_delay_ms, ">= 0", args.max_queue_delay_ms >= 0),
        "--shutdown-grace": (args.shutdown_grace, ">= 0", args.shutdown_grace >= 0),
        "--port": (args.port, "from 0 to 65535", 0 <= args.port < 65536),
        "--ort-spin-us": (args.ort_spin_us, ">= 0, or -1 for ONNX Runtime's default", args.ort_spin_us >= -1),
    }
    bad = [f"{flag} must be {rule} (got {value})" for flag, (value, rule, ok) in ranges.items() if not ok]
    if bad:
        raise UserError("; ".join(bad))
    return ServerSettings(
        host=args.host, port=args.port, api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        limits=Limits(max_texts=args.max_texts, max_chars=args.max_chars, max_body_bytes=args.max_body_bytes),
        request_timeout_s=args.request_timeout, max_queue_delay_ms=args.max_queue_delay_ms,
        max_queue_size=args.max_queue_size, shutdown_grace_s=args.shutdown_grace,
        ort_spin_us=None if args.ort_spin_us < 0 else args.ort_spin_us)


def run(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise UserError(f"serving needs the serve extra ({exc.name} is missing): "
                        f"pip install 'onnxpress[serve]'") from None
    import socket

    tune_process()
    from onnxpress.runtime.server.app import build_app
    from onnxpress.runtime.server.logs import announce, configure as configure_logs
    from onnxpress.runtime.server.models import parse_model_args
    from onnxpress.runtime.server.shutdown import GracefulServer

    settings = settings_from(args)
    pairs = parse_model_args(args.artifacts, args.name)
    if args.ray_replicas or args.ray_autoscaling:
        from onnxpress.runtime.server.ray_serve import serve_command

        return serve_command(args, settings, pairs)
    configure_logs(args.log_level, args.log_format)
    app = build_app(pairs, settings, variant=args.variant, device=args.device, threads=args.threads,
                    workers=args.workers, max_batch_tokens=args.max_batch_tokens, max_batch_size=args.max_batch_size)
    state = app.state.server
    models = list(state.registry.models.values())
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
        sock.listen(2048)  # connections made from now on wait in the backlog until uvicorn serves them
    except OSError as exc:
        raise UserError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from None
    host, port = sock.getsockname()[:2]
    if not _loopback(settings.host) and not settings.api_key:
        announce(f"warning: listening on {settings.host} without --api-key", args.log_format)
    for m in models:
        announce(f"{m.name}: {m.kind} {m.model!r} loaded in {m.load_seconds:.2f} s", args.log_format)
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    announce(f"serving {len(models)} model(s) at http://{shown}:{port}", args.log_format)
    uv_config = uvicorn.Config(app, log_config=None, access_log=False, log_level=args.log_level,
                               timeout_graceful_shutdown=max(settings.request_timeout_s, 1.0))
    # uvicorn raises a second Ctrl-C again once it has stopped; with Python's handler that is a
    # KeyboardInterrupt inside asyncio's teardown, printed with the cancelled lifespan's traceback.
    # With the default action the process ends by the signal (130), as a second SIGTERM ends it (143).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    GracefulServer(uv_config, state.lifecycle, grace_s=settings.shutdown_grace_s).run(sockets=[sock])
    return 0


def tune_process() -> None:
    """Settings for a process that only serves (apps that embed the runtime keep their own).

    The batcher tokenizes a few texts at a time: tokenizers' thread pool would take cores from the
    model runs for no gain. A run thread whose model run ends needs the GIL back while the event loop
    or the batcher runs Python code; at CPython's default switch interval (5 ms) its core can idle
    that long. Both measured in docs/serving.md, "Performance".
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
