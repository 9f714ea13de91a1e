"""Batching without gRPC (a fake model), then overload, graceful shutdown and TLS on a server."""

import asyncio
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest

from protos import prediction_pb2, prediction_pb2_grpc
from serving.batching import Batcher, BatchingConfig, QueueFull
from serving.client import ClientConfig, RankingClient, row_proto, rows_from_file
from serving.model_manager import ManagerConfig
from serving.predictor import PackedBatch, Predictor
from serving.server import BackgroundServer, ServerConfig, TlsConfig


class FakeModel:
    """Scores a row as its numeric value; records the rows of every call."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds, self.calls = seconds, []

    def predict(self, batch: PackedBatch) -> np.ndarray:
        self.calls.append(len(batch))
        time.sleep(self.seconds)
        return batch.numeric[:, 0].copy()


def _batch(*values: float) -> PackedBatch:
    return PackedBatch(
        np.full((len(values), 1), "x", object), np.array(values, np.float32)[:, None]
    )


def test_concurrent_requests_merge_into_few_calls_and_get_their_own_rows() -> None:
    model = FakeModel(seconds=0.01)

    async def run() -> list:
        batcher = Batcher(BatchingConfig(max_batch_size=8, max_wait_us=2000), ThreadPoolExecutor(1))
        batcher.start()
        requests = [_batch(i, i + 0.5) for i in range(10)]  # 20 rows
        results = await asyncio.gather(*(batcher.predict(model, r) for r in requests))  # type: ignore[arg-type]
        await batcher.stop()
        return results

    results = asyncio.run(run())
    for i, scores in enumerate(results):
        np.testing.assert_array_equal(scores, [i, i + 0.5])
    assert sum(model.calls) == 20 and max(model.calls) <= 8 and len(model.calls) <= 4


def test_model_call_threads_default_to_each_workers_share_of_the_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("serving.config.usable_cpus", lambda: (0, 1, 2, 3))
    default = BatchingConfig()
    assert default.batch_threads is None and default.threads == 4  # one server: every CPU
    assert [default.for_workers(w).batch_threads for w in (1, 2, 3, 4, 8)] == [4, 2, 1, 1, 1]
    given = BatchingConfig(batch_threads=3)  # a flag or TF Serving's num_batch_threads wins
    assert given.for_workers(4) == given and given.threads == 3
    with pytest.raises(ValueError, match="batch_threads"):
        BatchingConfig(batch_threads=0)


def test_a_full_queue_refuses_at_once() -> None:
    model = FakeModel(seconds=0.05)

    async def run() -> list:
        config = BatchingConfig(max_batch_size=1, max_queued_requests=3, max_wait_us=0)
        batcher = Batcher(config, ThreadPoolExecutor(1))
        batcher.start()
        outcome = await asyncio.gather(
            *(batcher.predict(model, _batch(i)) for i in range(12)),  # type: ignore[arg-type]
            return_exceptions=True,
        )
        await batcher.stop()
        return outcome

    outcome = asyncio.run(run())
    refused = [o for o in outcome if isinstance(o, QueueFull)]
    assert refused and all(isinstance(o, np.ndarray | QueueFull) for o in outcome)
    assert len(model.calls) == len(outcome) - len(refused) <= 4  # in flight + the queue


@pytest.fixture(scope="module")
def rows(exported_model, running_server) -> list:  # type: ignore[no-untyped-def]
    with RankingClient(running_server.target) as client:
        return rows_from_file(exported_model.rows_file, "criteo", client.model_info())


def _server(exported_model, **config) -> BackgroundServer:  # type: ignore[no-untyped-def]
    models = ManagerConfig(exported_model.export_base, poll_seconds=0.2)
    return BackgroundServer(ServerConfig(models, port=0, **config)).start()


def test_overload_answers_resource_exhausted_with_a_bounded_queue(  # type: ignore[no-untyped-def]
    exported_model, rows, monkeypatch
) -> None:
    """Model calls are held until every request beyond the in-flight and queued ones has been
    refused, so the outcome does not depend on how fast this machine is."""
    batching = BatchingConfig(max_batch_size=256, max_queued_requests=4)
    server = _server(exported_model, batching=batching)
    gate = threading.Event()
    predict = Predictor.predict
    monkeypatch.setattr(Predictor, "predict", lambda self, b: gate.wait(60) and predict(self, b))
    try:
        request = prediction_pb2.ScoreRequest(rows=[row_proto(r) for r in rows] * 5)  # 1000 rows
        with grpc.insecure_channel(server.target) as channel:
            score = prediction_pb2_grpc.RankingStub(channel).Score
            calls = [score.future(request, timeout=120) for _ in range(48)]
            # Held back: the batches in flight, the one waiting to start a batch, a full queue.
            held = batching.threads + 1 + batching.max_queued_requests
            deadline = time.monotonic() + 60
            while sum(c.done() for c in calls) < len(calls) - held:
                assert time.monotonic() < deadline, "requests were neither queued nor refused"
                time.sleep(0.05)
            time.sleep(0.5)  # nothing else completes while the model is held
            held = sum(not c.done() for c in calls)
            assert server.server is not None and server.server.batcher.queued == 4
            gate.set()
            codes = []
            for call in calls:
                try:
                    assert len(call.result().probabilities) == 1000
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as e:
                    codes.append(e.code())
                    assert "queued" in e.details()
            assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == len(calls) - held
            assert codes.count(grpc.StatusCode.OK) == held
            assert server.server.batcher.queued == 0
            assert len(score(request, timeout=60).probabilities) == 1000  # serves again
    finally:
        gate.set()
        server.stop()


def test_graceful_shutdown_finishes_in_flight_requests(exported_model, rows) -> None:  # type: ignore[no-untyped-def]
    server = _server(exported_model, batching=BatchingConfig(max_batch_size=4096))
    request = prediction_pb2.ScoreRequest(rows=[row_proto(r) for r in rows] * 5)  # 1000 rows
    with grpc.insecure_channel(server.target) as channel:
        score = prediction_pb2_grpc.RankingStub(channel).Score
        calls = [score.future(request, timeout=120) for _ in range(6)]
        received = server.server.metrics.requests.labels("Score")  # type: ignore[union-attr]
        deadline = time.monotonic() + 60
        while received._value.get() < len(calls):  # all in flight: one runs, the others queue
            assert time.monotonic() < deadline
            time.sleep(0.01)
        stopping = threading.Thread(target=server.stop, kwargs={"grace": 60})
        stopping.start()
        assert all(len(c.result().probabilities) == 1000 for c in calls)
        stopping.join(60)
        assert not stopping.is_alive()
        with pytest.raises(grpc.RpcError) as e:
            score(request, timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tls(exported_model, rows, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server = _server(exported_model, tls=TlsConfig(cert, key))
    try:
        config = ClientConfig(root_certificate=cert.read_bytes())
        with RankingClient(server.target, config) as client:
            assert len(client.score(rows[:2]).probabilities) == 2
        plain = RankingClient(server.target, ClientConfig(retries=0, timeout_seconds=2))
        with plain, pytest.raises(grpc.RpcError):
            plain.score(rows[:2])
    finally:
        server.stop()
