"""TF Serving's REST API on the gRPC server's loop: a REST client writing JSON as TF Serving's
documentation does gets the scores the unchanged gRPC stub gets; status, metadata, classify and
regress; each error code; metrics; `--batching-parameters-file`."""

import base64
import json
import logging
import math
import shutil
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.batching import BatchingConfig
from serving.batching_parameters import read_batching_parameters
from serving.client import RankingClient, rows_from_file
from serving.model_manager import ManagerConfig
from serving.predictor import Predictor
from serving.rest import Target, parse_target
from serving.server import BackgroundServer, ServerConfig
from serving.tf_serving import LOAD_FAILED

# (rows, fields): 200 Criteo rows, 13 numeric I1..I13 (NaN = missing), 26 categorical C1..C26
QUEUE = 4  # the REST server's batching queue, small so that overload is quick to provoke


@pytest.fixture(scope="module")
def server(exported_model):  # type: ignore[no-untyped-def]
    config = ServerConfig(
        ManagerConfig(exported_model.export_base, poll_seconds=0.2),
        port=0,
        rest_api_port=0,
        batching=BatchingConfig(max_batch_size=256, max_queued_requests=QUEUE),
        grace_seconds=2.0,
    )
    with BackgroundServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def rows(server, exported_model) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    with RankingClient(server.target) as client:
        return rows_from_file(exported_model.rows_file, "criteo", client.model_info())


@pytest.fixture(scope="module")
def version(exported_model) -> str:  # type: ignore[no-untyped-def]
    return str(exported_model.version.name)


