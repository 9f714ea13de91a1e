"""`ue serve --workers 2`: two processes answer on one port, both hot-reload a new version, the
parent's /metrics sums the workers, and SIGTERM stops them all gracefully."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from protos import prediction_pb2, prediction_pb2_grpc
from serving.client import ClientConfig, RankingClient, rows_from_file
from serving.workers import WorkersConfig, run_workers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(target: str, connections: int = 32) -> dict[int, int]:
    """worker -> version it serves, asked over `connections` new TCP connections (each channel
    gets its own subchannel, so the kernel picks a worker per connection)."""
    seen: dict[int, int] = {}
    for _ in range(connections):
        options = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(target, options=options) as channel:
            try:
                info = prediction_pb2_grpc.RankingStub(channel).GetModelInfo(
                    prediction_pb2.ModelInfoRequest(), timeout=5
                )
            except grpc.RpcError as e:  # starting: not listening, or no version yet
                assert e.code() == grpc.StatusCode.UNAVAILABLE, e
                continue
            seen[info.worker] = info.model_spec.version
    return seen


def _wait_for(condition, seconds: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_two_workers_share_a_port_and_both_reload(exported_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = tmp_path / "export"
    shutil.copytree(exported_model.version, base / "100")
    port, metrics_port, rest_port = _free_port(), _free_port(), _free_port()
    batching = tmp_path / "batching.config"  # TF Serving's format, read once by the parent
    batching.write_text("max_batch_size { value: 64 }\nallowed_batch_sizes: 64\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "unified_embedding.cli", "serve", "--model-base-path", str(base),
         "--port", str(port), "--metrics-port", str(metrics_port), "--workers", "2",
         "--poll-seconds", "0.2", "--rest_api_port", str(rest_port),
         "--batching_parameters_file", str(batching)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    target = f"127.0.0.1:{port}"
    try:
        _wait_for(lambda: _answers(target) == {0: 100, 1: 100})
        shutil.copytree(exported_model.version, base / "200")
        _wait_for(lambda: _answers(target) == {0: 200, 1: 200})
        with RankingClient(target, ClientConfig(retries=5)) as client:
            rows = rows_from_file(exported_model.rows_file, "criteo", client.model_info())
            scores = client.predict(rows[:16])
        assert len(scores) == 16 and np.all(np.isfinite(scores))
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        versions = [line for line in text.splitlines() if line.startswith("ue_model_version{")]
        assert len(versions) == 2 and all(line.endswith(" 200.0") for line in versions), versions
        (requests,) = [line for line in text.splitlines()
                       if line.startswith('ue_requests_total{method="GetModelInfo"}')]  # fmt: skip
        assert float(requests.split()[-1]) >= 64  # two rounds of 32, summed over both workers
        # TF Serving's REST API on one port shared by both workers (a connection per request)
        rest = f"http://127.0.0.1:{rest_port}"
        for _ in range(16):
            status = json.loads(
                urllib.request.urlopen(f"{rest}/v1/models/default", timeout=5).read()
            )
            assert status["model_version_status"][0]["version"] == "200"
        text = urllib.request.urlopen(f"{rest}/monitoring/prometheus/metrics", timeout=5).read()
        (requests,) = [line for line in text.decode().splitlines()
                       if line.startswith('ue_requests_total{method="rest_status"}')]  # fmt: skip
        assert float(requests.split()[-1]) == 16  # summed over both workers
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=90)
    assert server.returncode == 0, err[-3000:]
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    stopped = [entry["worker"] for entry in logs if entry["message"] == "stopped"]
    assert sorted(stopped) == [0, 1]
    assert logs[-1]["message"] == "workers stopped" and logs[-1]["exit_codes"] == [0, 0]
    ignored = [e for e in logs if "`allowed_batch_sizes` is not supported" in e["message"]]
    assert len(ignored) == 1


def test_sigterm_while_the_workers_start_stops_them_all(exported_model) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "unified_embedding.cli", "serve", "--model-base-path",
         str(exported_model.export_base), "--port", str(_free_port()), "--workers", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    started = next(line for line in server.stderr if '"workers started"' in line)  # type: ignore[union-attr]
    server.send_signal(signal.SIGTERM)  # the workers are most likely still starting
    _, err = server.communicate(timeout=90)
    assert server.returncode == 0, err[-3000:]
    assert json.loads(started)["workers"] and '"exit_codes": [0, 0]' in err


def test_workers_are_forked_before_grpc_exists() -> None:
    assert "grpc" in sys.modules  # this test process has imported it
    with pytest.raises(RuntimeError, match="must be forked before any gRPC"):
        run_workers(WorkersConfig(2, port=0), lambda index, port: 0)
    with pytest.raises(ValueError, match="`workers=0`"):
        WorkersConfig(0)
