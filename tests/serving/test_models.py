"""Every field-kind mix is servable: a Criteo model (numeric + categorical), a Frappe model (no
numeric field) and a schema-file model (a multi-valued field, no numeric field) each answer
through our API (rows, and context + candidates) and TF Serving's (`serving_default` and
`packed`) with the scores of the SavedModel called in-process.

Model mixes (tiny AutoInts, a few training steps each):

    model     numeric  categorical  multi-valued  max_field_chars
    criteo    13       26           0             1000 (the session's exported_model)
    frappe    0        10           0             1000
    movies    0        2            1             40   (schema file, `genres` split on "|")

Each refuses a cell over its own `max_field_chars`; a multi-valued cell counts whole.
"""

import json
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc, regression_pb2

from serving.client import RankingClient
from serving.model_manager import ManagerConfig
from serving.server import BackgroundServer, ServerConfig
from unified_embedding.contract.schemas import criteo, frappe, load_schema
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.evaluation.evaluate import score_rows
from unified_embedding.rows.reader import RawRows, read_rows

# max_field_chars: a smaller cell limit than the default 1000
MOVIES = {
    "name": "movies",
    "columns": ["clicked", "genres", "city", "device"],
    "label": "clicked",
    "multi_valued": {"genres": "|"},
    "max_field_chars": 40,
}


def _values(spec: FeatureSpec, rows: int, seed: int) -> RawRows:
    """Random raw rows of `spec`: ids from a small vocabulary, some missing; multi-valued
    fields join 0-3 of them with the separator."""
    rng = np.random.default_rng(seed)
    columns = {}
    for f in spec.fields:
        ids = rng.integers(0, 12, (rows, 3))
        words = np.where(ids < 2, "", np.char.add(f"{f.name}-", ids.astype(str)))  # (rows, 3)
        if f.kind == "multi_valued":
            assert f.separator is not None
            joined = [f.separator.join(w for w in row[: rng.integers(0, 4)] if w) for row in words]
            columns[f.name] = np.array(joined, object)
        else:
            columns[f.name] = words[:, 0].astype(object)
    return RawRows(columns, (rng.random(rows) < 0.3).astype(np.float32))


def _numbers(text: np.ndarray) -> np.ndarray:
    text = text.astype(str)
    return np.where(text == "", "nan", text).astype(np.float32)  # "" = NaN = missing


def _tiny_export(spec: FeatureSpec, base: Path) -> Path:
    from unified_embedding.exported.writer import export
    from unified_embedding.models.autoint import AutoIntConfig
    from unified_embedding.training.experiment import TrainConfig, train_and_evaluate

    train = _values(spec, 256, seed=0)
    model, _ = train_and_evaluate(
        spec,
        "unified",
        train,
        train.take(np.arange(8)),
        20_000,
        AutoIntConfig(num_layers=1, num_heads=1, head_dim=8),
        TrainConfig(batch_size=64),
    )
    return export(model, spec, base)


class Served:
    """A model, its export, rows to score, the in-process scores and a server over it."""

    def __init__(self, spec: FeatureSpec, version: Path, rows: RawRows, server) -> None:  # type: ignore[no-untyped-def]
        self.spec, self.version, self.rows, self.server = spec, version, rows, server
        self.expected = score_rows(version, rows)  # the SavedModel's serving_default, in-process
        self.columns = {
            f.name: _numbers(rows.columns[f.name])
            if f.kind == "numeric"
            else rows.columns[f.name].astype(str)
            for f in spec.fields
        }


@pytest.fixture(scope="module", params=["criteo", "frappe", "movies"])
def served(request, exported_model, running_server, tmp_path_factory):  # type: ignore[no-untyped-def]
    if request.param == "criteo":
        rows = read_rows(criteo(), exported_model.rows_file)
        yield Served(criteo(), exported_model.version, rows.take(np.arange(64)), running_server)
        return
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "frappe":
        spec = frappe()
    else:
        (tmp / "movies.json").write_text(json.dumps(MOVIES))
        spec = load_schema(tmp / "movies.json")  # a schema file
    version = _tiny_export(spec, tmp / "export")
    config = ServerConfig(
        ManagerConfig(tmp / "export", poll_seconds=0.2), port=0, grace_seconds=2.0
    )
    with BackgroundServer(config) as server:
        yield Served(spec, version, _values(spec, 40, seed=1), server)


def test_field_kinds_of_the_served_models(served) -> None:  # type: ignore[no-untyped-def]
    kinds = {f.kind for f in served.spec.fields}
    assert (
        kinds
        == {
            "criteo": {"numeric", "categorical"},
            "frappe": {"categorical"},
            "movies": {"categorical", "multi_valued"},
        }[served.spec.name]
    )


