"""The gRPC server: our Ranking service and TF Serving's PredictionService and ModelService
over one model manager and one batcher, with health checking, reflection, TLS, metrics and
graceful stop.

    ue serve --model-base-path export/ --port 8500 [--model-name default] [--metrics-port 8501]
    ue serve --model-config-file models.config --port 8500 [--rest-api-port 8501]

With `rest_api_port`, TF Serving's REST API (serving/rest.py) is served too, in the same event
loop over the same models and batcher.

Binds to loopback unless `--host` says otherwise. Health is NOT_SERVING until every configured
model has a version loaded. With `reuse_port` (one of `ue serve --workers N`) the server listens
only once its models serve, so the port's other processes answer meanwhile.

Stopping (SIGTERM, SIGINT) turns health to NOT_SERVING and lets the RPCs in flight finish
within `grace_seconds`, in steps, because gRPC's core answers CANCELLED to every call it holds
but has not handed to Python yet when the server shuts down (under load, most of them):
  1. serve what arrives until no RPC has started for a moment (_QUIET_SECONDS of a responsive
     event loop, at most _SETTLE_SECONDS): the calls that reached the process before the
     signal get their answer;
  2. answer new unary RPCs UNAVAILABLE (retryable, unlike CANCELLED) the same way;
  3. shut the server down (GOAWAY), wait for the unary RPCs in flight, then end the health Watch
     and reflection streams, which never end by themselves. REST requests drain alike.
An idle server stops in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import inspect
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tensorflow_serving.apis import model_service_pb2, prediction_service_pb2

from protos import prediction_pb2
from serving.batching import Batcher
from serving.config import ServerConfig, TlsConfig
from serving.cpu_affinity import unpin_thread
from serving.logs import configure_logging
from serving.model_manager import ModelManager
from serving.prometheus import Metrics
from serving.rest import RestApi, start_rest
from serving.servicer import RankingServicer, add_service, add_to_server
from serving.tf_serving import ModelServiceServicer, PredictionServiceServicer
from unified_embedding.runtime.threads import set_op_threads

log = logging.getLogger(__name__)
RANKING = prediction_pb2.DESCRIPTOR.services_by_name["Ranking"].full_name
PREDICTION_SERVICE = prediction_service_pb2.DESCRIPTOR.services_by_name[
    "PredictionService"
].full_name
MODEL_SERVICE = model_service_pb2.DESCRIPTOR.services_by_name["ModelService"]
# Stopping (the module docstring) waits for a quiet event loop in steps 1 and 2: an idle server
# waits only _QUIET_SECONDS each, a loaded one at most _SETTLE_SECONDS each.
_QUIET_SECONDS = 0.05
_SETTLE_SECONDS = 0.5
WaitForTurn = Callable[[], Awaitable[int]]  # a spare's wait for the worker index it takes over


class _InFlight(grpc.aio.ServerInterceptor):
    """Counts the unary RPCs being handled (stopping waits for exactly those) and the RPCs
    started (stopping waits until they stop arriving); refuses unary RPCs once told to."""

    def __init__(self) -> None:
        self.count = 0
        self.started = 0  # RPCs of any kind so far
        self.refusing = False  # unary RPCs get UNAVAILABLE: the server is stopping
        self.refused = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self._wrapped: dict[int, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        self.started += 1
        handler = await continuation(details)
        if handler is None or handler.request_streaming or handler.response_streaming:
            return handler
        if self.refusing:
            self.refused += 1
            return _REFUSE
        known = self._wrapped.get(id(handler))
        if known is None:  # one wrapper per method, kept with its handler
            known = self._wrapped[id(handler)] = (handler, self._counted(handler))
        return known[1]

    def _counted(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        behavior = handler.unary_unary

        async def counted(request: Any, context: grpc.aio.ServicerContext) -> Any:
            self.count += 1
            self.idle.clear()
            try:
                result = behavior(request, context)
                return await result if inspect.isawaitable(result) else result
            finally:
                self.count -= 1
                if not self.count:
                    self.idle.set()

        return grpc.unary_unary_rpc_method_handler(
            counted,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def _refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAVAILABLE, "the server is stopping; retry")


_REFUSE = grpc.unary_unary_rpc_method_handler(_refuse)


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
        # Model calls and loads (and TensorFlow's threads they start) run on any CPU, also
        # when the request path is pinned (`ue serve --pin-workers`).
        self._executor = ThreadPoolExecutor(
            config.batching.threads, thread_name_prefix="model", initializer=unpin_thread
        )
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="loader", initializer=unpin_thread)
        self.models = ModelManager(config.models, self._loader, on_version=self._on_version)
        self.batcher = Batcher(
            config.batching, self._executor, on_batch=self.metrics.batch_rows.observe
        )
        self.health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._http: Any = None
        self._rest: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = _InFlight()

    def _on_version(self, model: str, version: int) -> None:
        if version:
            if self._server is not None:  # a worker that does not listen yet serves nothing
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
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", RANKING, PREDICTION_SERVICE):
            await self.health.set(service, status)

    async def start(self, turn: WaitForTurn | None = None) -> int:
        """Listens and follows the models; returns the bound port. With `reuse_port` it listens
        once every model serves and, given `turn` (a spare), once `turn()` names the worker
        index this process serves as."""
        if not self.config.reuse_port:
            await self._listen()
        self.batcher.start()
        self.models.start()
        if self.config.reuse_port:
            await self._serving.wait()
            if turn is not None:
                self.config = dataclasses.replace(self.config, worker=await turn())
            await self._listen()
        return self.port

    async def _listen(self) -> None:
        config = self.config
        limits = [
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.so_reuseport", int(config.reuse_port)),
        ]
        server = grpc.aio.server(
            options=limits,
            interceptors=[self._in_flight],
            maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        )
        add_to_server(
            RankingServicer(self.models, self.batcher, self.metrics, config.worker), server
        )
        add_service(
            server,
            prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"],
            PredictionServiceServicer(self.models, self.batcher, self.metrics),
            self.metrics,
        )
        add_service(
            server, MODEL_SERVICE, ModelServiceServicer(self.models, self.metrics), self.metrics
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        if not self._serving.is_set():
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
                [(config.tls.key.read_bytes(), config.tls.certificate.read_bytes())]
            )
            self.port = server.add_secure_port(address, credentials)
        await server.start()
        self._server = server
        for name in self.models.names:  # the versions loaded before it listened
            newest = self.models.versions(name).newest()
            if newest is not None:
                self.metrics.version.labels(name).set(newest.version)
        if config.metrics_port is not None:
            self._http = self.metrics.serve_http(config.metrics_port, config.host)
            self.metrics_port = int(self._http.server_address[1])
        if config.rest_api_port is not None:
            self.rest = RestApi(
                self.models, self.batcher, self.metrics, config.rest_api_timeout_seconds
            )
            self._rest, self.rest_api_port = await start_rest(
                self.rest.application(config.max_message_bytes),
                config.host,
                config.rest_api_port,
                config.reuse_port,
                config.grace_seconds,
            )
        log.info(
            "listening",
            extra={
                "fields": {
                    "address": f"{config.host}:{self.port}",
                    "tls": config.tls is not None,
                    "metrics_port": self.metrics_port,
                    "rest_api_port": self.rest_api_port,
                    "models": self.models.names,
                    "worker": config.worker,
                }
            },
        )

    async def wait_until_serving(self, timeout: float) -> None:
        await asyncio.wait_for(self._serving.wait(), timeout)

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING, the calls that reached the process served, no new RPCs, RPCs in
        flight finish (up to `grace` seconds in all); see the module docstring."""
        grace = self.config.grace_seconds if grace is None else grace
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await self.health.enter_graceful_shutdown()
        await self.models.stop()
        if self._server is not None or self._rest is not None:
            await self._settle(min(_SETTLE_SECONDS, grace))
            self._in_flight.refusing = True
            await self._settle(min(_SETTLE_SECONDS, grace))
        stopping = []
        if self._server is not None:
            stopping.append(self._stop_grpc(self._server, deadline))
        if self._rest is not None:
            stopping.append(self._rest.cleanup())  # waits for its handlers up to `grace`
        await asyncio.gather(*stopping)
        await self.batcher.stop()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self._executor.shutdown(wait=True)
        self._loader.shutdown(wait=True)
        log.info(
            "stopped",
            extra={
                "fields": {
                    "port": self.port,
                    "worker": self.config.worker,
                    "refused_while_stopping": self._in_flight.refused,
                }
            },
        )

    async def _settle(self, seconds: float) -> None:
        """Until the event loop has turned for _QUIET_SECONDS without an RPC starting, at most
        `seconds`. Only prompt turns count: while the loop is busy, calls wait in gRPC's core
        and reach the interceptor a few turns after it is free."""
        loop = asyncio.get_running_loop()
        began = last = loop.time()
        quiet, started = 0.0, self._in_flight.started
        while quiet < _QUIET_SECONDS and last - began < seconds:
            await asyncio.sleep(_QUIET_SECONDS / 10)
            now = loop.time()
            if self._in_flight.started != started:
                quiet, started = 0.0, self._in_flight.started
            elif now - last < _QUIET_SECONDS / 2:
                quiet += now - last
            last = now

    async def _stop_grpc(self, server: grpc.aio.Server, deadline: float) -> None:
        """GOAWAY and wait for the unary RPCs in flight (until `deadline`), then end the
        streams."""
        loop = asyncio.get_running_loop()
        shutdown = asyncio.ensure_future(server.stop(max(0.0, deadline - loop.time())))
        # calls handed over just before the GOAWAY reach the interceptor within a few turns
        await asyncio.wait({shutdown}, timeout=_QUIET_SECONDS)
        idle = asyncio.ensure_future(self._in_flight.idle.wait())
        await asyncio.wait({shutdown, idle}, return_when=asyncio.FIRST_COMPLETED)
        idle.cancel()
        await server.stop(None)
        await shutdown


async def _serve(config: ServerConfig, turn: WaitForTurn | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server = PredictionServer(config)
    starting = asyncio.ensure_future(server.start(turn))
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # stopped while loading, or a spare never called on
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
    else:
        starting.result()  # a failed start (e.g. the port taken) raises here
    await stopped
    await server.stop()


def serve(config: ServerConfig, turn: WaitForTurn | None = None) -> None:
    """Runs until SIGINT or SIGTERM, then stops gracefully. `turn`: see `PredictionServer.start`."""
    configure_logging()
    if not set_op_threads(config.op_threads):
        log.warning("TensorFlow already started: `op_threads` left at its current setting")
    asyncio.run(_serve(config, turn))
    for signum in (signal.SIGINT, signal.SIGTERM):  # stopped: a second signal must not kill
        signal.signal(signum, signal.SIG_IGN)  # the exit (status -15 instead of 0)
    # The interpreter's last garbage collections walk TensorFlow's object graph (~1 s here);
    # nothing left needs them, so the process exits at once.
    gc.freeze()


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
