"""Several models from a config file, versions side by side, labels, GetModelStatus, and a config
rewritten while requests keep flowing.

Exports (the session's criteo model `s`, and `s'`: the same with every weight x 1.1, so the two
score differently without training another model):

    base       versions        config                                   labels
    ranker/    1 (s), 2 (s'),  latest 2 (3 fails: 1 and 2 serve)       stable: 1, canary: 2
               3 (corrupt)     rewritten: latest 1 (1 unloads)          stable: 1, canary: 2
    other/     5 (s)           latest 1 (default)
    third/     8 (s')          added by a rewrite that removes `other`, then moved to ranker/
"""

import logging
import shutil
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.client import ClientConfig, RankingClient, rows_from_file
from serving.model_manager import ManagerConfig
from serving.model_versions import VersionStatus
from serving.server import BackgroundServer, ServerConfig
from serving.tf_serving import LOAD_FAILED
from unified_embedding.contract.schemas import criteo
from unified_embedding.evaluation.evaluate import raw_batches, score_rows
from unified_embedding.exported.writer import export
from unified_embedding.rows.reader import read_rows

State = get_model_status_pb2.ModelVersionStatus.State
ROWS = 12


class Exports:
    def __init__(self, exported_model, tmp: Path) -> None:  # type: ignore[no-untyped-def]
        model = exported_model.model
        weights = model.get_weights()
        try:
            model.set_weights([w * 1.1 for w in weights])
            scaled = export(model, exported_model.spec, tmp / "scaled")
        finally:
            model.set_weights(weights)  # the session's model is shared
        self.seeded = [exported_model.version, scaled]
        self.rows = read_rows(criteo(), exported_model.rows_file).take(np.arange(ROWS))
        self.rows_file = exported_model.rows_file
        self.inputs = next(raw_batches(criteo(), self.rows, ROWS))
        self.expected = [score_rows(v, self.rows) for v in self.seeded]
        self.root = tmp / "models"
        for base, version, seed in (
            ("ranker", 1, 0),
            ("ranker", 2, 1),
            ("other", 5, 0),
            ("third", 8, 1),
        ):
            shutil.copytree(self.seeded[seed], self.root / base / str(version))
        corrupt = self.root / "ranker" / "3"
        shutil.copytree(self.seeded[0], corrupt)
        (corrupt / "saved_model.pb").write_bytes(b"not a SavedModel")

    def config(self, *models: str, ranker_versions: int = 2, third_base: str = "third") -> str:
        blocks = {
            "ranker": f"model_version_policy {{ latest {{ num_versions: {ranker_versions} }} }} "
            "version_labels { key: 'stable' value: 1 } version_labels { key: 'canary' value: 2 }",
            "other": "",
            "third": "",
        }
        bases = {m: m for m in models} | {"third": third_base}
        configs = " ".join(
            f"config {{ name: '{m}' base_path: '{self.root / bases[m]}' {blocks[m]} }}"
            for m in models
        )
        return f"model_config_list {{ {configs} }}"


@pytest.fixture(scope="module")
def exports(exported_model, tmp_path_factory: pytest.TempPathFactory) -> Exports:  # type: ignore[no-untyped-def]
    return Exports(exported_model, tmp_path_factory.mktemp("multi"))


