"""`ue serve --workers 2`: two processes answer on one port, both hot-reload a new version, the
parent's /metrics sums the workers, and SIGTERM stops them all gracefully, the requests in flight
answered. A worker that dies is replaced (by the spare, or a new process) while the port keeps
answering; a crash loop stops the parent with one line."""

import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from protos import prediction_pb2, prediction_pb2_grpc
from serving.client import (
    ClientConfig,
    RankingClient,
    columns_from_file,
    ranking_request,
    row_proto,
    rows_from_file,
)
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
        [
            sys.executable,
            "-m",
            "ue.cli",
            "serve",
            "--model-base-path",
            str(base),
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--workers",
            "2",
            "--poll-seconds",
            "0.2",
            "--rest_api_port",
            str(rest_port),
            "--batching_parameters_file",
            str(batching),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
        (requests,) = [
            line
            for line in text.splitlines()
            if line.startswith('ue_requests_total{method="GetModelInfo"}')
        ]
        assert float(requests.split()[-1]) >= 64  # two rounds of 32, summed over both workers
        # TF Serving's REST API on one port shared by both workers (a connection per request)
        rest = f"http://127.0.0.1:{rest_port}"
        for _ in range(16):
            status = json.loads(
                urllib.request.urlopen(f"{rest}/v1/models/default", timeout=5).read()
            )
            assert status["model_version_status"][0]["version"] == "200"
        text = urllib.request.urlopen(f"{rest}/monitoring/prometheus/metrics", timeout=5).read()
        (requests,) = [
            line
            for line in text.decode().splitlines()
            if line.startswith('ue_requests_total{method="rest_status"}')
        ]
        assert float(requests.split()[-1]) == 16  # summed over both workers
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=90)
    assert server.returncode == 0, err[-3000:]
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    stopped = [entry["worker"] for entry in logs if entry["message"] == "stopped"]
    assert sorted(stopped) == [-1, 0, 1]  # -1: the spare, loaded but never listening
    assert logs[-1]["message"] == "workers stopped" and logs[-1]["exit_codes"] == [0, 0]
    assert logs[-1]["spare_exit_codes"] == [0] and logs[-1]["restarts"] == 0
    ignored = [e for e in logs if "`allowed_batch_sizes` is not supported" in e["message"]]
    assert len(ignored) == 1


def test_sigterm_while_the_workers_start_stops_them_all(exported_model) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ue.cli",
            "serve",
            "--model-base-path",
            str(exported_model.export_base),
            "--port",
            str(_free_port()),
            "--workers",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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


# The supervisor alone, over stand-in workers that import neither gRPC nor TensorFlow (fast):
# a worker writes `<index>-<pid>` (holding its CPUs) into OUT once it serves, a spare only once
# it is called on.
_STAND_IN = """
import asyncio, json, os, signal, sys, threading
from pathlib import Path
from serving.cpu_affinity import unpin_thread
from serving.logs import configure_logging
from serving.workers import WorkersConfig, run_workers

mode, out, spares, metrics_port = sys.argv[1], Path(sys.argv[2]), *map(int, sys.argv[3:])

def serve(turn, port):
    if mode == "crash":
        return 3
    def freed(cpus):  # a model-call thread, started once the worker serves
        unpin_thread()
        cpus.append(sorted(os.sched_getaffinity(0)))
    async def main():
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        called = asyncio.ensure_future(turn.wait())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({called, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if called.done():
            cpus = [sorted(os.sched_getaffinity(0))]
            thread = threading.Thread(target=freed, args=(cpus,))
            thread.start()
            thread.join()
            (out / f"{called.result()}-{os.getpid()}").write_text(json.dumps(cpus))
        await stopped
    asyncio.run(main())
    return 0

configure_logging()
config = WorkersConfig(2, port=0, metrics_port=metrics_port, stop_seconds=10, spares=spares,
                       restart_backoff_seconds=0.05, max_crashes=3, pin_workers=mode == "pin")
sys.exit(run_workers(config, serve))
"""


def _stand_ins(mode: str, out: Path, spares: int, metrics_port: int = 0) -> subprocess.Popen[str]:
    env = {**os.environ}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-c", _STAND_IN, mode, str(out), str(spares), str(metrics_port)]
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)


def _serving(out: Path) -> dict[int, set[int]]:
    """worker index -> the pids that served it."""
    seen: dict[int, set[int]] = {}
    for path in out.iterdir():
        index, pid = path.name.split("-")
        seen.setdefault(int(index), set()).add(int(pid))
    return seen


