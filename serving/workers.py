"""Several server processes on one port: `ue serve --workers N`.

One Python gRPC process is bound by its GIL (~1,900 small requests/s here), so a host runs one
server per core. The parent forks the workers before any gRPC or TensorFlow state exists in
it (gRPC's core does not survive a fork once it runs; see grpc's examples/python/multiprocessing),
then only supervises:

    parent   reserves the port (SO_REUSEPORT), sets PROMETHEUS_MULTIPROC_DIR, forks N workers,
             serves the summed `/metrics`, forwards SIGTERM/SIGINT, waits for the workers
    worker   imports gRPC and TensorFlow, binds the same port with `grpc.so_reuseport`, loads
             and hot-reloads its own model versions, stops gracefully on SIGTERM

The kernel spreads incoming connections over the workers' listening sockets. If a worker dies,
the others are stopped and the parent exits non-zero (let the process supervisor restart it).
Nothing here imports gRPC or TensorFlow.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

log = logging.getLogger(__name__)
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
_FORK_UNSAFE = ("grpc", "tensorflow")  # modules whose state must not exist before the fork
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class WorkersConfig:
    """Args:
    workers: server processes (>= 1), one per core is the usual choice.
    host: the interface the workers bind.
    port: the port they share (0 picks a free one).
    metrics_port: the parent's Prometheus `/metrics` over every worker (None: off, 0: free).
    stop_seconds: how long stopping waits for a worker before killing it.
    """

    workers: int
    host: str = "127.0.0.1"
    port: int = 8500
    metrics_port: int | None = None
    stop_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"`workers` should be >= 1. Received: `workers={self.workers}`")


@contextlib.contextmanager
def reserve_port(host: str, port: int) -> Iterator[int]:
    """Holds `host:port` with SO_REUSEPORT (bound, not listening) while the workers run: port 0
    becomes a concrete port they all share, and a process without SO_REUSEPORT cannot take it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0:
            raise RuntimeError("SO_REUSEPORT is not available: run one worker (`--workers 1`)")
        sock.bind((host, port))
        yield int(sock.getsockname()[1])


def _exit_before_serving(signum: int, frame: object) -> None:
    raise SystemExit(0)  # stopped while starting: nothing in flight to finish


def _worker(serve_worker: Callable[[int, int], int], index: int, port: int) -> None:
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _exit_before_serving)  # until the server installs its own
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked by the parent
    sys.exit(serve_worker(index, port))


def _metrics_http(port: int, host: str) -> Any:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    server, _ = start_http_server(port, host, registry=registry)
    return server


def run_workers(config: WorkersConfig, serve_worker: Callable[[int, int], int]) -> int:
    """Runs `serve_worker(index, port)` in `config.workers` forked processes until SIGTERM or
    SIGINT (forwarded to each), or until a worker exits on its own; returns the exit code."""
    loaded = [name for name in _FORK_UNSAFE if name in sys.modules]
    if loaded:
        raise RuntimeError(f"{loaded} already imported: workers must be forked before any gRPC "
                           "or TensorFlow state exists")  # fmt: skip
    own_dir = None
    if not os.environ.get(METRICS_DIR_ENV):
        own_dir = tempfile.mkdtemp(prefix="ue-metrics-")
        os.environ[METRICS_DIR_ENV] = own_dir  # before prometheus_client is imported anywhere
    stopping = False
    workers: list[Any] = []
    try:
        with reserve_port(config.host, config.port) as port:

            def request_stop(signum: int, frame: object) -> None:
                nonlocal stopping
                stopping = True

            for signum in _STOP_SIGNALS:
                signal.signal(signum, request_stop)
            # A stop signal arriving while forking waits until each process has its handler.
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            try:
                context = multiprocessing.get_context("fork")
                for i in range(config.workers):
                    worker = context.Process(target=_worker, args=(serve_worker, i, port),
                                             name=f"worker-{i}")  # fmt: skip
                    worker.start()
                    workers.append(worker)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
            http = None
            if config.metrics_port is not None:
                http = _metrics_http(config.metrics_port, config.host)
            log.info("workers started", extra={"fields": {
                "address": f"{config.host}:{port}", "workers": [w.pid for w in workers],
                "metrics_port": http.server_address[1] if http else None}})  # fmt: skip
            while not stopping and all(w.is_alive() for w in workers):
                wait([w.sentinel for w in workers], timeout=0.2)
            if not stopping:
                dead = [(w.name, w.exitcode) for w in workers if not w.is_alive()]
                log.error("a worker exited on its own; stopping the others",
                          extra={"fields": {"exited": dead}})  # fmt: skip
            _stop(workers, config.stop_seconds)
            if http is not None:
                http.shutdown()
                http.server_close()
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
            os.environ.pop(METRICS_DIR_ENV, None)
    codes = [w.exitcode for w in workers]
    log.info("workers stopped", extra={"fields": {"exit_codes": codes}})
    return 0 if stopping and all(code == 0 for code in codes) else 1


def _stop(workers: list[Any], seconds: float) -> None:
    """SIGTERM to every live worker (each stops gracefully), SIGKILL after `seconds`."""
    from prometheus_client import multiprocess

    for worker in workers:
        if worker.is_alive():
            os.kill(worker.pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            log.error("worker %s did not stop in %.0f s; killing it", worker.name, seconds)
            worker.kill()
            worker.join()
        multiprocess.mark_process_dead(worker.pid)


__all__ = ["METRICS_DIR_ENV", "WorkersConfig", "reserve_port", "run_workers"]
