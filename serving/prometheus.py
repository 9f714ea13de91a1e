"""Prometheus metrics of one server, in its own registry (several servers may share a process).

Under `ue serve --workers N` each worker process writes its values to PROMETHEUS_MULTIPROC_DIR
(prometheus-client's multiprocess mode) and the parent serves `/metrics`, summed over the
workers; `ue_model_version` then carries a `pid` label per live worker.

ue_requests_total{method}                 RPCs received
ue_errors_total{method, code}             RPCs answered with an error, by gRPC status code
ue_request_latency_seconds{method}        handler latency histogram
ue_batch_rows                             rows per model call histogram
ue_model_version{model}                   the version being served (0 = none yet)
ue_worker_restarts_total                  worker processes replaced (`--workers N`: counted by
                                          the parent, `serving.workers`)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter("ue_requests", "RPCs received", ["method"], registry=r)
        self.errors = Counter(
            "ue_errors", "RPCs answered with an error", ["method", "code"], registry=r
        )
        self.latency = Histogram(
            "ue_request_latency_seconds",
            "RPC handler latency",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "ue_batch_rows", "rows per model call", buckets=_BATCH_BUCKETS, registry=r
        )
        self.version = Gauge(
            "ue_model_version",
            "version being served",
            ["model"],
            registry=r,
            multiprocess_mode="liveall",
        )

    @contextlib.contextmanager
    def track(self, method: str) -> Iterator[None]:
        self.requests.labels(method).inc()
        started = time.perf_counter()
        try:
            yield
        finally:
            self.latency.labels(method).observe(time.perf_counter() - started)

    def error(self, method: str, code: grpc.StatusCode) -> None:
        self.errors.labels(method, code.name).inc()

    def serve_http(self, port: int, host: str) -> Any:
        """Starts `/metrics` on `host:port` in a daemon thread; returns the HTTP server
        (`shutdown()` stops it; `server_address[1]` is the port when `port` is 0)."""
        server, _ = start_http_server(port, host, registry=self.registry)
        return server