def _stopped(process: subprocess.Popen[str]) -> list[dict]:  # type: ignore[type-arg]
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_a_killed_worker_is_forked_again_and_counted(tmp_path: Path) -> None:
    parent = _stand_ins("serve", tmp_path, spares=0)
    try:
        _wait_for(lambda: set(_serving(tmp_path)) == {0, 1}, 30)
        (killed,) = _serving(tmp_path)[0]
        os.kill(killed, signal.SIGKILL)
        _wait_for(lambda: len(_serving(tmp_path)[0]) == 2, 30)  # a new process serves as 0
        assert parent.poll() is None and len(_serving(tmp_path)[1]) == 1
    finally:
        logs = _stopped(parent)
    assert parent.returncode == 0, logs
    (exited,) = [e for e in logs if "exited unasked" in e["message"]]
    assert exited["message"] == f"worker 0 (pid {killed}) exited unasked (killed by SIGKILL)"
    assert exited["spare_took_over"] is False
    assert logs[-1]["exit_codes"] == [0, 0] and logs[-1]["restarts"] == 1


def test_a_spare_takes_the_place_of_a_killed_worker(tmp_path: Path) -> None:
    metrics_port = _free_port()
    parent = _stand_ins("serve", tmp_path, spares=1, metrics_port=metrics_port)
    try:
        _wait_for(lambda: set(_serving(tmp_path)) == {0, 1}, 30)
        (killed,) = _serving(tmp_path)[1]
        os.kill(killed, signal.SIGKILL)
        _wait_for(lambda: len(_serving(tmp_path)[1]) == 2, 30)  # the spare serves as 1
        # the parent's restart counter, summed with the workers' metrics (multiprocess mode)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        _wait_for(
            lambda: (
                "ue_worker_restarts_total 1.0"
                in urllib.request.urlopen(url, timeout=5).read().decode()
            ),
            30,
        )
    finally:
        logs = _stopped(parent)
    assert parent.returncode == 0, logs
    (exited,) = [e for e in logs if "exited unasked" in e["message"]]
    assert exited["worker"] == 1 and exited["spare_took_over"] is True
    spare = next(e for e in logs if e["message"] == "worker started" and e["from_spare"])
    assert spare["worker"] == 1 and _serving(tmp_path)[1] == {killed, spare["pid"]}
    new_spare = [e for e in logs if e["message"] == "worker started" and e["worker"] is None]
    assert len(new_spare) == 1  # forked after the backoff to be the next spare
    assert logs[-1]["exit_codes"] == [0, 0] and logs[-1]["spare_exit_codes"] == [0]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity here")
def test_pinned_workers_and_the_spare_that_replaces_one_answer_on_their_own_cpu(
    tmp_path: Path,
) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    parent = _stand_ins("pin", tmp_path, spares=1)
    try:
        _wait_for(lambda: set(_serving(tmp_path)) == {0, 1}, 30)
        (killed,) = _serving(tmp_path)[1]
        os.kill(killed, signal.SIGKILL)
        _wait_for(lambda: len(_serving(tmp_path)[1]) == 2, 30)  # the spare serves as 1
    finally:
        logs = _stopped(parent)
    assert parent.returncode == 0, logs
    started = next(e for e in logs if e["message"] == "workers started")
    assert started["pinned_to"] == cpus
    for path in tmp_path.iterdir():
        index = int(path.name.split("-")[0])
        # the request path (main thread) on its CPU; a model-call thread free on them all
        assert json.loads(path.read_text()) == [[cpus[index % len(cpus)]], cpus], path.name


def test_a_crash_loop_stops_the_parent_with_one_line(tmp_path: Path) -> None:
    parent = _stand_ins("crash", tmp_path, spares=0)
    _, err = parent.communicate(timeout=60)
    assert parent.returncode == 1, err
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    (error,) = [e for e in logs if e["level"] == "ERROR"]
    assert error["message"].startswith("3 worker crashes within 60 s (`max_crashes=3`): stopping")
    assert "exit code 3" in error["message"]
    forks = [e for e in logs if e["message"] == "worker started"]
    assert 1 <= len(forks) <= 2  # 2 crashes at start, then replacements after a backoff: no spin