def _http(
    server: BackgroundServer, path: str, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    """(HTTP status, decoded JSON) of GET `path`, or of POST when a body is given."""
    assert server.server is not None
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.server.rest_api_port}{path}", data=data
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _grpc_scores(server: BackgroundServer, rows: list[dict[str, Any]]) -> np.ndarray:
    """The unchanged TF Serving gRPC stub, one tensor per field (signature serving_default)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "default"
    for name in rows[0]:
        values = [r[name] for r in rows]
        array = (
            np.array(values, np.float32)
            if isinstance(values[0], float)
            else np.array(values, object)
        )
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    with grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return tf.make_ndarray(stub.Predict(request, timeout=30).outputs["probability"])


def test_predict_in_both_formats_gets_the_grpc_scores(server, rows) -> None:  # type: ignore[no-untyped-def]
    expected = _grpc_scores(server, rows)
    # Row format, as the documentation writes it: {"instances": [{input: value, ...}, ...]}
    status, answer = _http(
        server,
        "/v1/models/default:predict",
        {"signature_name": "serving_default", "instances": rows},
    )
    assert status == 200 and list(answer) == ["predictions"]
    np.testing.assert_array_equal(np.array(answer["predictions"], np.float32), expected)
    # Columnar format: {"inputs": {input: [values...], ...}}
    columns = {name: [r[name] for r in rows] for name in rows[0]}
    status, answer = _http(server, "/v1/models/default:predict", {"inputs": columns})
    assert status == 200 and list(answer) == ["outputs"]
    np.testing.assert_array_equal(np.array(answer["outputs"], np.float32), expected)
    # The `packed` signature in both formats; a version in the path
    numeric = [n for n in rows[0] if isinstance(rows[0][n], float)]
    categorical = [n for n in rows[0] if n not in numeric]
    packed = [
        {"categorical": [r[n] for n in categorical], "numeric": [r[n] for n in numeric]}
        for r in rows
    ]
    version = server.server.models.current.version
    path = f"/v1/models/default/versions/{version}:predict"
    status, answer = _http(server, path, {"signature_name": "packed", "instances": packed})
    assert status == 200
    np.testing.assert_array_equal(np.array(answer["predictions"], np.float32), expected)
    inputs = {k: [p[k] for p in packed] for k in ("categorical", "numeric")}
    status, answer = _http(server, path, {"signature_name": "packed", "inputs": inputs})
    assert status == 200
    np.testing.assert_array_equal(np.array(answer["outputs"], np.float32), expected)


def test_bytes_as_b64_and_nan_as_missing(server, rows) -> None:  # type: ignore[no-untyped-def]
    row = dict(rows[0])
    expected = _grpc_scores(server, [{**row, "I1": math.nan}])
    b64 = {"b64": base64.b64encode(row["C1"].encode()).decode()}
    status, answer = _http(
        server, "/v1/models/default:predict", {"instances": [{**row, "C1": b64, "I1": math.nan}]}
    )
    assert status == 200
    np.testing.assert_array_equal(np.array(answer["predictions"], np.float32), expected)


def test_classify_and_regress_with_context(server, rows) -> None:  # type: ignore[no-untyped-def]
    shared = {"C1": rows[0]["C1"], "I1": rows[0]["I1"]}
    merged = [{**r, **shared} for r in rows[:20]]
    expected = _grpc_scores(server, merged)
    # tf.Example style: a feature's value may be a list of one value
    examples = [
        {k: [v] if i % 2 else v for k, v in r.items() if k not in shared}
        for i, r in enumerate(rows[:20])
    ]
    context = {"C1": [shared["C1"]], "I1": shared["I1"]}
    status, answer = _http(
        server, "/v1/models/default:regress", {"examples": examples, "context": context}
    )
    assert status == 200
    np.testing.assert_array_equal(np.array(answer["result"], np.float32), expected)
    status, answer = _http(
        server,
        "/v1/models/default:classify",
        {"signature_name": "classification", "examples": examples, "context": context},
    )
    # as the gRPC Classify answers: class "0" scored 1 - p, class "1" scored p
    assert status == 200 and [[c[0] for c in r] for r in answer["result"]] == [["0", "1"]] * 20
    scores = np.array([[c[1] for c in r] for r in answer["result"]], np.float32)
    np.testing.assert_array_equal(scores[:, 1], expected)
    np.testing.assert_array_equal(
        scores[:, 0], (1.0 - expected.astype(np.float64)).astype(np.float32)
    )
    clash = [{**r, "C1": "other"} for r in merged[:2]]
    status, answer = _http(
        server, "/v1/models/default:regress", {"examples": clash, "context": context}
    )
    # A feature in both: the example's value wins, as in TF Serving (not as its docs say)
    assert status == 200
    np.testing.assert_array_equal(
        np.array(answer["result"], np.float32), _grpc_scores(server, clash)
    )
    status, answer = _http(
        server, "/v1/models/default:regress", {"signature_name": "nope", "examples": merged[:1]}
    )
    assert status == 400 and "signature `nope` does not answer regress" in answer["error"]
    status, answer = _http(server, "/v1/models/default:regress", {"examples": merged[:1]})
    assert status == 200  # a batch of one row: equal up to the model's float rounding
    np.testing.assert_allclose(answer["result"], expected[:1], rtol=1e-6)


def test_status_and_metadata(server, version) -> None:  # type: ignore[no-untyped-def]
    available = {
        "model_version_status": [
            {
                "version": version,
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert _http(server, "/v1/models/default") == (200, available)
    assert _http(server, f"/v1/models/default/versions/{version}") == (200, available)
    for path in (
        "/v1/models/default/versions/1",
        "/v1/models/default/labels/stable",
        "/v1/models/other",
        "/v1/models/other/metadata",
    ):
        status, answer = _http(server, path)
        assert status == 404 and answer["error"], path
    status, answer = _http(server, "/v1/models/default/metadata")
    assert status == 200
    assert answer["model_spec"] == {"name": "default", "version": version, "signature_name": ""}
    with grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        grpc_answer = stub.GetModelMetadata(
            get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec={"name": "default"}, metadata_field=["signature_def"]
            ),
            timeout=10,
        )
    defs = get_model_metadata_pb2.SignatureDefMap()
    grpc_answer.metadata["signature_def"].Unpack(defs)
    assert answer["metadata"] == {
        "signature_def": json_format.MessageToDict(defs, preserving_proto_field_name=True)
    }
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "packed"} <= set(signatures)
    assert signatures["serving_default"]["outputs"]["probability"]["dtype"] == "DT_FLOAT"


def test_invalid_requests_answer_400_and_unknown_ones_404(server, rows) -> None:  # type: ignore[no-untyped-def]
    good = dict(rows[0])
    predict = "/v1/models/default:predict"
    cases = {
        "row 0: unknown field `C99`": {"instances": [{**good, "C99": "x"}]},
        "row 0: missing field `I1`": {"instances": [{k: v for k, v in good.items() if k != "I1"}]},
        "field `C3`: expected a string, received 12.5": {"instances": [{**good, "C3": 12.5}]},
        "input `C3`: expected all numbers or all strings, received ['float', 'str']": {
            "inputs": {**{k: [v, v] for k, v in good.items()}, "C3": ["a", 1.5]}
        },
        "field `I2`: expected numbers, received strings": {
            "inputs": {**{k: [v] for k, v in good.items()}, "I2": ["abc"]}
        },
        "exactly one of them": {"instances": [good], "inputs": {k: [v] for k, v in good.items()}},
        'unknown `signature_name` "nope"': {"signature_name": "nope", "instances": [good]},
        '`b64` value "%%%" is not base64': {"instances": [{**good, "C1": {"b64": "%%%"}}]},
        "numbers must be finite": {"instances": [{**good, "I1": math.inf}]},
        "the request has no rows": {"inputs": {k: [] for k in good}},
    }
    for message, body in cases.items():
        status, answer = _http(server, predict, body)
        assert status == 400 and message in answer["error"], (message, answer)
    status, answer = _http(server, predict, raw=b'{"instances": [')
    assert status == 400 and "not valid JSON" in answer["error"]
    status, answer = _http(server, "/v1/models/default:train", {"instances": [good]})
    assert status == 404 and ":predict" in answer["error"]
    status, answer = _http(server, "/v2/anything")
    assert status == 404 and "Not Found" in answer["error"]
    status, answer = _http(server, "/v1/models/nope:predict", {"instances": [good]})
    assert status == 404 and "unknown model `nope`" in answer["error"]


def test_no_version_loaded_answers_503_and_a_large_body_413(tmp_path: Path) -> None:
    config = ServerConfig(ManagerConfig(tmp_path), port=0, rest_api_port=0, max_message_bytes=1024)
    server = BackgroundServer(config).start(wait_until_serving=False)
    try:
        status, answer = _http(server, "/v1/models/default:predict", {"instances": [{"I1": 1}]})
        assert status == 503 and "no version loaded yet" in answer["error"]
        assert _http(server, "/v1/models/default") == (200, {"model_version_status": []})
        status, answer = _http(server, "/v1/models/default:predict", {"instances": ["x" * 2000]})
        assert status == 413 and "Too Large" in answer["error"]
    finally:
        server.stop()


@pytest.fixture
def held_model(monkeypatch):  # type: ignore[no-untyped-def]
    """Model calls wait until the event is set (at the latest when the test ends)."""
    gate = threading.Event()
    predict = Predictor.predict
    monkeypatch.setattr(Predictor, "predict", lambda self, b: gate.wait(60) and predict(self, b))
    yield gate
    gate.set()


def test_overload_answers_429_and_a_slow_answer_504(server, rows, held_model) -> None:  # type: ignore[no-untyped-def]
    """As the gRPC overload test: model calls are held until every request beyond the in-flight
    and queued ones has been refused. A request of 400 rows (> max_batch_size) runs alone."""
    body = {"instances": rows * 2}
    with ThreadPoolExecutor(24) as pool:
        calls = [pool.submit(_http, server, "/v1/models/default:predict", body) for _ in range(24)]
        # Held back: the batches in flight, a full queue, and the one waiting to start a batch
        # if it arrived before the second batch formed (JSON requests arrive one by one).
        held = BatchingConfig().threads + QUEUE
        deadline = time.monotonic() + 60
        while sum(c.done() for c in calls) < len(calls) - held - 1:
            assert time.monotonic() < deadline, "requests were neither queued nor refused"
            time.sleep(0.05)
        time.sleep(0.5)  # nothing else completes while the model is held
        refused = [c for c in calls if c.done()]
        assert len(calls) - held - 1 <= len(refused) <= len(calls) - held
        assert server.server.batcher.queued == QUEUE
        assert all(c.result()[0] == 429 and "queued" in c.result()[1]["error"] for c in refused)
        held_model.set()
        assert all(c.result()[0] == 200 for c in calls if c not in refused)
    held_model.clear()
    server.server.rest.timeout = 0.5
    try:
        status, answer = _http(server, "/v1/models/default:predict", {"instances": rows[:1]})
        assert status == 504 and answer == {"error": "the deadline passed"}
    finally:
        server.server.rest.timeout = 30.0
        held_model.set()
    assert _http(server, "/v1/models/default:predict", {"instances": rows[:1]})[0] == 200


def test_metrics_on_the_rest_port(server, rows) -> None:  # type: ignore[no-untyped-def]
    _http(server, "/v1/models/default:predict", {"instances": rows[:1]})
    _http(server, "/v1/models/default:predict", {"instances": [{}]})
    port = server.server.rest_api_port
    url = f"http://127.0.0.1:{port}/monitoring/prometheus/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    assert 'ue_requests_total{method="rest_predict"}' in text
    assert 'ue_errors_total{code="INVALID_ARGUMENT",method="rest_predict"}' in text
    assert "ue_batch_rows_bucket" in text


def test_versions_and_labels_of_a_model_config_file(exported_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for version in (1, 2):
        shutil.copytree(exported_model.version, tmp_path / "ranker" / str(version))
    config_file = tmp_path / "models.config"
    config_file.write_text(
        f"model_config_list {{ config {{ name: 'ranker' base_path: '{tmp_path / 'ranker'}' "
        "model_platform: 'tensorflow' model_version_policy { latest { num_versions: 2 } } "
        "version_labels { key: 'stable' value: 1 } version_labels { key: 'canary' value: 2 } } }"
    )
    config = ServerConfig(
        ManagerConfig(config_file=config_file, poll_seconds=0.2), port=0, rest_api_port=0
    )
    server = BackgroundServer(config).start()
    try:
        _wait(
            lambda: (
                [
                    s["state"]
                    for s in _http(server, "/v1/models/ranker")[1].get("model_version_status", [])
                ]
                == ["AVAILABLE"] * 2
            )
        )
        states = _http(server, "/v1/models/ranker")[1]["model_version_status"]
        assert [(s["version"], s["state"]) for s in states] == [
            ("2", "AVAILABLE"),
            ("1", "AVAILABLE"),
        ]
        status, answer = _http(server, "/v1/models/ranker/labels/stable")
        assert status == 200 and answer["model_version_status"][0]["version"] == "1"
        status, answer = _http(server, "/v1/models/ranker/labels/canary/metadata")
        assert status == 200 and answer["model_spec"]["version"] == "2"
        row = rows_from_file(exported_model.rows_file, "criteo", _info(exported_model))[:3]
        for path in ("labels/stable", "labels/canary", "versions/1", "versions/2"):
            status, answer = _http(server, f"/v1/models/ranker/{path}:predict", {"instances": row})
            assert status == 200 and len(answer["predictions"]) == 3, (path, answer)
        status, answer = _http(server, "/v1/models/ranker/labels/nope:predict", {"instances": row})
        assert status == 404 and "no version label `nope`" in answer["error"]
    finally:
        server.stop()


def _wait(condition: Any, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _info(exported_model: Any) -> Any:
    from protos import prediction_pb2

    return prediction_pb2.ModelInfo(
        fields=[prediction_pb2.Field(name=f.name, kind=f.kind) for f in exported_model.spec.fields]
    )


def test_paths() -> None:
    assert parse_target("/v1/models/m") == Target("m")
    assert parse_target("/v1/models/m/versions/3/metadata") == Target("m", 3, "", "metadata")
    assert parse_target("/v1/models/m/labels/canary:regress") == Target("m", 0, "canary", "regress")
    for path in ("/v1/models/m/versions/x", "/v1/models/m:explain", "/v1/models/", "/v1/models/m/"):
        assert parse_target(path) is None, path


def test_batching_parameters_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "batching.txt"
    path.write_text(  # as TF Serving's documentation writes it
        "max_batch_size { value: 128 }\nbatch_timeout_micros { value: 500 }\n"
        "max_enqueued_batches { value: 100 }\nnum_batch_threads { value: 3 }\n"
        "allowed_batch_sizes: 32\nallowed_batch_sizes: 128\npad_variable_length_inputs: true\n"
    )
    with caplog.at_level(logging.WARNING):
        changes = read_batching_parameters(path)
    assert changes == {
        "max_batch_size": 128,
        "max_wait_us": 500,
        "max_queued_requests": 100,
        "batch_threads": 3,
    }
    BatchingConfig(**changes)  # every change is a valid BatchingConfig
    ignored = [r.getMessage() for r in caplog.records]
    assert len(ignored) == 2
    assert "`allowed_batch_sizes` is not supported; ignored" in ignored[0]
    assert "`pad_variable_length_inputs` is not supported; ignored" in ignored[1]
    path.write_text("max_batch_size { value: 0 }")
    with pytest.raises(ValueError, match="`max_batch_size` should be >= 1"):
        read_batching_parameters(path)
    path.write_text("max_batch_size: { value: 12 \nbatch_size: 3")
    with pytest.raises(ValueError, match=rf"batching parameters file {path}: 2:1 :"):
        read_batching_parameters(path)


def test_a_cell_over_the_models_limit_answers_400(server, rows) -> None:  # type: ignore[no-untyped-def]
    """A 10 MB categorical string used to be scored; every request format refuses a cell over
    the spec's `max_field_chars` (1000 here), naming row, field and length (not the value)."""
    huge, limit = "x" * 10 * 2**20, 1000
    good = dict(rows[0])
    numeric = [n for n in good if isinstance(good[n], float)]
    categorical = [n for n in good if n not in numeric]

    def bodies(cell: Any) -> list[tuple[str, str, Any]]:
        row = {**good, "C3": cell}
        packed = {
            "categorical": [row[n] for n in categorical],
            "numeric": [row[n] for n in numeric],
        }
        no_c3 = {k: v for k, v in good.items() if k != "C3"}
        return [
            ("row 0: field `C3`", ":predict", {"instances": [row]}),
            (
                "row 1: field `C3`",
                ":predict",
                {"inputs": {k: [good[k], v] for k, v in row.items()}},
            ),
            (
                "input `categorical`: row 0: field `C3`",
                ":predict",
                {"signature_name": "packed", "instances": [packed]},
            ),
            ("row 0: field `C3`", ":regress", {"examples": [no_c3] * 2, "context": {"C3": cell}}),
            ("row 0: field `C3`", ":classify", {"examples": [row]}),
        ]

    for where, verb, body in bodies(huge):
        status, answer = _http(server, f"/v1/models/default{verb}", body)
        assert status == 400, (where, verb, answer)
        assert answer["error"] == (
            f"{where} has {len(huge)} characters; at most {limit} are "
            "allowed (the model's `max_field_chars`)"
        ), answer
    b64 = {"b64": base64.b64encode(("é" * limit).encode()).decode()}  # 2000 bytes, 1000 chars
    for cell in ("é" * limit, b64):
        for where, verb, body in bodies(cell):
            status, answer = _http(server, f"/v1/models/default{verb}", body)
            assert status == 200, (where, verb, answer)
    for where, verb, body in bodies("é" * (limit + 1)):
        status, answer = _http(server, f"/v1/models/default{verb}", body)
        assert status == 400 and f"{limit + 1} characters" in answer["error"], (where, answer)


