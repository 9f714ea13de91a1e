"""TensorFlow Serving's REST API (aiohttp) in the gRPC server's process and event loop, over the
same models and batcher as the gRPC services, so a TF Serving REST client gets their scores.

    GET  /v1/models/NAME[/versions/V | /labels/L]            {"model_version_status": [...]}
    GET  /v1/models/NAME[/versions/V | /labels/L]/metadata   {"model_spec", "metadata"}
    POST /v1/models/NAME[/versions/V | /labels/L]:predict    instances|inputs -> predictions|outputs
    POST /v1/models/NAME[/versions/V | /labels/L]:classify   examples (+ context) -> result
    POST /v1/models/NAME[/versions/V | /labels/L]:regress    examples (+ context) -> result
    GET  /monitoring/prometheus/metrics                      the Prometheus metrics

Errors answer `{"error": message}` with the HTTP code TF Serving gives the gRPC status that the
gRPC services answer for the same error (one exception -> status table: `servicer.status_of`).
A request runs at most `timeout` seconds (TF Serving's `--rest_api_timeout_in_ms`), then 504.
Error bodies and statuses hold no server path or exception text (those go to the log).

A client that goes away before its request is read, or sends malformed HTTP, is one INFO line
in the log (not an ERROR with a traceback per connection, which let any client fill the log).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import numpy as np
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from google.protobuf import json_format
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from tensorflow_serving.apis import model_pb2

from serving.batching import Batcher
from serving.examples import batch_from_input
from serving.json_tensors import examples_input, parse_body, predict_batch
from serving.model_versions import VersionStatus
from serving.predictor import InvalidRequest, Predictor
from serving.prometheus import Metrics
from serving.servicer import Failure, answer
from serving.tf_serving import (
    CLASSIFY,
    REGRESS,
    SIGNATURE_DEF,
    classification,
    example_signature,
    model_status,
    signature_defs,
)
from serving.workers import METRICS_DIR_ENV

log = logging.getLogger(__name__)
METRICS_PATH = "/monitoring/prometheus/metrics"
TARGET = re.compile(
    r"/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>predict|classify|regress))?"
)
# TF Serving's HTTP code for each gRPC status (http_rest_api_util's ToHTTPStatusCode); else 500.
HTTP_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


@dataclass(frozen=True)
class Target:
    """What a `/v1/models/...` path addresses; version 0 and label "" mean the newest."""

    name: str
    version: int = 0
    label: str = ""
    verb: str = ""  # "" (status), "metadata", "predict", "classify" or "regress"


def parse_target(path: str) -> Target | None:
    match = TARGET.fullmatch(path)
    if match is None:
        return None
    return Target(
        match["name"],
        int(match["version"] or 0),
        match["label"] or "",
        "metadata" if match["metadata"] else match["verb"] or "",
    )


class Models(Protocol):
    """What the handlers ask of the model manager (`ModelManager`)."""

    def get(self, name: str, version: int = 0, label: str = "") -> Predictor: ...

    def status(self, name: str, version: int = 0, label: str = "") -> list[VersionStatus]: ...


def status_json(statuses: list[VersionStatus]) -> dict[str, Any]:
    """GetModelStatusResponse as TF Serving writes it (versions as strings, states and error
    codes by name), the gRPC ModelService's answer (`tf_serving.model_status`)."""
    return json_format.MessageToDict(
        model_status(statuses),
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=True,
    )


def metadata_json(name: str, predictor: Predictor) -> dict[str, Any]:
    """GetModelMetadataResponse as TF Serving writes it: the signature defs unpacked."""
    spec = model_pb2.ModelSpec(name=name)
    spec.version.value = predictor.version
    defs = json_format.MessageToDict(
        signature_defs(predictor.path), preserving_proto_field_name=True
    )
    return {
        "model_spec": json_format.MessageToDict(
            spec, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
        ),
        "metadata": {SIGNATURE_DEF: defs},
    }


def metrics_text(metrics: Metrics) -> bytes:
    """This server's metrics; under `--workers N`, every worker's (prometheus multiprocess)."""
    if not os.environ.get(METRICS_DIR_ENV):
        return generate_latest(metrics.registry)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return generate_latest(registry)


def _json(body: Any, status: int = 200) -> web.Response:
    # NaN stays NaN, as TF Serving's JSON allows
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