@pytest.fixture(scope="module")
def server(exports: Exports, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("config") / "models.config"
    path.write_text(exports.config("ranker", "other"))
    models = ManagerConfig(config_file=path, poll_seconds=0.1, config_poll_seconds=0.1)
    with BackgroundServer(ServerConfig(models, port=0, grace_seconds=2)) as running:
        running.config_path = path
        yield running


def _predict(stub, exports: Exports, name: str, version: int = 0, label: str = ""):  # type: ignore[no-untyped-def]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version:
        request.model_spec.version.value = version
    if label:
        request.model_spec.version_label = label
    for name, values in exports.inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    response = stub.Predict(request, timeout=10)
    return response.model_spec.version.value, tf.make_ndarray(response.outputs["probability"])


def test_two_models_and_two_versions_side_by_side_with_labels(server, exports: Exports) -> None:  # type: ignore[no-untyped-def]
    seed0, seed1 = exports.expected
    assert np.abs(seed0 - seed1).max() > 1e-3, "the two exports should score differently"
    with grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        cases = [
            ("ranker", 0, "", 2, seed1),
            ("ranker", 1, "", 1, seed0),
            ("ranker", 2, "", 2, seed1),
            ("ranker", 0, "stable", 1, seed0),
            ("ranker", 0, "canary", 2, seed1),
            ("other", 0, "", 5, seed0),
        ]
        for name, version, label, served, expected in cases:
            got_version, scores = _predict(stub, exports, name, version, label)
            assert got_version == served, (name, version, label)
            np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
        for name, version, label, message in [
            ("ranker", 0, "nightly", "no version label `nightly`"),
            ("ranker", 3, "", "version 3 is not loaded; loaded versions: [1, 2]"),
            ("other", 0, "stable", "no version label `stable`"),
            ("nobody", 0, "", "unknown model `nobody`"),
            ("", 0, "", "the request names no model; this server serves ['other', 'ranker']"),
        ]:
            with pytest.raises(grpc.RpcError) as e:
                _predict(stub, exports, name, version, label)
            assert e.value.code() == grpc.StatusCode.NOT_FOUND, (name, version, label)
            assert message in e.value.details()
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    with RankingClient(server.target, ClientConfig(model_name="ranker")) as client:
        assert client.model_info().model_spec.version == 2
        rows = rows_from_file(exports.rows_file, "criteo", client.model_info())[:ROWS]
        np.testing.assert_allclose(client.predict(rows), seed1, rtol=1e-5)
    metrics = server.server.metrics.registry
    for model, version in (("ranker", 2), ("other", 5)):
        assert metrics.get_sample_value("ue_model_version", {"model": model}) == version


def test_get_model_status(server, exports: Exports) -> None:  # type: ignore[no-untyped-def]
    (failed, *available) = server.server.models.status("ranker")
    assert (failed.version, failed.state) == (3, "END")
    assert failed.error_message  # why it failed, as its log line says
    assert available == [VersionStatus(2, "AVAILABLE"), VersionStatus(1, "AVAILABLE")]
    with grpc.insecure_channel(server.target) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "ranker"
        response = stub.GetModelStatus(request, timeout=10)
        assert [
            (s.version, s.state, s.status.error_code) for s in response.model_version_status
        ] == [
            (3, State.END, 2),  # UNKNOWN
            (2, State.AVAILABLE, 0),
            (1, State.AVAILABLE, 0),
        ]
        # clients learn that it failed; why (paths, exception text) is only in the server log
        assert response.model_version_status[0].status.error_message == LOAD_FAILED
        assert str(exports.root) not in str(response)
        request.model_spec.version_label = "stable"
        (only,) = stub.GetModelStatus(request, timeout=10).model_version_status
        assert (only.version, only.state) == (1, State.AVAILABLE)
        for name, version, code in (
            ("ranker", 4, grpc.StatusCode.NOT_FOUND),
            ("nobody", 0, grpc.StatusCode.NOT_FOUND),
        ):
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = name
            if version:
                request.model_spec.version.value = version
            with pytest.raises(grpc.RpcError) as e:
                stub.GetModelStatus(request, timeout=10)
            assert e.value.code() == code
        with pytest.raises(grpc.RpcError) as e:
            stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_config_rewrite_adds_and_removes_models_under_load(
    server, exports: Exports, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    errors: list[Exception] = []
    sent = [0]
    stop = threading.Event()

    def load() -> None:
        with RankingClient(
            server.target, ClientConfig(model_name="ranker", retries=0, timeout_seconds=10)
        ) as client:
            rows = rows_from_file(exports.rows_file, "criteo", client.model_info())[:3]
            while not stop.is_set():
                try:
                    client.predict(rows)
                except Exception as e:
                    errors.append(e)
                sent[0] += 1

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        models = server.server.models
        with caplog.at_level(logging.ERROR, logger="serving.model_manager"):
            server.config_path.write_text("model_config_list { config { name: 'broken' ")
            deadline = time.monotonic() + 30
            while "keeping the current model config" not in caplog.text:
                assert time.monotonic() < deadline, "the malformed file was not logged"
                time.sleep(0.05)
        assert str(server.config_path) in caplog.text
        assert models.names == ["other", "ranker"]  # the old config keeps serving
        server.config_path.write_text(exports.config("ranker", "third", ranker_versions=1))
        deadline = time.monotonic() + 60
        while (
            models.names != ["ranker", "third"]
            or not models.ready()
            or models.status("ranker", 1)[0].state != "END"
        ):
            assert time.monotonic() < deadline, models.names
            time.sleep(0.05)
        with grpc.insecure_channel(server.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            version, scores = _predict(stub, exports, "third")
            assert version == 8
            np.testing.assert_allclose(scores, exports.expected[1], rtol=1e-5, atol=1e-6)
            for name, label, message in (
                ("other", "", "unknown model `other`"),
                ("ranker", "stable", "version 1 (label `stable`) is not loaded"),
            ):
                with pytest.raises(grpc.RpcError) as e:
                    _predict(stub, exports, name, label=label)
                assert e.value.code() == grpc.StatusCode.NOT_FOUND
                assert message in e.value.details()
            assert _predict(stub, exports, "ranker", label="canary")[0] == 2
            # a new base path: the old one serves until the new one has a version
            server.config_path.write_text(
                exports.config("ranker", "third", ranker_versions=1, third_base="ranker")
            )
            deadline = time.monotonic() + 60
            answered = [_predict(stub, exports, "third")[0]]
            while answered[-1] != 2:
                assert time.monotonic() < deadline, answered[-5:]
                answered.append(_predict(stub, exports, "third")[0])
            assert set(answered) == {8, 2}, "the move was not seen (or a version was skipped)"
        seen = sent[0]
        while sent[0] < seen + 10:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors[:3]
    assert sent[0] > 10
    metrics = server.server.metrics.registry
    assert metrics.get_sample_value("ue_model_version", {"model": "third"}) == 2
    assert metrics.get_sample_value("ue_model_version", {"model": "other"}) is None