def test_rows_and_ranking_requests_get_the_in_process_scores(served) -> None:  # type: ignore[no-untyped-def]
    with RankingClient(served.server.target) as client:
        rows = [
            {name: values[i].item() for name, values in served.columns.items()}
            for i in range(len(served.rows))
        ]
        np.testing.assert_allclose(client.predict(rows), served.expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            client.predict_columns(served.columns), served.expected, rtol=1e-5, atol=1e-6
        )
        # context + candidates equal the same rows sent row-wise, in candidate order
        shared = served.spec.fields[-1].name
        context = {shared: rows[3][shared]}
        same = [{**row, **context} for row in rows]
        candidates = {k: v for k, v in served.columns.items() if k != shared}
        response = client.rank(context, candidates)
        np.testing.assert_allclose(response.probabilities, client.predict(same), rtol=1e-6)
        reversed_order = client.rank(context, {k: v[::-1] for k, v in candidates.items()})
        np.testing.assert_allclose(
            reversed_order.probabilities, response.probabilities[::-1], rtol=1e-6
        )
        explained = client.rank(context, {k: v[:2] for k, v in candidates.items()}, 2)
        assert len(explained.explanations) == 2


def test_tf_serving_requests_get_the_in_process_scores(served) -> None:  # type: ignore[no-untyped-def]
    spec = served.spec
    default = predict_pb2.PredictRequest()
    default.model_spec.name = "default"
    for name, values in served.columns.items():
        # numeric columns travel as tensor_content bytes, strings as string_val
        default.inputs[name].CopyFrom(
            tf.make_tensor_proto(values.astype(object) if values.dtype.kind == "U" else values)
        )
    rows = len(served.rows)
    packed = predict_pb2.PredictRequest()
    packed.model_spec.name, packed.model_spec.signature_name = "default", "packed"
    categorical = np.empty((rows, len(spec.categorical_fields)), object)
    numeric = np.empty((rows, len(spec.numeric_fields)), np.float32)
    for i, f in enumerate(spec.categorical_fields):
        categorical[:, i] = served.columns[f.name]
    for i, f in enumerate(spec.numeric_fields):
        numeric[:, i] = served.columns[f.name]
    packed.inputs["categorical"].CopyFrom(tf.make_tensor_proto(categorical, tf.string))
    packed.inputs["numeric"].CopyFrom(tf.make_tensor_proto(numeric, tf.float32))
    with grpc.insecure_channel(served.server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for request in (default, packed):
            got = tf.make_ndarray(stub.Predict(request, timeout=10).outputs["probability"])
            np.testing.assert_allclose(got, served.expected, rtol=1e-5, atol=1e-6)


def test_each_model_refuses_cells_over_its_own_limit(served) -> None:  # type: ignore[no-untyped-def]
    """The spec's `max_field_chars` (preprocessing's limit) holds on both APIs; a multi-valued
    cell counts whole, values and separators, as preprocessing counts it (movies: 40)."""
    spec = served.spec
    limit = spec.input_format.max_field_chars
    field = next((f for f in spec.fields if f.separator), spec.categorical_fields[-1])
    if field.separator:  # values of 9 characters, each short, joined to exactly `limit`
        at_limit = [b"v" * 9] * (limit // 10 - 1) + [b"v" * (limit - 10 * (limit // 10 - 1))]
    else:
        at_limit = [b"v" * limit]
    assert len((field.separator or "").encode().join(at_limit)) == limit
    row = {name: values[0].item() for name, values in served.columns.items()}
    example = example_pb2.Example()
    for name, value in row.items():
        if name != field.name:
            feature = example.features.feature[name]
            if isinstance(value, float):
                feature.float_list.value.append(value)
            else:
                feature.bytes_list.value.append(value.encode())
    with (
        grpc.insecure_channel(served.server.target) as channel,
        RankingClient(served.server.target) as client,
    ):
        regress = prediction_service_pb2_grpc.PredictionServiceStub(channel).Regress
        for cell, ok in ((at_limit, True), ([*at_limit[:-1], at_limit[-1] + b"v"], False)):
            text = (field.separator or "").join(v.decode() for v in cell)
            request = regression_pb2.RegressionRequest()
            listed = request.input.example_list.examples.add()
            listed.CopyFrom(example)
            listed.features.feature[field.name].bytes_list.value.extend(cell)  # several values
            if ok:
                assert len(client.predict([{**row, field.name: text}])) == 1
                assert len(regress(request, timeout=10).result.regressions) == 1
                continue
            message = (
                f"row 0: field `{field.name}` has {limit + 1} characters; at most "
                f"{limit} are allowed (the model's `max_field_chars`)"
            )
            with pytest.raises(grpc.RpcError) as e:
                client.predict([{**row, field.name: text}])
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in e.value.details()
            with pytest.raises(grpc.RpcError) as e:
                regress(request, timeout=10)
            assert (e.value.code(), e.value.details()) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                message,
            )
