"""A real server on loopback: our client and TF Serving's PredictionServiceStub get the scores of
the SavedModel called in-process; health, reflection, metrics, status codes; stopping finishes
the requests in flight, and an idle server stops at once, health watchers or not."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from protos import prediction_pb2, prediction_pb2_grpc
from serving.batching import BatchingConfig
from serving.client import (
    RankingClient,
    columns_from_file,
    ranking_request,
    row_proto,
    rows_from_file,
)
from serving.model_manager import ManagerConfig
from serving.server import BackgroundServer, ServerConfig
from unified_embedding.contract.schemas import criteo
from unified_embedding.evaluation.evaluate import score_rows
from unified_embedding.rows.reader import read_rows


@pytest.fixture(scope="module")
def expected(exported_model) -> np.ndarray:  # type: ignore[no-untyped-def]
    return score_rows(exported_model.version, read_rows(criteo(), exported_model.rows_file))


@pytest.fixture(scope="module")
def client(running_server):  # type: ignore[no-untyped-def]
    with RankingClient(running_server.target) as client:
        yield client


@pytest.fixture(scope="module")
def rows(client, exported_model) -> list:  # type: ignore[no-untyped-def]
    return rows_from_file(exported_model.rows_file, "criteo", client.model_info())


def test_our_client_gets_the_in_process_scores(client, rows, expected) -> None:  # type: ignore[no-untyped-def]
    got = client.predict(rows)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    one = client.score(rows[:1]).probabilities
    np.testing.assert_allclose(one, expected[:1], rtol=1e-5, atol=1e-6)


def test_tf_serving_stub_gets_the_same_scores(running_server, exported_model, expected) -> None:  # type: ignore[no-untyped-def]
    raw = read_rows(criteo(), exported_model.rows_file).columns
    spec = exported_model.spec
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "serving_default"
    for f in spec.fields:
        values = raw[f.name].astype(str)
        if f.kind == "numeric":
            array = np.array([float(v) if v else math.nan for v in values], np.float32)
        else:
            array = values.astype(object)
        request.inputs[f.name].CopyFrom(tf.make_tensor_proto(array))
    with grpc.insecure_channel(running_server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=10)
        got = tf.make_ndarray(response.outputs["probability"])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        assert response.model_spec.version.value == int(exported_model.version.name)

        packed = predict_pb2.PredictRequest()
        packed.model_spec.name, packed.model_spec.signature_name = "default", "packed"
        categorical = np.stack(
            [request.inputs[f.name].string_val for f in spec.categorical_fields], 1
        )
        numeric = np.stack(
            [tf.make_ndarray(request.inputs[f.name]) for f in spec.numeric_fields], 1
        )
        packed.inputs["categorical"].CopyFrom(tf.make_tensor_proto(categorical.astype(object)))
        packed.inputs["numeric"].CopyFrom(tf.make_tensor_proto(numeric))
        got = tf.make_ndarray(stub.Predict(packed, timeout=10).outputs["probability"])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)

        metadata = stub.GetModelMetadata(
            get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec=request.model_spec, metadata_field=["signature_def"]
            ),
            timeout=10,
        )
        defs = get_model_metadata_pb2.SignatureDefMap()
        metadata.metadata["signature_def"].Unpack(defs)
        assert {"serving_default", "packed", "attention"} <= set(defs.signature_def)
        assert set(defs.signature_def["serving_default"].inputs) == set(spec.field_names)

        request.model_spec.name = "other"
        with pytest.raises(grpc.RpcError) as e:
            stub.Predict(request, timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_model_info_and_explanations(client, rows, exported_model) -> None:  # type: ignore[no-untyped-def]
    info = client.model_info()
    assert info.model_spec.name == "default"
    assert info.model_spec.version == int(exported_model.version.name)
    assert info.spec_fingerprint == exported_model.spec.fingerprint
    assert [(f.name, f.kind) for f in info.fields] == [
        (f.name, f.kind) for f in exported_model.spec.fields
    ]
    response = client.score(rows[:3], explain_top_k=4)
    assert len(response.explanations) == 3
    for explanation in response.explanations:
        pairs = explanation.pairs
        assert len(pairs) == 4 and all(p.source != p.target for p in pairs)
        weights = [p.weight for p in pairs]
        assert weights == sorted(weights, reverse=True) and 0 < weights[0] <= 1


def _status(call, request) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as e:
        call(request, timeout=10)
    return e.value.code(), e.value.details()


def test_status_codes_and_messages(running_server, rows) -> None:  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(running_server.target) as channel:
        score = prediction_pb2_grpc.RankingStub(channel).Score
        good = dict(rows[0])
        cases = {
            "unknown field `C99`": {**good, "C99": "x"},
            "missing field `I1`": {k: v for k, v in good.items() if k != "I1"},
            "field `C3`: expected a string, received 12.5": {**good, "C3": 12.5},
            "field `I2`: expected a number, received 'abc'": {**good, "I2": "abc"},
        }
        for message, row in cases.items():
            code, details = _status(score, prediction_pb2.ScoreRequest(rows=[row_proto(row)]))
            assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details, details
        assert _status(score, prediction_pb2.ScoreRequest())[0] == grpc.StatusCode.INVALID_ARGUMENT
        explain = prediction_pb2.ScoreRequest(rows=[row_proto(good)] * 257, explain_top_k=1)
        code, details = _status(score, explain)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most 256 rows" in details
        oversized = prediction_pb2.ScoreRequest(rows=[row_proto(good)] * 4097)
        code, details = _status(score, oversized)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "4097 rows" in details
        for spec in (prediction_pb2.ModelSpec(name="nope"), prediction_pb2.ModelSpec(version=1)):
            request = prediction_pb2.ScoreRequest(model_spec=spec, rows=[row_proto(good)])
            assert _status(score, request)[0] == grpc.StatusCode.NOT_FOUND
        missing_value = prediction_pb2.Row(features={**row_proto(good).features})
        missing_value.features["C1"].Clear()
        code, details = _status(score, prediction_pb2.ScoreRequest(rows=[missing_value]))
        assert (
            code == grpc.StatusCode.INVALID_ARGUMENT and "field `C1`: received no value" in details
        )
        # a missing value is "" or NaN, and scores
        request = prediction_pb2.ScoreRequest(rows=[row_proto({**good, "C1": "", "I1": math.nan})])
        assert len(score(request, timeout=10).probabilities) == 1


def test_deadline_exceeded(running_server, rows) -> None:  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(running_server.target) as channel:
        score = prediction_pb2_grpc.RankingStub(channel).Score
        request = prediction_pb2.ScoreRequest(rows=[row_proto(rows[0])] * 4096)
        with pytest.raises(grpc.RpcError) as e:
            score(request, timeout=0.001)
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert len(score(request, timeout=30).probabilities) == 4096  # and it still serves


def test_health_reflection_and_metrics(running_server) -> None:  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(running_server.target) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        for service in ("", "unified_embedding.serving.v1.Ranking"):
            status = check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo
        (answer,) = reflect(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        services = {s.name for s in answer.list_services_response.service}
        expected = {
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
            "tensorflow.serving.PredictionService",
            "unified_embedding.serving.v1.Ranking",
        }
        assert expected <= services
    port = running_server.server.metrics_port
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'ue_requests_total{method="Score"}' in text
    assert 'ue_errors_total{code="INVALID_ARGUMENT",method="Score"}' in text
    assert "ue_batch_rows_bucket" in text and "ue_request_latency_seconds_bucket" in text
    assert 'ue_model_version{model="default"}' in text


def test_stop_finishes_the_requests_in_flight(exported_model) -> None:  # type: ignore[no-untyped-def]
    # one model call at a time, 4096 rows each: requests queue up, so many are in flight
    config = ServerConfig(
        ManagerConfig(exported_model.export_base),
        port=0,
        batching=BatchingConfig(batch_threads=1),
        grace_seconds=60,
    )
    server = BackgroundServer(config).start()
    try:
        with RankingClient(server.target) as client:
            columns = columns_from_file(exported_model.rows_file, "criteo", client.model_info())
        request = ranking_request({}, {k: np.resize(v, 4096) for k, v in columns.items()})
        channels = [grpc.insecure_channel(server.target) for _ in range(4)]
        answered = threading.Event()
        calls = []
        for channel in channels:
            for _ in range(4):
                call = prediction_pb2_grpc.RankingStub(channel).Score.future(request, timeout=90)
                call.add_done_callback(lambda _: answered.set())
                calls.append(call)
        assert answered.wait(90)
    finally:
        stopping = threading.Thread(target=server.stop)
        stopping.start()
    in_flight = sum(not call.done() for call in calls)
    codes = [call.code() for call in calls]
    stopping.join(90)
    for channel in channels:
        channel.close()
    assert in_flight > 0  # the stop had requests to finish
    assert codes == [grpc.StatusCode.OK] * len(calls), [call.details() for call in calls]


def test_an_idle_server_watched_by_a_health_checker_stops_at_once(exported_model) -> None:  # type: ignore[no-untyped-def]
    config = ServerConfig(ManagerConfig(exported_model.export_base), port=0, grace_seconds=60)
    server = BackgroundServer(config).start()
    with grpc.insecure_channel(server.target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        started = time.monotonic()
        server.stop()  # the Watch stream never ends by itself: stop must not wait `grace`
        seconds = time.monotonic() - started
        statuses = []
        with pytest.raises(grpc.RpcError):
            for response in watch:
                statuses.append(response.status)
    assert statuses == [health_pb2.HealthCheckResponse.NOT_SERVING]  # told before it ended
    assert seconds < 10, seconds  # generous: 60 s before


def test_sigterm_stops_an_idle_server_at_once(exported_model) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ue.cli",
            "serve",
            "--model-base-path",
            str(exported_model.export_base),
            "--port",
            str(port),
            "--workers",
            "1",
            "--grace-seconds",
            "60",
        ],  # the old spelling of --grace-period-seconds
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stderr is not None
    next(line for line in server.stderr if "serving (spec" in line)  # a version serves
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        next(watch)
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=90)
        seconds = time.monotonic() - started
        watch.cancel()
    assert server.returncode == 0, err[-3000:]
    stopped = [json.loads(line) for line in err.splitlines() if '"stopped"' in line]
    assert len(stopped) == 1 and stopped[0]["refused_while_stopping"] == 0
    assert seconds < 10, seconds  # generous: over 60 s before
