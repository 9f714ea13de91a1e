"""A client of the Ranking service: deadlines on every call, retries on UNAVAILABLE, and rows
read from a file of any supported schema. Imports no TensorFlow.

    with RankingClient("127.0.0.1:8500") as client:
        info = client.model_info()
        rows = rows_from_file("rows.tsv", "criteo", info)
        probabilities = client.predict(rows)
        # a ranking request: shared fields once, the candidates column-wise
        columns = columns_from_file("rows.tsv", "criteo", info)
        probabilities = client.rank({"C1": "user-7"}, {k: v for k, v in columns.items()
                                                       if k != "C1"})
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
import numpy as np

from protos import prediction_pb2, prediction_pb2_grpc
from unified_embedding.contract.raw_values import raw_type
from unified_embedding.contract.schemas import load_schema
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.rows.reader import read_rows
from unified_embedding.runtime.flags import option

Response = TypeVar("Response")
RowValues = Mapping[str, str | float]
Columns = Mapping[str, Sequence[str] | Sequence[float] | np.ndarray]


@dataclass(frozen=True)
class ClientConfig:
    """Args:
    timeout_seconds: the deadline of each attempt.
    retries: further attempts after UNAVAILABLE (a server starting, restarting or loading).
    backoff_seconds: the first wait between attempts; doubles each time.
    model_name: the model to address ("" = the server's).
    root_certificate: PEM root certificate for TLS (plaintext when None).
    max_rows_per_request: `predict` splits larger inputs into requests of this many rows.
    """

    timeout_seconds: float = option(5.0, "the deadline of each request")
    retries: int = option(3, "further attempts after UNAVAILABLE")
    backoff_seconds: float = 0.1
    model_name: str = option("", "the model to score with; empty: the server's")
    root_certificate: bytes | None = None
    max_rows_per_request: int = option(1024, "rows per request")


def row_proto(row: RowValues) -> prediction_pb2.Row:
    """`{field: str | float}` -> Row; strings go to string_value, numbers to float_value."""
    features = {}
    for name, value in row.items():
        if isinstance(value, str):
            features[name] = prediction_pb2.Value(string_value=value)
        else:
            features[name] = prediction_pb2.Value(float_value=value)
    return prediction_pb2.Row(features=features)


def column_proto(values: Sequence[str] | Sequence[float] | np.ndarray) -> prediction_pb2.Column:
    """One field's values for every candidate: numbers -> `floats`, anything else -> `strings`."""
    array = np.asarray(values)
    if array.dtype.kind in "fiub":
        return prediction_pb2.Column(floats=prediction_pb2.Floats(values=array.astype(np.float32)))
    return prediction_pb2.Column(strings=prediction_pb2.Strings(values=array.astype(str)))


def ranking_request(
    context: RowValues, candidates: Columns, model_name: str = "", explain_top_k: int = 0
) -> prediction_pb2.ScoreRequest:
    """A ScoreRequest carrying `context` once and `candidates` column-wise."""
    return prediction_pb2.ScoreRequest(
        model_spec=prediction_pb2.ModelSpec(name=model_name),
        context=row_proto(context),
        candidates={name: column_proto(values) for name, values in candidates.items()},
        explain_top_k=explain_top_k,
    )


def file_spec(schema: str | None, info: prediction_pb2.ModelInfo) -> FeatureSpec:
    """How to read an input file: `schema` (criteo, avazu, frappe or a schema file), else the
    format of the served model's own data (the spec in its ModelInfo)."""
    if schema is not None:
        return load_schema(schema)
    if not info.spec_json:
        raise ValueError("the server sent no spec with its model info: give `--schema`")
    return FeatureSpec.from_json(info.spec_json)


def columns_from_file(
    path: str | Path, schema: str | None, info: prediction_pb2.ModelInfo
) -> dict[str, np.ndarray]:
    """The model's fields of `path` (read with `file_spec(schema, info)`), one array per
    field: float32 for numeric fields (empty = NaN = missing), str otherwise."""
    spec = file_spec(schema, info)
    missing = [f.name for f in info.fields if f.name not in spec.field_names]
    if missing:
        raise ValueError(f"schema `{schema}` lacks the model's fields {missing}")
    columns = read_rows(spec, path).columns
    return {f.name: raw_type(f).from_text(columns[f.name]) for f in info.fields}


def rows_from_file(
    path: str | Path, schema: str | None, info: prediction_pb2.ModelInfo
) -> list[RowValues]:
    """The model's fields of each row of `path` as `{field: str | float}` (the row form)."""
    columns = {
        name: values.tolist() for name, values in columns_from_file(path, schema, info).items()
    }
    count = len(next(iter(columns.values()), []))
    return [{name: values[i] for name, values in columns.items()} for i in range(count)]


class RankingClient:
    def __init__(self, target: str, config: ClientConfig = ClientConfig()) -> None:
        self.config = config
        if config.root_certificate is None:
            self._channel = grpc.insecure_channel(target)
        else:
            credentials = grpc.ssl_channel_credentials(root_certificates=config.root_certificate)
            self._channel = grpc.secure_channel(target, credentials)
        self._stub = prediction_pb2_grpc.RankingStub(self._channel)

    def _call(self, method: Callable[..., Response], request: object) -> Response:
        wait = self.config.backoff_seconds
        for attempt in range(self.config.retries + 1):
            try:
                return method(request, timeout=self.config.timeout_seconds)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.config.retries:
                    raise
            time.sleep(wait)
            wait *= 2
        raise AssertionError("unreachable")

    def model_info(self) -> prediction_pb2.ModelInfo:
        request = prediction_pb2.ModelInfoRequest(
            model_spec=prediction_pb2.ModelSpec(name=self.config.model_name)
        )
        return self._call(self._stub.GetModelInfo, request)

    def score(
        self, rows: Sequence[RowValues], explain_top_k: int = 0
    ) -> prediction_pb2.ScoreResponse:
        """One request: every row's probability (and explanations when `explain_top_k`)."""
        request = prediction_pb2.ScoreRequest(
            model_spec=prediction_pb2.ModelSpec(name=self.config.model_name),
            rows=[row_proto(r) for r in rows],
            explain_top_k=explain_top_k,
        )
        return self._call(self._stub.Score, request)

    def predict(self, rows: Sequence[RowValues]) -> list[float]:
        """Probabilities of any number of rows, in requests of `max_rows_per_request`."""
        out: list[float] = []
        for chunk in _chunks(rows, self.config.max_rows_per_request):
            out.extend(self.score(chunk).probabilities)
        return out

    def rank(
        self, context: RowValues, candidates: Columns, explain_top_k: int = 0
    ) -> prediction_pb2.ScoreResponse:
        """One ranking request: `context` (fields shared by every candidate) sent once, the
        other fields column-wise; probabilities in candidate order."""
        request = ranking_request(context, candidates, self.config.model_name, explain_top_k)
        return self._call(self._stub.Score, request)

    def predict_columns(self, candidates: Columns, context: RowValues | None = None) -> list[float]:
        """Probabilities of any number of candidates given column-wise (plus a shared
        `context`), in ranking requests of `max_rows_per_request` candidates."""
        arrays = {name: np.asarray(values) for name, values in candidates.items()}
        count = len(next(iter(arrays.values()), ()))
        out: list[float] = []
        for start in range(0, count, self.config.max_rows_per_request):
            end = start + self.config.max_rows_per_request
            chunk = {name: values[start:end] for name, values in arrays.items()}
            out.extend(self.rank(context or {}, chunk).probabilities)
        return out

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RankingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chunks(rows: Sequence[RowValues], size: int) -> Iterator[Sequence[RowValues]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
