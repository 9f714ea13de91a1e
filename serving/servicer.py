"""The `unified_embedding.serving.v1.Ranking` servicer: protos <-> predictor, status codes.

INVALID_ARGUMENT  a missing or unknown field, a wrong type, a non-finite number, an empty or
                  oversized batch, rows and candidates in one request
NOT_FOUND         an unknown model, version or version label
RESOURCE_EXHAUSTED  the batching queue is full
DEADLINE_EXCEEDED   the deadline passed before the model answered
UNAVAILABLE       no version loaded yet
INTERNAL          the model failed on a valid request (logged; the server keeps serving)
CANCELLED         the client went away or cancelled (one INFO line, no traceback)

A message holds what the client sent and what the model takes, never a server path or the text
of an unexpected exception: those go to the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import numpy as np
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor

from protos import prediction_pb2, prediction_pb2_grpc
from serving.batching import Batcher, QueueFull
from serving.model_manager import ModelManager, ModelNotFound, ModelUnavailable
from serving.predictor import InvalidRequest, PackedBatch, Predictor, Value
from serving.prometheus import Metrics

log = logging.getLogger(__name__)
Response = TypeVar("Response")
MAX_EXPLAIN_TOP_K = 64
MAX_EXPLAIN_ROWS = 256  # attention weights are (rows, layers, heads, fields, fields) floats

_CODES: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFound, grpc.StatusCode.NOT_FOUND),
    (ModelUnavailable, grpc.StatusCode.UNAVAILABLE),
    (QueueFull, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
)


class Failure(Exception):
    """A request answered with an error: the status code and the message for the client."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def status_of(error: Exception, method: str) -> tuple[grpc.StatusCode, str]:
    """The status code and message `error` is answered with; INTERNAL (logged) when unexpected."""
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code, str(error) or "the deadline passed"
    log.error("%s failed", method, exc_info=error)
    return grpc.StatusCode.INTERNAL, "internal error"


async def answer(
    method: str, metrics: Metrics, timeout: float | None, call: Callable[[], Awaitable[Response]]
) -> Response:
    """Runs `call` within `timeout` seconds (None: no limit), counted in `metrics`; any error
    leaves as Failure (the front end, gRPC or REST, turns it into its own status)."""
    with metrics.track(method):
        try:
            if timeout is not None and timeout <= 0:
                raise TimeoutError("the deadline passed before the request was handled")
            async with asyncio.timeout(timeout):  # no task of its own, unlike `wait_for`
                return await call()
        except asyncio.CancelledError:
            metrics.error(method, grpc.StatusCode.CANCELLED)
            log.info(
                "%s cancelled: the client went away, cancelled or the server is stopping", method
            )
            raise
        except Exception as e:
            code, message = status_of(e, method)
        metrics.error(method, code)
        raise Failure(code, message)


async def handle(
    method: str,
    metrics: Metrics,
    context: grpc.aio.ServicerContext,
    call: Callable[[], Awaitable[Response]],
) -> Response:
    """Runs `call` under the request's deadline and turns errors into status codes."""
    try:
        return await answer(method, metrics, context.time_remaining(), call)
    except Failure as failure:
        code, message = failure.code, failure.message
    await context.abort(code, message)
    raise AssertionError("unreachable: abort raises")


def _value(value: prediction_pb2.Value) -> Value:
    kind = value.WhichOneof("kind")
    return None if kind is None else getattr(value, kind)


def rows_of(request: prediction_pb2.ScoreRequest) -> list[dict[str, Value]]:
    return [{k: _value(v) for k, v in row.features.items()} for row in request.rows]


def column_array(column: prediction_pb2.Column) -> np.ndarray | None:
    """A Column as one NumPy array (float32 or object of str); None when it holds neither."""
    kind = column.WhichOneof("kind")
    if kind == "floats":
        return np.array(column.floats.values, np.float32)
    if kind == "strings":
        strings = np.empty(len(column.strings.values), dtype=object)
        strings[:] = column.strings.values
        return strings
    return None


def batch_of(predictor: Predictor, request: prediction_pb2.ScoreRequest) -> PackedBatch:
    """The request's rows, or its context + candidates, as one batch."""
    if not request.candidates and not request.HasField("context"):
        return predictor.pack_rows(rows_of(request))
    if request.rows:
        raise InvalidRequest(
            "give either `rows` or `context` + `candidates`, not both. Received "
            f"{len(request.rows)} rows and a ranking request"
        )
    context = {k: _value(v) for k, v in request.context.features.items()}
    candidates = {k: column_array(v) for k, v in request.candidates.items()}
    return predictor.pack_ranking(context, candidates)


