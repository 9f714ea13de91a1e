"""Several server processes on one port, kept alive: `ue serve --workers N`.

One Python gRPC process is bound by its GIL (~1,900 small requests/s here), so a host runs one
server per core. The parent forks the workers before any gRPC or TensorFlow state exists in
it (gRPC's core does not survive a fork once it runs; see grpc's examples/python/multiprocessing),
then only supervises; it never imports either, so forking a replacement later is as safe as
the first fork:

    parent   reserves the port (SO_REUSEPORT), sets PROMETHEUS_MULTIPROC_DIR, forks N workers
             and `spares`, serves the summed `/metrics`, replaces a process that exits, forwards
             SIGTERM/SIGINT, waits for them all
    worker   imports gRPC and TensorFlow, loads its own model versions, binds the same port
             with `grpc.so_reuseport` once they serve, hot-reloads, stops gracefully on SIGTERM
    spare    a worker that has loaded the models and waits, unbound, until the parent names the
             worker it replaces: a replacement then serves in milliseconds instead of the
             seconds it takes a new process to import TensorFlow and load the models

The kernel spreads incoming connections over the listening workers; a worker that dies drops
out of that set with its socket, so the port keeps answering from the others. The parent hands
its place to a spare at once (or forks a new worker after a backoff when there is none), and
forks a new spare after the backoff: `restart_backoff_seconds`, doubled for each further crash
within `crash_window_seconds`, at most `max_restart_backoff_seconds`. After `max_crashes`
crashes within the window (a bad model config crashes every worker as it starts) it logs one
error line, stops the rest and exits non-zero, for the process supervisor to see. Under load
(benchmarks/faults.py) only the requests in flight on the killed worker fail, and the spare
listens about half a second after the kill (a new process: about seven seconds).

`ue_worker_restarts_total` counts the processes replaced; the parent writes it to
PROMETHEUS_MULTIPROC_DIR as the workers write theirs, so every `/metrics` shows it. A dead
worker's live gauges are dropped (`mark_process_dead`). A worker outlives no parent: it gets
SIGTERM when the parent dies.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
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
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

from serving.config import DEFAULT_HOST, DEFAULT_PORT
from serving.cpu_affinity import cpu_for, pin_request_path, usable_cpus
from unified_embedding.runtime.flags import option

log = logging.getLogger(__name__)
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
_FORK_UNSAFE = ("grpc", "tensorflow")  # modules whose state must not exist before the fork
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1  # prctl(2)


@dataclass(frozen=True)
class WorkersConfig:
    """Args:
    workers: server processes (>= 1), one per core is the usual choice.
    host: the interface the workers bind.
    port: the port they share (0 picks a free one).
    metrics_port: the parent's Prometheus `/metrics` over every worker (None: off, 0: free).
    stop_seconds: how long stopping waits for a worker before killing it.
    spares: processes kept loaded and unbound to replace a worker that dies (each holds the
        models in memory as a worker does; 0: a new process replaces it, serving in seconds).
    restart_backoff_seconds: wait before forking a replacement after a crash; doubled for
        each further crash within `crash_window_seconds`.
    max_restart_backoff_seconds: the longest such wait.
    max_crashes: crashes within `crash_window_seconds` that stop the server (exit 1).
    crash_window_seconds: see `max_crashes`.
    pin_workers: pin worker i's request path to one CPU (`serving.cpu_affinity`).
    """

    workers: int
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    metrics_port: int | None = None
    stop_seconds: float = 30.0
    spares: int = option(
        1,
        "processes kept loaded, not listening, to replace a worker that dies at once (each "
        "holds the models in memory)",
        flag="--spare-workers",
    )
    restart_backoff_seconds: float = option(
        0.25,
        "wait before forking a replacement; doubled for each further crash within "
        "--worker-crash-window-seconds",
    )
    max_restart_backoff_seconds: float = option(10.0, "the longest such wait")
    max_crashes: int = option(
        5,
        "crashes within --worker-crash-window-seconds that stop the server (exit 1)",
        flag="--max-worker-crashes",
    )
    crash_window_seconds: float = option(
        60.0, "see --max-worker-crashes", flag="--worker-crash-window-seconds"
    )
    pin_workers: bool = option(
        False,
        "pin worker i's event loop and gRPC threads to the i-th CPU the server may use (round "
        "robin; model calls stay free): faster batch-1 requests on a host that runs the "
        "server alone, one worker per core",
    )

    def __post_init__(self) -> None:
        for name, least in (("workers", 1), ("spares", 0), ("max_crashes", 1)):
            if getattr(self, name) < least:
                raise ValueError(
                    f"`{name}` should be >= {least}. Received: `{name}={getattr(self, name)}`"
                )
        for name in (
            "restart_backoff_seconds",
            "max_restart_backoff_seconds",
            "crash_window_seconds",
        ):
            if not getattr(self, name) >= 0:
                raise ValueError(
                    f"`{name}` should be >= 0. Received: `{name}={getattr(self, name)}`"
                )

    def backoff(self, recent_crashes: int) -> float:
        """The wait before a replacement, after `recent_crashes` (>= 1) within the window."""
        doublings = min(recent_crashes - 1, 30)
        return min(self.max_restart_backoff_seconds, self.restart_backoff_seconds * 2**doublings)


@dataclass(frozen=True)
class Turn:
    """A forked server's place among the workers: `index`, or None for a spare, whose `wait()`
    returns once the parent names the worker it replaces (written to `fd`). With `cpus` (the
    CPUs of `--pin-workers`) its request path is pinned to its index's CPU once it has one."""

    index: int | None
    fd: int = -1
    cpus: tuple[int, ...] = ()

    @property
    def spare(self) -> bool:
        return self.index is None

    async def wait(self) -> int:
        if self.index is not None:
            return self.index
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(self.fd, readable.set)
        try:
            await readable.wait()
        finally:
            loop.remove_reader(self.fd)
        data = os.read(self.fd, 4)
        if len(data) != 4:
            raise RuntimeError("the parent closed the spare's pipe without naming a worker")
        index = int.from_bytes(data, "little")
        self.pin(index)
        return index

    def pin(self, index: int) -> None:
        """Pins the calling thread, the worker's request path, to worker `index`'s CPU when
        `cpus` are given (`serving.cpu_affinity`)."""
        if self.cpus:
            pin_request_path(cpu_for(index, self.cpus))


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


