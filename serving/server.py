"""The gRPC server: our Ranking service and TF Serving's PredictionService and ModelService
over one model manager and one batcher, with health checking, reflection, TLS, metrics and
graceful stop.

    ue serve --model-base-path export/ --port 8500 [--model-name default] [--metrics-port 8501]
    ue serve --model-config-file models.config --port 8500 [--rest-api-port 8501]

With `rest_api_port`, TF Serving's REST API (serving/rest.py) is served too, in the same event
loop over the same models and batcher.

Binds to loopback unless `--host` says otherwise. Health is NOT_SERVING until every configured
model has a version loaded. Stopping (SIGTERM, SIGINT) turns health to NOT_SERVING, refuses new
RPCs and lets the ones in flight finish for up to `grace_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tensorflow_serving.apis import model_service_pb2, prediction_service_pb2

from protos import prediction_pb2
from serving.batching import Batcher, BatchingConfig
from serving.logs import configure_logging
from serving.metrics import Metrics
from serving.model_manager import ManagerConfig, ModelManager
from serving.predictor import set_op_threads
from serving.rest import RestApi, start_rest
from serving.servicer import RankingServicer, add_service, add_to_server
from serving.tf_serving import ModelServiceServicer, PredictionServiceServicer

log = logging.getLogger(__name__)
RANKING = prediction_pb2.DESCRIPTOR.services_by_name["Ranking"].full_name
PREDICTION_SERVICE = prediction_service_pb2.DESCRIPTOR.services_by_name[
    "PredictionService"
].full_name
MODEL_SERVICE = model_service_pb2.DESCRIPTOR.services_by_name["ModelService"]


@dataclass(frozen=True)
class TlsConfig:
    certificate: Path  # PEM certificate chain
    private_key: Path  # PEM private key


@dataclass(frozen=True)
class ServerConfig:
    """Args:
    models: where the versions are and how to follow them.
    port: gRPC port (0 picks a free one).
    host: interface to bind; loopback by default, `0.0.0.0` to serve the network.
    metrics_port: Prometheus `/metrics` over HTTP on `host` (None: off, 0: a free port).
    rest_api_port: TF Serving's REST API on `host` (None: off, 0: a free port), its metrics at
        `/monitoring/prometheus/metrics`.
    rest_api_timeout_seconds: a REST request not answered within it gets 504 (TF Serving's
        `--rest_api_timeout_in_ms`).
    batching: how concurrent requests merge into model calls.
    tls: serve TLS with this certificate and key (plaintext when None).
    max_message_bytes: largest request or response.
    max_concurrent_rpcs: RPCs in progress at once; beyond it RESOURCE_EXHAUSTED.
    grace_seconds: how long stopping waits for RPCs in flight.
    model_threads: model calls that may run at once (threads).
    op_threads: TensorFlow intra- and inter-op threads, set by `serve()` before TensorFlow
        starts (None: TensorFlow's default, one per core).
    reuse_port: bind with SO_REUSEPORT, so several server processes share `port` and the
        kernel spreads connections over them (`serving.workers`); off, a port in use fails.
    worker: this process's index among the workers (ModelInfo.worker, logs).
    """

    models: ManagerConfig
    port: int = 8500
    host: str = "127.0.0.1"
    metrics_port: int | None = None
    rest_api_port: int | None = None
    rest_api_timeout_seconds: float = 30.0
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    tls: TlsConfig | None = None
    max_message_bytes: int = 16 * 1024 * 1024
    max_concurrent_rpcs: int = 2048
    grace_seconds: float = 10.0
    model_threads: int = 2
    op_threads: int | None = 1
    reuse_port: bool = False
    worker: int = 0


class PredictionServer:
    """`await start()` (returns the bound port), `await stop()`; one event loop."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.port = 0
        self.metrics_port: int | None = None
        self.rest_api_port: int | None = None
        self.rest: RestApi | None = None
        self._serving = asyncio.Event()
        self._executor = ThreadPoolExecutor(config.model_threads, thread_name_prefix="model")
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="loader")
        self.models = ModelManager(config.models, self._loader, on_version=self._on_version)
        self.batcher = Batcher(
            config.batching, self._executor, on_batch=self.metrics.batch_rows.observe
        )
        self.health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._http: Any = None
        self._rest: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _on_version(self, model: str, version: int) -> None:
        if version:
            self.metrics.version.labels(model).set(version)
        else:  # the model was removed from the config file
            with contextlib.suppress(KeyError):
                self.metrics.version.remove(model)
        if self._serving.is_set() or not self.models.ready():
            return  # health turns SERVING once every configured model has a version
        self._serving.set()
        task = asyncio.get_running_loop().create_task(self._set_health(serving=True))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _set_health(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)  # fmt: skip
        for service in ("", RANKING, PREDICTION_SERVICE):
            await self.health.set(service, status)

    async def start(self) -> int:
        config = self.config
        limits = [
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.so_reuseport", int(config.reuse_port)),
        ]
        server = grpc.aio.server(options=limits, maximum_concurrent_rpcs=config.max_concurrent_rpcs)
        add_to_server(
            RankingServicer(self.models, self.batcher, self.metrics, config.worker), server
        )
        add_service(
            server,
            prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"],
            PredictionServiceServicer(self.models, self.batcher, self.metrics),
            self.metrics,
        )
        add_service(server, MODEL_SERVICE, ModelServiceServicer(self.models, self.metrics),
                    self.metrics)  # fmt: skip
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        await self._set_health(serving=False)
        reflection.enable_server_reflection(
            (
                RANKING,
                PREDICTION_SERVICE,
                MODEL_SERVICE.full_name,
                health.SERVICE_NAME,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        address = f"{config.host}:{config.port}"
        if config.tls is None:
            self.port = server.add_insecure_port(address)
        else:
            credentials = grpc.ssl_server_credentials(
                [(config.tls.private_key.read_bytes(), config.tls.certificate.read_bytes())]
            )
            self.port = server.add_secure_port(address, credentials)
        await server.start()
        self._server = server
        self.batcher.start()
        self.models.start()
        if config.metrics_port is not None:
            self._http = self.metrics.serve_http(config.metrics_port, config.host)
            self.metrics_port = int(self._http.server_address[1])
        if config.rest_api_port is not None:
            self.rest = RestApi(self.models, self.batcher, self.metrics,
                                config.rest_api_timeout_seconds)  # fmt: skip
            self._rest, self.rest_api_port = await start_rest(
                self.rest.application(config.max_message_bytes), config.host,
                config.rest_api_port, config.reuse_port, config.grace_seconds,
            )  # fmt: skip
        log.info("listening", extra={"fields": {"address": f"{config.host}:{self.port}",
                 "tls": config.tls is not None, "metrics_port": self.metrics_port,
                 "rest_api_port": self.rest_api_port,
                 "models": self.models.names, "worker": config.worker}})  # fmt: skip
        return self.port

    async def wait_until_serving(self, timeout: float) -> None:
        await asyncio.wait_for(self._serving.wait(), timeout)

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING, no new RPCs, RPCs in flight finish (up to `grace` seconds)."""
        grace = self.config.grace_seconds if grace is None else grace
        await self.health.enter_graceful_shutdown()
        await self.models.stop()
        stopping = []
        if self._server is not None:
            stopping.append(self._server.stop(grace))
        if self._rest is not None:
            stopping.append(self._rest.cleanup())
        await asyncio.gather(*stopping)
        await self.batcher.stop()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self._executor.shutdown(wait=True)
        self._loader.shutdown(wait=True)
        log.info("stopped", extra={"fields": {"port": self.port, "worker": self.config.worker}})


async def _serve(config: ServerConfig) -> None:
    server = PredictionServer(config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop()


def serve(config: ServerConfig) -> None:
    """Runs until SIGINT or SIGTERM, then stops gracefully."""
    configure_logging()
    if not set_op_threads(config.op_threads):
        log.warning("TensorFlow already started: `op_threads` left at its current setting")
    asyncio.run(_serve(config))


class BackgroundServer:
    """A PredictionServer on its own event loop in a daemon thread (demo, tests, benchmarks).

    with BackgroundServer(config) as server:   # returns once a version serves
        client = RankingClient(server.target)
    """

    def __init__(self, config: ServerConfig, ready_timeout: float = 120.0) -> None:
        self.config = config
        self.ready_timeout = ready_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.server: PredictionServer | None = None

    def _run(self, coroutine: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self, wait_until_serving: bool = True) -> BackgroundServer:
        self._thread.start()

        async def create() -> PredictionServer:
            return PredictionServer(self.config)  # its asyncio objects belong to this loop

        self.server = self._run(create())
        self._run(self.server.start())
        if wait_until_serving:
            self._run(self.server.wait_until_serving(self.ready_timeout))
        return self

    @property
    def target(self) -> str:
        assert self.server is not None
        return f"{self.config.host}:{self.server.port}"

    def call(self, coroutine: Any, timeout: float | None = None) -> Any:
        """Runs a coroutine on the server's loop (e.g. `server.models.poll()`)."""
        return self._run(coroutine, timeout)

    def stop(self, grace: float | None = None) -> None:
        if self.server is not None:
            self._run(self.server.stop(grace))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = [
    "BackgroundServer",
    "PredictionServer",
    "ServerConfig",
    "TlsConfig",
    "configure_logging",
    "serve",
]
