"""Hot reload under load: a new version is picked up without one failed request; a corrupt or
inconsistent version is rejected while the old one keeps serving; pinning; warm-up replay."""

import gc
import json
import shutil
import threading
import time
import weakref
from pathlib import Path

import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from serving.client import ClientConfig, RankingClient, rows_from_file
from serving.model_manager import ManagerConfig, list_versions, load_and_warm_up
from serving.predictor import PredictorConfig
from serving.server import BackgroundServer, ServerConfig
from serving.tensors import WARMUP_FILE
from unified_embedding.exported.writer import export


def _config(base: Path, **models) -> ServerConfig:  # type: ignore[no-untyped-def]
    return ServerConfig(ManagerConfig(base, poll_seconds=0.1, **models), port=0, grace_seconds=2)


def _wait_for(condition, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class Load:
    """Scores rows in a loop on a thread; records every error and the versions that answered."""

    def __init__(self, target: str, rows: list) -> None:
        self.client = RankingClient(target, ClientConfig(timeout_seconds=10, retries=0))
        self.rows, self.errors, self.versions, self.count = rows, [], [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = self.client.score(self.rows[self.count % 50 : self.count % 50 + 3])
                self.versions.append(response.model_spec.version)
            except Exception as e:
                self.errors.append(e)
            self.count += 1

    def __enter__(self) -> "Load":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.client.close()


def test_new_version_under_load_then_corrupt_and_inconsistent_versions(
    exported_model, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    base = tmp_path / "export"
    shutil.copytree(exported_model.version, base / "100")
    with BackgroundServer(_config(base)) as server:
        rows = rows_from_file(
            exported_model.rows_file, "criteo", RankingClient(server.target).model_info()
        )
        with Load(server.target, rows) as load:
            _wait_for(lambda: load.count > 20)
            first = weakref.ref(server.server.models.current)
            new = export(exported_model.model, exported_model.spec, base)
            _wait_for(lambda: load.versions and load.versions[-1] == int(new.name))
            seen = load.count
            _wait_for(lambda: load.count > seen + 20)
            gc.collect()
            assert first() is None, "the replaced version is still referenced (not unloaded)"

            # Both are prepared in hidden staging folders and renamed in, as `export` does: a
            # copy of the good version being corrupted in place could be loaded mid-way.
            corrupt = base / str(int(new.name) + 1)
            staging = base / f".{corrupt.name}.partial"
            shutil.copytree(new, staging)
            (staging / "saved_model.pb").write_bytes(b"not a SavedModel")
            staging.rename(corrupt)
            inconsistent = base / str(int(new.name) + 2)
            staging = base / f".{inconsistent.name}.partial"
            shutil.copytree(new, staging)
            spec = json.loads((staging / "assets" / "spec.json").read_text())
            spec["fields"] = spec["fields"][1:]  # spec.json disagrees with the signatures
            spec.pop("fingerprint")
            (staging / "assets" / "spec.json").write_text(json.dumps(spec))
            staging.rename(inconsistent)
            manager = server.server.models
            _wait_for(
                lambda: (
                    {int(corrupt.name), int(inconsistent.name)}
                    <= manager.versions("default").rejected
                )
            )
            seen = load.count
            _wait_for(lambda: load.count > seen + 20)
        assert not load.errors, load.errors[:3]
        assert load.versions[0] == 100 and load.versions[-1] == int(new.name)
        assert set(load.versions) == {100, int(new.name)}
        assert manager.current.version == int(new.name)


def test_pinned_version_and_missing_base_path(exported_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = tmp_path / "export"
    for version in ("5", "7"):
        shutil.copytree(exported_model.version, base / version)
    with BackgroundServer(_config(base, version=5)) as server:
        assert RankingClient(server.target).model_info().model_spec.version == 5
        assert list_versions(base) == [5, 7]
    server = BackgroundServer(_config(tmp_path / "nothing-yet")).start(wait_until_serving=False)
    try:
        import grpc

        with pytest.raises(grpc.RpcError) as e:
            RankingClient(server.target, ClientConfig(retries=1, backoff_seconds=0.01)).model_info()
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop()


def test_warmup_requests_are_replayed(exported_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    version = tmp_path / "9"
    shutil.copytree(exported_model.version, version)
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "default", "serving_default"
    for f in exported_model.spec.fields:
        value = [float("nan")] if f.kind == "numeric" else [b"x"]
        request.inputs[f.name].CopyFrom(tf.make_tensor_proto(value))
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )
    (version / WARMUP_FILE).parent.mkdir(exist_ok=True)  # exports may carry their own
    with tf.io.TFRecordWriter(str(version / WARMUP_FILE)) as writer:
        for _ in range(2):
            writer.write(log.SerializeToString())
    _, replayed = load_and_warm_up(version, PredictorConfig())
    assert replayed == 2
    del log.predict_log.request.inputs["C1"]  # a broken warm-up request rejects the version
    with tf.io.TFRecordWriter(str(version / WARMUP_FILE)) as writer:
        writer.write(log.SerializeToString())
    with pytest.raises(ValueError, match="missing field `C1`"):
        load_and_warm_up(version, PredictorConfig())


def test_a_version_folder_as_base_path_serves_that_version(exported_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = tmp_path / "export"
    for version in ("5", "7"):
        shutil.copytree(exported_model.version, base / version)
    assert list_versions(base / "5") == [5]
    with BackgroundServer(_config(base / "5")) as server:
        client = RankingClient(server.target)
        assert client.model_info().model_spec.version == 5  # not the newer 7
        rows = rows_from_file(exported_model.rows_file, "criteo", client.model_info())
        explained = client.score(rows[:2], explain_top_k=3)
        assert [len(e.pairs) for e in explained.explanations] == [3, 3]
        client.close()


def test_hot_swaps_between_a_full_and_a_narrow_int8_table_without_a_failed_request(
    exported_model, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from unified_embedding.exported.table_format import served_model
    from unified_embedding.models.autoint import AutoInt

    trained = exported_model.model
    width = trained.embedding.table_width
    nested = AutoInt(  # the fixture's model, read as if trained at half its width too
        trained.embedding,
        trained.interaction,
        trained.head,
        trained.dnn,
        nested_widths=(width // 2, width),
    )
    narrow, narrow_spec = served_model(nested, exported_model.spec, width // 2, "int8")
    base = tmp_path / "export"
    shutil.copytree(exported_model.version, base / "100")
    with BackgroundServer(_config(base)) as server:
        rows = rows_from_file(
            exported_model.rows_file, "criteo", RankingClient(server.target).model_info()
        )
        with Load(server.target, rows) as load:
            _wait_for(lambda: load.count > 20)
            served = []
            for model, spec in [(narrow, narrow_spec), (trained, exported_model.spec)] * 2:
                version = int(export(model, spec, base).name)
                _wait_for(lambda v=version: bool(load.versions) and load.versions[-1] == v)
                seen = load.count
                _wait_for(lambda s=seen: load.count > s + 10)
                served.append(version)
        assert not load.errors, load.errors[:3]
        assert set(load.versions) == {100, *served}
        info = server.server.models.current
        assert info.version == served[-1]