def _die_with_parent(parent: int) -> None:
    """SIGTERM when the parent dies (Linux), so no orphan keeps serving the port."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before prctl took effect
        raise SystemExit(0)


def _worker(serve_worker: Callable[[Turn, int], int], turn: Turn, port: int, parent: int) -> None:
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _exit_before_serving)  # until the server installs its own
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked by the parent
    _die_with_parent(parent)
    if turn.index is not None:
        turn.pin(turn.index)
    name = "spare" if turn.index is None else f"worker {turn.index}"
    try:
        code = serve_worker(turn, port)
    except (ValueError, OSError) as e:  # bad input (a model config, a certificate): one line
        log.error("%s failed: %s", name, e, extra={"fields": {"pid": os.getpid()}})
        code = 2
    except Exception:
        log.exception("%s failed", name, extra={"fields": {"pid": os.getpid()}})
        code = 1
    sys.exit(code)


def _metrics_http(port: int, host: str) -> Any:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    server, _ = start_http_server(port, host, registry=registry)
    return server


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


@dataclass
class _Child:
    process: Any  # multiprocessing.Process
    index: int | None  # None: a spare
    promote_fd: int = -1  # a spare's pipe: the parent writes the index it takes over

    @property
    def name(self) -> str:
        return "spare" if self.index is None else f"worker {self.index}"


@dataclass
class _Supervisor:
    """The parent's state: who serves which index, who waits as a spare, what to fork when."""

    config: WorkersConfig
    serve_worker: Callable[[Turn, int], int]
    port: int
    restarts: Any  # prometheus_client Counter
    slots: list[_Child | None] = field(default_factory=list)
    spares: list[_Child] = field(default_factory=list)
    due: list[tuple[float, int | None]] = field(default_factory=list)  # (when, index | spare)
    crashes: collections.deque[float] = field(default_factory=collections.deque)
    gave_up: bool = False
    restarted: int = 0
    cpus: tuple[int, ...] = ()  # `--pin-workers`: the CPUs the workers are pinned to

    def fork(self, index: int | None) -> _Child:
        read_fd = write_fd = -1
        if index is None:
            read_fd, write_fd = os.pipe()
        context = multiprocessing.get_context("fork")
        process = context.Process(
            target=_worker,
            args=(self.serve_worker, Turn(index, read_fd, self.cpus), self.port, os.getpid()),
            name="spare" if index is None else f"worker-{index}",
        )
        # A stop signal arriving while forking waits until the new process has its handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        if read_fd >= 0:
            os.close(read_fd)
        child = _Child(process, index, write_fd)
        if index is None:
            self.spares.append(child)
        else:
            self.slots[index] = child
        return child

    def start(self) -> None:
        self.slots = [None] * self.config.workers
        for index in range(self.config.workers):
            self.fork(index)
        for _ in range(self.config.spares):
            self.fork(None)

    def children(self) -> list[_Child]:
        return [c for c in self.slots if c is not None] + self.spares

    def promote(self, index: int) -> _Child | None:
        """Hands worker `index`'s place to a spare (it binds once its models serve)."""
        for spare in list(self.spares):
            try:
                os.write(spare.promote_fd, index.to_bytes(4, "little"))
            except OSError:  # it died too: its exit is handled on the next round
                continue
            self.spares.remove(spare)
            os.close(spare.promote_fd)
            spare.index, spare.promote_fd = index, -1
            self.slots[index] = spare
            return spare
        return None

    def on_exit(self, child: _Child) -> None:
        """A process exited unasked: count the crash, replace it, or give up."""
        from prometheus_client import multiprocess

        child.process.join()
        multiprocess.mark_process_dead(child.process.pid)
        if child.index is None:
            self.spares.remove(child)
            with contextlib.suppress(OSError):
                os.close(child.promote_fd)
        else:
            self.slots[child.index] = None
        now = time.monotonic()
        self.crashes.append(now)
        while self.crashes and self.crashes[0] < now - self.config.crash_window_seconds:
            self.crashes.popleft()
        reason = _exit_reason(child.process.exitcode)
        if len(self.crashes) >= self.config.max_crashes:
            log.error(
                "%d worker crashes within %g s (`max_crashes=%d`): stopping the server; "
                "the last: %s (pid %d), %s",
                len(self.crashes),
                self.config.crash_window_seconds,
                self.config.max_crashes,
                child.name,
                child.process.pid,
                reason,
            )
            self.gave_up = True
            return
        backoff = self.config.backoff(len(self.crashes))
        self.restarts.inc()
        self.restarted += 1
        spare = None if child.index is None else self.promote(child.index)
        if child.index is not None and spare is None:
            self.due.append((now + backoff, child.index))  # no spare left: a new worker
        else:
            self.due.append((now + backoff, None))  # a spare died or took the place
        log.warning(
            "%s (pid %d) exited unasked (%s)",
            child.name,
            child.process.pid,
            reason,
            extra={
                "fields": {
                    "worker": child.index,
                    "pid": child.process.pid,
                    "exit_code": child.process.exitcode,
                    "spare_took_over": spare is not None,
                    "restart_in_seconds": backoff,
                }
            },
        )
        if spare is not None:
            log.info(
                "worker started",
                extra={
                    "fields": {"worker": spare.index, "pid": spare.process.pid, "from_spare": True}
                },
            )

    def fork_due(self) -> None:
        now = time.monotonic()
        for item in [d for d in self.due if d[0] <= now]:
            self.due.remove(item)
            child = self.fork(item[1])
            log.info(
                "worker started",
                extra={
                    "fields": {"worker": child.index, "pid": child.process.pid, "from_spare": False}
                },
            )

    def seconds_to_next_fork(self) -> float | None:
        if not self.due:
            return None
        return max(0.0, min(when for when, _ in self.due) - time.monotonic())