def test_bad_json_answers_400_in_one_line(server, rows) -> None:  # type: ignore[no-untyped-def]
    """Deep nesting (RecursionError), 10^400 (OverflowError), 5000 digits (Python's int-str
    limit), infinities and wrong types used to answer 500 or nothing useful."""
    good = json.dumps(rows[0])[1:-1]  # the row's `"field": value` pairs

    def row(**change: str) -> bytes:
        values = ", ".join(f'"{k}": {v}' for k, v in change.items())
        return ('{"instances": [{' + good + ", " + values + "}]}").encode()

    big = "1" + "0" * 400
    columns = {k: [v] for k, v in rows[0].items() if k != "I1"}
    cases = {
        b"[" * 100_000 + b"]" * 100_000: "nests arrays or objects deeper than",
        b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}": "deeper than",
        b'{"instances": [{"C1": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001 + b"]}": "deeper",
        row(I1=big): f"row 0: field `I1`: received {big[:57]}...; numbers must be finite",
        row(I1="1" * 5000): "an integer of more than 4300 digits",
        row(I1="Infinity"): "row 0: field `I1`: received inf; numbers must be finite",
        row(I1="-Infinity"): "row 0: field `I1`: received -inf",
        row(I1="1e400"): "row 0: field `I1`: received inf",
        row(I1="1e39"): "row 0: field `I1`: received inf; numbers must be finite float32",
        row(C1="NaN"): "row 0: field `C1`: expected a string, received nan",
        row(C1="true"): "row 0: field `C1`: expected a string, received True",
        row(I1="true"): "row 0: field `I1`: expected a number, received True",
        row(I1='"3"'): "row 0: field `I1`: expected a number, received '3'",
        row(I1="[1]"): "row 0: field `I1`: expected a number, received [1]",
        row(C1='{"x": 1}'): "row 0: field `C1`: expected a string, received {'x': 1}",
        json.dumps({"inputs": {**columns, "I1": [10**400]}}).encode(): "input `I1`: row 0: "
        "received 1000",
        json.dumps({"examples": [{**rows[0], "I1": 10**400}]}).encode(): "example 0: feature "
        "`I1`: received 1000",
        b'{"instances": "x"}': "`instances` should be a non-empty list",
        b"null": "the body should be a JSON object",
        b'{"signature_name": 5, "instances": [{}]}': "unknown `signature_name` 5",
        b"\xff\xfe": "the body is not valid JSON",
    }
    for body, message in cases.items():
        verb = ":regress" if b"examples" in body[:20] else ":predict"
        status, answer = _http(server, f"/v1/models/default{verb}", raw=body)
        assert status == 400, (body[:80], answer)
        assert message in answer["error"], (body[:80], answer)
        assert "\n" not in answer["error"] and len(answer["error"]) < 200, answer


