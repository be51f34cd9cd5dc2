"""Prometheus metrics, named in the spirit of Triton's `nv_inference_*` (listed in docs/serving.md).

The batcher measures queue time, compute time and executed batch sizes; `ModelObserver` turns
those into histograms. Request outcomes and end-to-end latency are counted by the routes.
"""
from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401 - re-exported for the /metrics route

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TOKEN_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)


class Metrics:
    """Every metric of one server, in its own registry."""

    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series double the output and say nothing here
        r = self.registry = CollectorRegistry()
        self.success = Counter("nv_inference_request_success", "Requests answered with results", ["model"],
                               registry=r)
        self.failure = Counter("nv_inference_request_failure", "Requests answered with an error, by HTTP status",
                               ["model", "code"], registry=r)
        self.count = Counter("nv_inference_count", "Texts inferred", ["model"], registry=r)
        self.exec_count = Counter("nv_inference_exec_count", "Model runs (executed batches)", ["model"], registry=r)
        self.request_duration = Histogram("nv_inference_request_duration_seconds",
                                          "End-to-end latency of successful requests, in the server",
                                          ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_duration = Histogram("nv_inference_queue_duration_seconds", "Time a request waited in the queue",
                                        ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.compute_duration = Histogram("nv_inference_compute_infer_duration_seconds",
                                          "Compute time of one worker step (a classifier run with its tokenizing, "
                                          "a translator group)", ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_rows = Histogram("nv_inference_batch_size", "Rows per executed batch", ["model"],
                                    buckets=ROW_BUCKETS, registry=r)
        self.batch_tokens = Histogram("nv_inference_batch_tokens", "Padded tokens per executed batch", ["model"],
                                      buckets=TOKEN_BUCKETS, registry=r)
        self.pending = Gauge("nv_inference_pending_request_count", "Requests waiting in the queue", ["model"],
                             registry=r)
        self.load_duration = Gauge("nv_model_load_duration_seconds", "Time to load the model", ["model"],
                                   registry=r)

    def observer(self, model: str) -> "ModelObserver":
        return ModelObserver(self, model)

    def track_queue(self, model: str, depth: Callable[[], float]) -> None:
        self.pending.labels(model).set_function(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ModelObserver:
    """A `BatchObserver` feeding one model's histograms."""

    def __init__(self, metrics: Metrics, model: str):
        self.queue = metrics.queue_duration.labels(model)
        self.compute = metrics.compute_duration.labels(model)
        self.rows = metrics.batch_rows.labels(model)
        self.tokens = metrics.batch_tokens.labels(model)
        self.runs = metrics.exec_count.labels(model)
        self.texts = metrics.count.labels(model)

    def queued(self, seconds: float) -> None:
        self.queue.observe(seconds)

    def executed(self, rows: int, tokens: int | None) -> None:
        self.runs.inc()
        self.rows.observe(rows)
        if tokens is not None:
            self.tokens.observe(tokens)

    def computed(self, seconds: float, requests: int, rows: int) -> None:
        self.compute.observe(seconds)
        self.texts.inc(rows)