class _Serve:
    """`ue serve --workers 2 ARGS` over `base`; its JSON log lines collected as they come."""

    def __init__(self, base: Path, *args: str, workers: int = 2) -> None:
        self.port = _free_port()
        self.target = f"127.0.0.1:{self.port}"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ue.cli",
                "serve",
                "--model-base-path",
                str(base),
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                *args,
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.logs: list[dict] = []  # type: ignore[type-arg]
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if line.startswith("{"):
                self.logs.append(json.loads(line))

    def pid(self, worker: int) -> int:
        """The process serving as `worker` now."""
        for entry in reversed(self.logs):
            if entry["message"] == "worker started" and entry["worker"] == worker:
                return int(entry["pid"])
            if entry["message"] == "workers started":
                return int(entry["workers"][worker])
        raise AssertionError(f"no pid for worker {worker} in {self.logs}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(90)
        self._reader.join(10)
        return code


class _Load:
    """`clients` threads, each with its own connection, sending `request` back to back."""

    def __init__(self, target: str, request: prediction_pb2.ScoreRequest, clients: int) -> None:
        self.calls: list[tuple[float, float, str]] = []  # (sent, answered, status code)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(target, request)) for _ in range(clients)
        ]
        for thread in self._threads:
            thread.start()

    def _client(self, target: str, request: prediction_pb2.ScoreRequest) -> None:
        options = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(target, options=options) as channel:
            score = prediction_pb2_grpc.RankingStub(channel).Score
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    score(request, timeout=30)
                    code = "OK"
                except grpc.RpcError as e:
                    code = e.code().name
                    time.sleep(0.01)
                self.calls.append((sent, time.monotonic(), code))

    def between(self, start: float, end: float) -> list[str]:
        """The codes of the requests answered in [start, end)."""
        return [code for _, at, code in self.calls if start <= at < end]

    def sent_before(self, moment: float) -> list[str]:
        return [code for sent, _, code in self.calls if sent < moment]

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def test_a_worker_killed_under_load_is_replaced_while_the_port_answers(exported_model) -> None:  # type: ignore[no-untyped-def]
    metrics_port, clients = _free_port(), 6
    server = _Serve(
        exported_model.export_base,
        "--metrics-port",
        str(metrics_port),
        "--restart-backoff-seconds",
        "0.1",
        "--pin-workers",
    )
    load = None
    try:
        _wait_for(lambda: set(_answers(server.target)) == {0, 1})
        with RankingClient(server.target) as client:
            rows = rows_from_file(exported_model.rows_file, "criteo", client.model_info())
        load = _Load(
            server.target,
            prediction_pb2.ScoreRequest(rows=[row_proto(row) for row in rows[:16]]),
            clients,
        )
        time.sleep(0.5)
        # worker 0 dies: the spare (loaded) takes its place
        killed = [server.pid(0)]
        os.kill(killed[0], signal.SIGKILL)
        first = time.monotonic()
        _wait_for(lambda: set(_answers(server.target, 8)) == {0, 1}, 60)
        # worker 1 dies: the next spare, forked after the backoff, takes its place once it has
        # loaded the model; until then worker 0 answers alone
        second = time.monotonic()
        killed.append(server.pid(1))
        os.kill(killed[1], signal.SIGKILL)
        _wait_for(lambda: set(_answers(server.target, 8)) == {0, 1}, 120)
        replaced = time.monotonic()
        pinned = [_main_thread_cpus(server.pid(i)) for i in (0, 1)]  # the spares that took over
        time.sleep(0.5)
        load.stop()
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        metrics = text.read().decode().splitlines()
    finally:
        if load is not None:
            load.stop()
        code = server.stop()
    assert code == 0, server.logs[-5:]
    failed = [c for c in load.between(first - 1, float("inf")) if c != "OK"]
    # at most the request each client had in flight on a killed worker, each kill
    assert set(failed) <= {"UNAVAILABLE"} and len(failed) <= 2 * clients, failed
    assert load.between(second, replaced).count("OK") > 0  # the port answered meanwhile
    assert load.between(replaced, float("inf")).count("OK") > 0
    assert "ue_worker_restarts_total 2.0" in metrics
    versions = [line for line in metrics if line.startswith("ue_model_version{")]
    assert len(versions) == 2, versions  # the killed workers' gauges are gone (marked dead)
    exited = [e for e in server.logs if "exited unasked" in e["message"]]
    assert [e["pid"] for e in exited] == killed and all(e["exit_code"] == -9 for e in exited)
    assert server.pid(0) not in killed and server.pid(1) not in killed
    # `--pin-workers`: the spares that took over answer on their worker's CPU
    cpus = next(e for e in server.logs if e["message"] == "workers started")["pinned_to"]
    assert pinned == [str(cpus[i % len(cpus)]) for i in (0, 1)]