def _raw_http(port: int, data: bytes, linger: bool = False) -> None:
    """Sends `data` on a fresh connection and closes it without reading the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(data)
        if linger:  # close with a reset instead of a FIN
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_aborted_connections_log_one_short_line_each(  # type: ignore[no-untyped-def]
    server, rows, caplog: pytest.LogCaptureFixture
) -> None:
    """2,000 aborted connections used to write 2,003 ERROR records with a traceback each."""
    port = server.server.rest_api_port
    body = json.dumps({"instances": rows[:20]}).encode()
    head = (
        f"POST /v1/models/default:predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
        f"application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    aborted = {
        "half a header": head[:40],
        "half a body": head + body[: len(body) // 2],
        "a whole request": head + body,
        "malformed HTTP": b"GET /v1/models/default HTTP/1.1\r\nBad Header\r\n\r\n",
    }
    each = 25
    with caplog.at_level(logging.DEBUG):
        start = len(caplog.records)
        for data in aborted.values():
            for i in range(each):
                _raw_http(port, data, linger=i % 2 == 1)

        def logged() -> list[logging.LogRecord]:
            return [
                r
                for r in caplog.records[start:]
                if r.levelno >= logging.INFO
                and r.name.startswith(("aiohttp", "serving", "asyncio"))
            ]

        # the half-sent bodies and the malformed requests are each one line
        _wait(lambda: len(logged()) >= 2 * each, seconds=60)
        time.sleep(0.5)  # anything else the server would log about these connections
        assert _http(server, "/v1/models/default:predict", {"instances": rows[:1]})[0] == 200
    records = logged()
    assert len(records) <= len(aborted) * each
    for record in records:
        message = record.getMessage()
        assert record.levelno == logging.INFO and record.exc_info is None, message
        assert "\n" not in message and len(message) < 200, message
    messages = [r.getMessage() for r in records]
    lost = "closed the connection before its request was read: POST /v1/models/default:predict"
    assert sum(lost in m for m in messages) == each, messages
    assert sum("Invalid header token" in m for m in messages) == each, messages


def test_statuses_and_errors_hold_no_path_or_exception_text(  # type: ignore[no-untyped-def]
    exported_model, tmp_path: Path, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`GET /v1/models/NAME` used to show any client the base path and the load exception."""
    base = tmp_path / "export"
    shutil.copytree(exported_model.version, base / "1")
    shutil.copytree(exported_model.version, base / "2")
    (base / "2" / "saved_model.pb").write_bytes(b"not a SavedModel")
    config = ServerConfig(ManagerConfig(base, poll_seconds=0.2), port=0, rest_api_port=0)
    with caplog.at_level(logging.INFO), BackgroundServer(config) as server:
        status, answer = _http(server, "/v1/models/default")
        assert status == 200
        failed, available = answer["model_version_status"]
        assert (failed["version"], failed["state"], failed["status"]) == (
            "2",
            "END",
            {"error_code": "UNKNOWN", "error_message": LOAD_FAILED},
        )
        assert (available["version"], available["state"]) == ("1", "AVAILABLE")
        with grpc.insecure_channel(server.target) as channel:
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = "default"
            statuses = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
                request, timeout=10
            )
            assert statuses.model_version_status[0].status.error_message == LOAD_FAILED
            answers = [json.dumps(answer), str(statuses)]

            def fail(self: Predictor, batch: object) -> None:
                raise OSError(f"{base}/x")  # text that must not reach a client

            monkeypatch.setattr(Predictor, "predict", fail)
            row = server.server.models.current.missing_row()
            status, answer = _http(server, "/v1/models/default:predict", {"instances": [row]})
            assert (status, answer) == (500, {"error": "internal error"})
            grpc_request = predict_pb2.PredictRequest()
            for name, value in row.items():
                grpc_request.inputs[name].CopyFrom(tf.make_tensor_proto([value]))
            with pytest.raises(grpc.RpcError) as e:
                prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                    grpc_request, timeout=10
                )
            assert (e.value.code(), e.value.details()) == (
                grpc.StatusCode.INTERNAL,
                "internal error",
            )
            answers += [json.dumps(answer), e.value.details()]
    for text in answers:
        assert str(tmp_path) not in text and "Error" not in text and "saved_model" not in text
    # the reasons are in the server log, once each
    rejected = [r for r in caplog.records if "version 2 rejected" in r.getMessage()]
    assert len(rejected) == 1 and str(base) in rejected[0].getMessage()
    failures = [r for r in caplog.records if r.exc_info and str(base) in str(r.exc_info[1])]
    assert len(failures) == 2  # the REST and the gRPC predict