def error_response(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


class RestApi:
    """The handlers; `application()` is the aiohttp app. `timeout` may be changed at run time."""

    def __init__(
        self, models: Models, batcher: Batcher, metrics: Metrics, timeout: float | None
    ) -> None:
        self.models = models
        self.batcher = batcher
        self.metrics = metrics
        self.timeout = timeout

    def application(self, max_body_bytes: int) -> web.Application:
        app = web.Application(client_max_size=max_body_bytes, middlewares=[_json_errors])
        app.router.add_get(METRICS_PATH, self.prometheus)
        app.router.add_get("/v1/models/{path:.+}", self.get)
        app.router.add_post("/v1/models/{path:.+}", self.post)
        return app

    async def _run(self, method: str, call: Callable[[], Awaitable[Any]]) -> web.Response:
        try:
            return _json(await answer(f"rest_{method}", self.metrics, self.timeout, call))
        except Failure as failure:
            return error_response(HTTP_CODES.get(failure.code, 500), failure.message)

    async def get(self, request: web.Request) -> web.Response:
        target = parse_target(request.path)
        if target is None or target.verb not in ("", "metadata"):
            return error_response(404, f"no such resource: GET {request.path}")
        if target.verb == "metadata":
            return await self._run("metadata", lambda: self._metadata(target))
        return await self._run("status", lambda: self._status(target))

    async def post(self, request: web.Request) -> web.Response:
        target = parse_target(request.path)
        if target is None or target.verb not in ("predict", "classify", "regress"):
            return error_response(
                404,
                f"no such resource: POST {request.path}; the verbs are "
                ":predict, :classify and :regress",
            )
        body = await request.read()
        verb = {"predict": self._predict, "classify": self._classify, "regress": self._regress}
        return await self._run(target.verb, lambda: verb[target.verb](target, body))

    async def prometheus(self, request: web.Request) -> web.Response:
        response = web.Response(body=metrics_text(self.metrics))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    def _predictor(self, target: Target) -> Predictor:
        return self.models.get(target.name, target.version, target.label)

    async def _status(self, target: Target) -> dict[str, Any]:
        return status_json(self.models.status(target.name, target.version, target.label))

    async def _metadata(self, target: Target) -> dict[str, Any]:
        return metadata_json(target.name, self._predictor(target))

    async def _predict(self, target: Target, body: bytes) -> dict[str, Any]:
        predictor = self._predictor(target)
        batch, key = predict_batch(predictor, parse_body(body))
        return {key: (await self.batcher.predict(predictor, batch)).tolist()}

    async def _scores(self, target: Target, body: bytes, method: str) -> np.ndarray:
        """Classify and Regress as the gRPC API runs them (its signatures and example parse)."""
        predictor = self._predictor(target)
        request = parse_body(body)
        signature = request.get("signature_name") or ""
        if not isinstance(signature, str):
            raise InvalidRequest(f"`signature_name` should be a string. Received: {signature!r}")
        example_signature(method, model_pb2.ModelSpec(signature_name=signature))
        batch = batch_from_input(predictor, examples_input(request))
        return await self.batcher.predict(predictor, batch)

    async def _regress(self, target: Target, body: bytes) -> dict[str, Any]:
        scores = await self._scores(target, body, REGRESS)
        return {"result": scores.tolist()}

    async def _classify(self, target: Target, body: bytes) -> dict[str, Any]:
        result = classification(await self._scores(target, body, CLASSIFY))
        return {
            "result": [[[c.label, c.score] for c in one.classes] for one in result.classifications]
        }


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own errors (unknown path, wrong method, body too large) as `{"error": ...}`;
    a client gone before its body arrived is one log line (the answer reaches no one)."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return error_response(e.status, f"{e.reason}: {request.method} {request.path}")
    except ConnectionError as e:
        log.info(
            "client %s closed the connection before its request was read: %s %s (%s)",
            request.remote,
            request.method,
            request.path,
            _one_line(e),
        )
        return error_response(499, "the client closed the connection")


def _one_line(error: BaseException) -> str:
    text = error.message if isinstance(error, HttpProcessingError) else str(error)
    words = " ".join(str(text).split()) or type(error).__name__
    return words if len(words) <= 120 else words[:117] + "..."


class _ServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger, with client-caused errors (a connection lost, malformed HTTP)
    as one INFO line without a traceback; any other error as aiohttp logs it."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(error, ConnectionError | HttpProcessingError):
            self.info("%s: %s", str(msg) % args if args else msg, _one_line(error))
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


async def start_rest(
    app: web.Application, host: str, port: int, reuse_port: bool, grace_seconds: float
) -> tuple[web.AppRunner, int]:
    """Serves `app` on `host:port` (0: a free port) in the running loop; returns the runner
    (`await runner.cleanup()` stops it, letting requests in flight finish within
    `grace_seconds`) and the bound port."""
    server_log = _ServerLog(logging.getLogger("aiohttp.server"), {})
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=grace_seconds, logger=server_log)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    await site.start()
    return runner, int(runner.addresses[0][1])


__all__ = [
    "HTTP_CODES",
    "METRICS_PATH",
    "Models",
    "RestApi",
    "Target",
    "metadata_json",
    "parse_target",
    "start_rest",
    "status_json",
]