def _main_thread_cpus(pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next(
        line.split(":")[1].strip() for line in status if line.startswith("Cpus_allowed_list")
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_the_requests_in_flight(exported_model, workers: int) -> None:  # type: ignore[no-untyped-def]
    """Requests sent before SIGTERM are all answered: small ones sent back to back by many
    clients (gRPC's core holds many of them unmatched: answered CANCELLED by a plain shutdown),
    large ones queued behind one model call at a time, REST ones."""
    rest_port = _free_port()
    server = _Serve(
        exported_model.export_base,
        "--batch-threads",
        "1",
        "--rest-api-port",
        str(rest_port),
        "--grace-period-seconds",
        "60",
        workers=workers,
    )
    load = None
    try:
        _wait_for(lambda: len(_answers(server.target)) == workers)
        with RankingClient(server.target) as client:
            info = client.model_info()
        rows = rows_from_file(exported_model.rows_file, "criteo", info)
        columns = columns_from_file(exported_model.rows_file, "criteo", info)
        candidates = {name: np.resize(values, 4096) for name, values in columns.items()}
        body = json.dumps({"inputs": {k: v.tolist() for k, v in candidates.items()}}).encode()
        load = _Load(
            server.target,
            prediction_pb2.ScoreRequest(rows=[row_proto(row) for row in rows[:16]]),
            clients=16,
        )
        _wait_for(lambda: len(load.calls) > 100, 90)
        options = [("grpc.use_local_subchannel_pool", 1)]
        channels = [grpc.insecure_channel(server.target, options=options) for _ in range(4)]
        large = [
            prediction_pb2_grpc.RankingStub(channel).Score.future(
                ranking_request({}, candidates), timeout=90
            )
            for channel in channels * 3
        ]
        answered = threading.Event()
        for call in large:
            call.add_done_callback(lambda _: answered.set())
        rest: list[int] = []

        def post() -> None:
            url = f"http://127.0.0.1:{rest_port}/v1/models/default:predict"
            with urllib.request.urlopen(urllib.request.Request(url, body), timeout=90) as r:
                rest.append(r.status)

        posts = [threading.Thread(target=post) for _ in range(2)]
        for thread in posts:
            thread.start()
        assert answered.wait(90)
        sigterm = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        in_flight = sum(not call.done() for call in large)
        codes = [call.code() for call in large]  # waits for each
        for thread in posts:
            thread.join(90)
    finally:
        if load is not None:
            load.stop()
        code = server.stop()
    assert in_flight > 0  # the stop had requests to finish
    trouble = [e for e in server.logs if e["message"] == "stopped" or e["level"] != "INFO"]
    assert codes == [grpc.StatusCode.OK] * len(large), ([c.details() for c in large], trouble)
    before = load.sent_before(sigterm)
    assert before.count("OK") == len(before), (collections.Counter(before), trouble)
    assert rest == [200] * 2
    assert code == 0, server.logs[-5:]


def test_workers_that_crash_as_they_start_stop_the_server(tmp_path: Path) -> None:
    bad = tmp_path / "models.config"
    bad.write_text("model_config_list { config { name: 'x' base_path: ")  # malformed
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.run(
        [
            sys.executable,
            "-m",
            "ue.cli",
            "serve",
            "--model-config-file",
            str(bad),
            "--port",
            str(_free_port()),
            "--workers",
            "2",
            "--max-worker-crashes",
            "3",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert server.returncode == 1, server.stderr[-3000:]
    logs = [json.loads(line) for line in server.stderr.splitlines() if line.startswith("{")]
    (stopping,) = [e["message"] for e in logs if "crashes within" in e["message"]]
    assert stopping.startswith("3 worker crashes within 60 s (`max_crashes=3`): stopping")
    assert stopping.endswith("exit code 2")
    # each worker says why in one line naming the file, without a traceback
    failed = [e["message"] for e in logs if " failed: " in e["message"]]
    assert len(failed) == 3 and all(str(bad) in message for message in failed), failed
    assert "Traceback" not in server.stderr


def test_sigterm_answers_the_calls_that_arrived_while_the_server_was_busy(exported_model) -> None:  # type: ignore[no-untyped-def]
    """Calls that reached gRPC's core but not yet the handlers when SIGTERM comes (a busy
    server: here a stopped one, resumed after the signal) are answered, not CANCELLED."""
    server = _Serve(exported_model.export_base, workers=1)
    try:
        _wait_for(lambda: len(_answers(server.target)) == 1)
        with RankingClient(server.target) as client:
            rows = rows_from_file(exported_model.rows_file, "criteo", client.model_info())
        request = prediction_pb2.ScoreRequest(rows=[row_proto(row) for row in rows[:16]])
        options = [("grpc.use_local_subchannel_pool", 1)]
        channels = [grpc.insecure_channel(server.target, options=options) for _ in range(8)]
        stubs = [prediction_pb2_grpc.RankingStub(channel) for channel in channels]
        for stub in stubs:  # connected
            stub.Score(request, timeout=30)
        server.process.send_signal(signal.SIGSTOP)
        calls = [stub.Score.future(request, timeout=60) for stub in stubs for _ in range(4)]
        time.sleep(0.5)  # the requests wait in the kernel's socket buffers
        server.process.send_signal(signal.SIGTERM)
        server.process.send_signal(signal.SIGCONT)
        codes = [call.code() for call in calls]
        for channel in channels:
            channel.close()
    finally:
        server.process.send_signal(signal.SIGCONT)
        code = server.stop()
    assert codes == [grpc.StatusCode.OK] * len(calls), [c.details() for c in calls]
    assert code == 0, server.logs[-5:]