def run_workers(config: WorkersConfig, serve_worker: Callable[[Turn, int], int]) -> int:
    """Runs `serve_worker(turn, port)` in `config.workers` forked processes (and `spares`),
    replacing those that exit, until SIGTERM or SIGINT (forwarded to each) or too many crashes
    (see the module docstring); returns the exit code."""
    loaded = [name for name in _FORK_UNSAFE if name in sys.modules]
    if loaded:
        raise RuntimeError(
            f"{loaded} already imported: workers must be forked before any gRPC "
            "or TensorFlow state exists"
        )
    own_dir = None
    if not os.environ.get(METRICS_DIR_ENV):
        own_dir = tempfile.mkdtemp(prefix="ue-metrics-")
        os.environ[METRICS_DIR_ENV] = own_dir  # before prometheus_client is imported anywhere
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        with contextlib.suppress(OSError):
            os.write(wake_write, b"\0")  # ends the wait below at once

    previous = {signum: signal.signal(signum, request_stop) for signum in _STOP_SIGNALS}
    try:
        from prometheus_client import Counter

        restarts = Counter(
            "ue_worker_restarts",
            "worker processes that exited unasked and were replaced",
            registry=None,
        )
        with reserve_port(config.host, config.port) as port:
            supervisor = _Supervisor(config, serve_worker, port, restarts)
            if config.pin_workers:
                supervisor.cpus = usable_cpus()
            http = None
            try:
                supervisor.start()
                if config.metrics_port is not None:
                    http = _metrics_http(config.metrics_port, config.host)
                log.info(
                    "workers started",
                    extra={
                        "fields": {
                            "address": f"{config.host}:{port}",
                            "workers": [c.process.pid for c in supervisor.slots if c is not None],
                            "spares": [c.process.pid for c in supervisor.spares],
                            "metrics_port": http.server_address[1] if http else None,
                            "pinned_to": supervisor.cpus or None,
                        }
                    },
                )
                while not stopping and not supervisor.gave_up:
                    children = supervisor.children()
                    wait(
                        [c.process.sentinel for c in children] + [wake_read],
                        supervisor.seconds_to_next_fork(),
                    )
                    for child in children:
                        if not (stopping or supervisor.gave_up or child.process.is_alive()):
                            supervisor.on_exit(child)
                    if not stopping and not supervisor.gave_up:
                        supervisor.fork_due()
            finally:  # also when forking or the metrics port fails: no orphans
                _stop(supervisor.children(), config.stop_seconds)
                if http is not None:
                    http.shutdown()
                    http.server_close()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(wake_read)
        os.close(wake_write)
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
            os.environ.pop(METRICS_DIR_ENV, None)
    slots = [c.process.exitcode if c else None for c in supervisor.slots]
    spares = [c.process.exitcode for c in supervisor.spares]
    log.info(
        "workers stopped",
        extra={
            "fields": {
                "exit_codes": slots,
                "spare_exit_codes": spares,
                "restarts": supervisor.restarted,
            }
        },
    )
    clean = all(code == 0 for code in slots + spares)
    return 0 if stopping and not supervisor.gave_up and clean else 1


def _stop(children: list[_Child], seconds: float) -> None:
    """SIGTERM to every live process (each stops gracefully), SIGKILL after `seconds`."""
    from prometheus_client import multiprocess

    for child in children:
        if child.process.is_alive():
            os.kill(child.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    for child in children:
        child.process.join(max(0.0, deadline - time.monotonic()))
        if child.process.is_alive():
            log.error("%s did not stop in %.0f s; killing it", child.name, seconds)
            child.process.kill()
            child.process.join()
        multiprocess.mark_process_dead(child.process.pid)
        if child.promote_fd >= 0:
            os.close(child.promote_fd)


__all__ = ["METRICS_DIR_ENV", "Turn", "WorkersConfig", "reserve_port", "run_workers"]
