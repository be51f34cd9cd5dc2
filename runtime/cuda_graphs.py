"""CUDA graphs: when ORT can capture one, and the fixed-shape buffers each captured graph replays.

ORT captures a graph only when every compute node runs on the CUDA provider: a node left on the
CPU provider, a Memcpy between the two, or TensorRT in front refuses capture. The engine reads
the session's node placement (ORT >= 1.23 records it on request) and falls back to ordinary
runs, with the reason logged, when capture cannot work; ORT refusing at session creation is the
same fallback.

ORT forbids concurrent `Run()` on a session that uses CUDA graphs, so such a session is driven
through one exclusive path. Without graphs (CPU memory, tests), buckets only need their own
lock: each owns the buffers it is bound to.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Mapping

from onnxpress.runtime.devices import CUDA_EP

PLACEMENT_CONFIG = "session.record_ep_graph_assignment_info"
MEMCPY_OPS = ("MemcpyFromHost", "MemcpyToHost")


def placement(session: Any) -> dict[str, list[str]] | None:
    """Provider -> op types of the nodes it runs, or None when this ORT does not record it."""
    try:
        subgraphs = session.get_provider_graph_assignment_info()
    except Exception:  # noqa: BLE001 - older ORT, or recording not enabled
        return None
    out: dict[str, list[str]] = {}
    for sub in subgraphs:
        out.setdefault(sub.ep_name, []).extend(node.op_type for node in sub.get_nodes())
    return out


def capture_blockers(nodes_by_provider: Mapping[str, list[str]]) -> list[str]:
    """Why CUDA-graph capture would fail for this placement (empty: capture can work)."""
    blockers = []
    for provider, ops in nodes_by_provider.items():
        if provider != CUDA_EP and ops:
            blockers.append(f"{len(ops)} node(s) on {provider} ({', '.join(sorted(set(ops))[:5])})")
    memcpy = [op for op in nodes_by_provider.get(CUDA_EP, []) if op in MEMCPY_OPS]
    if memcpy:
        blockers.append(f"{len(memcpy)} Memcpy node(s) between host and device")
    return blockers


@dataclass
class Bucket:
    """Pre-allocated inputs/outputs of one fixed shape, bound once: the unit a CUDA graph replays."""

    inputs: dict[str, Any]
    outputs: list[Any]
    binding: Any
    run_options: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