def model_spec(name: str, predictor: Predictor) -> prediction_pb2.ModelSpec:
    return prediction_pb2.ModelSpec(name=name, version=predictor.version)


class RankingServicer(prediction_pb2_grpc.RankingServicer):
    def __init__(
        self, models: ModelManager, batcher: Batcher, metrics: Metrics, worker: int = 0
    ) -> None:
        self.models = models
        self.batcher = batcher
        self.metrics = metrics
        self.worker = worker

    async def Score(
        self, request: prediction_pb2.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> prediction_pb2.ScoreResponse:
        return await handle("Score", self.metrics, context, lambda: self._score(request))

    async def _score(self, request: prediction_pb2.ScoreRequest) -> prediction_pb2.ScoreResponse:
        versions = self.models.versions(request.model_spec.name)
        predictor = versions.get(request.model_spec.version)
        top_k = request.explain_top_k
        if not 0 <= top_k <= MAX_EXPLAIN_TOP_K:
            raise InvalidRequest(
                f"`explain_top_k` should be in [0, {MAX_EXPLAIN_TOP_K}]. "
                f"Received: `explain_top_k={top_k}`"
            )
        if top_k and len(request.rows) > MAX_EXPLAIN_ROWS:
            raise InvalidRequest(
                f"explanations are given for at most {MAX_EXPLAIN_ROWS} rows per "
                f"request. Received {len(request.rows)} rows"
            )
        batch = batch_of(predictor, request)
        if top_k and len(batch) > MAX_EXPLAIN_ROWS:
            raise InvalidRequest(
                f"explanations are given for at most {MAX_EXPLAIN_ROWS} rows per "
                f"request. Received {len(batch)} candidates"
            )
        scores = await self.batcher.predict(predictor, batch)
        response = prediction_pb2.ScoreResponse(
            model_spec=model_spec(versions.name, predictor),
            probabilities=scores.tolist(),
        )
        if top_k:
            loop = asyncio.get_running_loop()
            explained = await loop.run_in_executor(None, predictor.explain, batch, top_k)
            for pairs in explained:
                response.explanations.add(
                    pairs=[
                        prediction_pb2.FieldPair(source=p.source, target=p.target, weight=p.weight)
                        for p in pairs
                    ]
                )
        return response

    async def GetModelInfo(
        self, request: prediction_pb2.ModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> prediction_pb2.ModelInfo:
        async def info() -> prediction_pb2.ModelInfo:
            versions = self.models.versions(request.model_spec.name)
            predictor = versions.get(request.model_spec.version)
            return prediction_pb2.ModelInfo(
                model_spec=model_spec(versions.name, predictor),
                spec_fingerprint=predictor.fingerprint,
                fields=[
                    prediction_pb2.Field(name=f.name, kind=f.kind) for f in predictor.spec.fields
                ],
                max_rows_per_request=predictor.config.max_rows,
                worker=self.worker,
                spec_json=predictor.spec.to_json(),
            )

        return await handle("GetModelInfo", self.metrics, context, info)


class Undecodable:
    """What the tolerant deserializer hands over for bytes that are not the request message."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as e:  # gRPC's own handling would answer UNKNOWN and log a traceback
            return Undecodable(e)

    return deserialize


def _guard(method: str, behavior: Callable[..., Awaitable[Any]], metrics: Metrics) -> Any:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Undecodable):
            metrics.error(method, grpc.StatusCode.INVALID_ARGUMENT)
            message = f"the request does not parse as a {method} request message"
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
        return await behavior(request, context)

    return call


def add_service(
    server: grpc.aio.Server, service: ServiceDescriptor, servicer: Any, metrics: Metrics
) -> None:
    """Registers the unary methods `servicer` implements (the rest stay UNIMPLEMENTED), with
    undecodable requests answered INVALID_ARGUMENT instead of gRPC's UNKNOWN."""
    handlers = {}
    for method in service.methods:
        if method.name not in type(servicer).__dict__:
            continue
        request = message_factory.GetMessageClass(method.input_type)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _guard(method.name, getattr(servicer, method.name), metrics),
            request_deserializer=_tolerant(request.FromString),
            response_serializer=lambda message: message.SerializeToString(),
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    server.add_registered_method_handlers(service.full_name, handlers)


def add_to_server(servicer: RankingServicer, server: grpc.aio.Server) -> None:
    add_service(
        server, prediction_pb2.DESCRIPTOR.services_by_name["Ranking"], servicer, servicer.metrics
    )
