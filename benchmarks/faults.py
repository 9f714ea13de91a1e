"""Faults under load: `ue serve --workers 2` with `--clients` concurrent gRPC clients, phase by
phase, and how many requests each phase loses.

  steady    `--seconds` of load, nothing happens
  reload    a new version copied in atomically (a hidden `.name` staging folder, then a rename):
            `serving_seconds` until every worker serves it
  corrupt   a version whose saved_model.pb is garbage dropped in the same way: the versions the
            workers serve afterwards (`versions_served`: still the previous one)
  kill      `kill -9` of worker 0: the requests in flight at that moment (`in_flight`, and
            `in_flight_on_killed_worker`: on connections held by it), the seconds until its
            replacement listens (from the server's log) and until new connections reach every
            worker again (`every_worker_answering_seconds`)
  sigterm   SIGTERM of the parent: the requests in flight at that moment by status code
            (`sent_before`: none should fail, none be CANCELLED), those sent after it, and the
            seconds until the parent exited
  idle_stop SIGTERM of an idle server (`--workers 1`, then `--workers 2`) that a health Watch
            stream holds open, as a load balancer's health checker does: seconds until it exited

Each client has its own connection (the kernel spreads connections over the workers), sends a
request of `--rows` rows with a deadline, and sends the next one when the answer is in; a failed
request is counted, not retried. A request counts in the phase it was answered in. The server
runs as a subprocess on 127.0.0.1 (`--spare-workers` as given, 1 by default); without
`--model-base-path` a small Criteo-shaped model is trained and exported first (~30 s). Prints
one JSON line with the targets and whether they were met.

Run: `.venv/bin/python benchmarks/faults.py [--model-base-path E] [--clients 50]`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import collections
import datetime
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import prediction_pb2, prediction_pb2_grpc
from serving.client import row_proto, rows_from_file
from serving.model_versions import list_versions

# failed requests in the reload phases; kill: failed at most the requests in flight on the
# killed worker, every worker answering within 2 s; no CANCELLED among the requests in flight at
# SIGTERM; an idle server exits within 1 s
TARGETS = {
    "reload_failed": 0,
    "kill_serving_again_seconds": 2.0,
    "sigterm_cancelled": 0,
    "idle_stop_seconds": 1.0,
}
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]  # a channel does not share a connection


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_model(root: Path) -> Path:
    from serve import build_model as train_and_export  # benchmarks/serve.py, beside this script

    return train_and_export(root, root / "rows.tsv")


def rows_file(root: Path) -> Path:
    from unified_embedding.synthetic import SyntheticConfig, generate

    path = root / "rows.tsv"
    path.write_bytes(generate(512, SyntheticConfig(seed=3), start_row=100_000).to_tsv_bytes())
    return path


def copy_in(source: Path, base: Path, version: int) -> None:
    """Copies `source` to `base/version` atomically: a hidden staging folder, then a rename."""
    staging = base / f".{version}"
    shutil.copytree(source, staging)
    os.rename(staging, base / str(version))


def drop_corrupt(base: Path, version: int) -> None:
    staging = base / f".{version}"
    staging.mkdir()
    (staging / "saved_model.pb").write_bytes(b"this is not a SavedModel\n" * 100)
    (staging / "variables").mkdir()
    os.rename(staging, base / str(version))


class Server:
    """`ue serve` as a subprocess; its JSON log lines are collected as they come."""

    def __init__(self, base: Path, workers: int, poll_seconds: float, spares: int = 1) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        command = [
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
            "--poll-seconds",
            str(poll_seconds),
            "--spare-workers",
            str(spares),
        ]
        self.process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        self.logs: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if line.startswith("{"):
                self.logs.append(json.loads(line))

    def worker_pid(self, index: int) -> int:
        """The pid of worker `index` (the newest, when it was restarted)."""
        for entry in reversed(self.logs):
            if entry["message"] == "workers started":
                return int(entry["workers"][index])
            if entry["message"] == "worker started" and entry["worker"] == index:
                return int(entry["pid"])
        raise RuntimeError(f"no pid for worker {index} in the server's logs")

    def answers(self, connections: int = 8, timeout: float = 1.0) -> dict[int, int]:
        """worker -> the version it serves, asked over `connections` new connections."""
        seen = {}
        for _ in range(connections):
            with grpc.insecure_channel(self.target, options=OWN_CONNECTION) as channel:
                stub = prediction_pb2_grpc.RankingStub(channel)
                try:
                    info = stub.GetModelInfo(prediction_pb2.ModelInfoRequest(), timeout=timeout)
                except grpc.RpcError:
                    continue
                seen[info.worker] = info.model_spec.version
        return seen

    def wait_until(
        self, condition: Callable[[dict[int, int]], bool], seconds: float, connections: int = 8
    ) -> float:
        """Seconds until `condition(answers())` held, every worker seen in the last two rounds
        (raises after `seconds`)."""
        started = time.monotonic()
        seen: dict[int, int] = {}
        while True:
            now = self.answers(connections)
            if condition({**seen, **now}):
                break
            seen = now
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode})")
            if time.monotonic() - started > seconds:
                raise TimeoutError(f"not within {seconds} s; last answers: {self.answers()}")
            time.sleep(0.02)
        return time.monotonic() - started

    def stop(self) -> float:
        """SIGTERM; the seconds until the process exited."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(120)
        seconds = time.monotonic() - started
        self._reader.join(10)
        return seconds


@dataclass(frozen=True)
class Call:
    sent: float
    ended: float
    code: str  # "OK" or the status code's name


class Load:
    """`clients` threads, each with its own connection, sending requests back to back."""

    def __init__(
        self,
        target: str,
        requests: list[prediction_pb2.ScoreRequest],
        clients: int,
        deadline: float,
    ) -> None:
        self.calls: list[Call] = []
        self.in_flight: list[tuple[float, int] | None] = [None] * clients  # (sent, worker)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(target, requests, i, deadline))
            for i in range(clients)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _client(self, target: str, requests: list[Any], index: int, deadline: float) -> None:
        with grpc.insecure_channel(target, options=OWN_CONNECTION) as channel:
            stub = prediction_pb2_grpc.RankingStub(channel)
            worker, sent_count = -1, 0
            while not self._stop.is_set():
                if worker < 0:  # (re)connected: which worker holds this connection
                    worker = _worker_of(stub, deadline)
                sent = time.monotonic()
                self.in_flight[index] = (sent, worker)
                try:
                    stub.Score(requests[(index + sent_count) % len(requests)], timeout=deadline)
                    code = "OK"
                except grpc.RpcError as e:
                    code, worker = e.code().name, -1
                self.in_flight[index] = None
                self.calls.append(Call(sent, time.monotonic(), code))
                sent_count += 1
                if code != "OK":
                    time.sleep(0.01)  # a refused connection fails at once: do not spin

    def snapshot(self, worker: int) -> tuple[int, int]:
        """Requests in flight now: all, and those on connections held by `worker`."""
        now = list(self.in_flight)
        return (
            sum(entry is not None for entry in now),
            sum(entry is not None and entry[1] == worker for entry in now),
        )

    def count(self, calls: list[Call]) -> dict[str, Any]:
        codes = collections.Counter(c.code for c in calls)
        ok = codes.pop("OK", 0)
        return {"ok": ok, "failed": sum(codes.values()), "failed_by_code": dict(codes)}

    def ended(self, start: float, end: float) -> dict[str, Any]:
        """Requests answered in [start, end): OK, failed, failed by status code."""
        return self.count([c for c in self.calls if start <= c.ended < end])


def _worker_of(stub: prediction_pb2_grpc.RankingStub, deadline: float) -> int:
    """The worker at the other end of `stub`'s connection (-1: none answered)."""
    try:
        return int(stub.GetModelInfo(prediction_pb2.ModelInfoRequest(), timeout=deadline).worker)
    except grpc.RpcError:
        return -1


def _seconds(stamp: str) -> float:
    """A log line's time (UTC, ms) as `time.time()` seconds."""
    moment = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.replace(tzinfo=datetime.UTC).timestamp()


def _restarts(logs: list[dict[str, Any]]) -> int:
    return sum("exited unasked" in entry["message"] for entry in logs)


def idle_stop(base: Path, workers: int, poll_seconds: float) -> float:
    """Seconds from SIGTERM to exit of an idle server that a health checker watches."""
    server = Server(base, workers, poll_seconds)
    server.wait_until(lambda seen: len(seen) == workers, 180)
    with grpc.insecure_channel(server.target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        next(watch)  # SERVING; the stream stays open, as a load balancer's health checker does
        seconds = server.stop()
        watch.cancel()
    if server.process.returncode != 0:
        raise RuntimeError(f"the idle server exited with {server.process.returncode}")
    return round(seconds, 3)


def phases(server: Server, load: Load, base: Path, newest: Path, args: Any) -> dict[str, Any]:
    """Runs the phases under `load` (started), SIGTERM last; what each one lost."""
    marks = {"start": time.monotonic()}
    time.sleep(args.seconds)

    marks["steady"] = time.monotonic()
    copy_in(newest, base, 2)
    reload_seconds = server.wait_until(lambda s: s == {0: 2, 1: 2}, 120)
    time.sleep(1.0)

    marks["reload"] = time.monotonic()
    drop_corrupt(base, 3)
    time.sleep(max(4 * args.poll_seconds, 2.0))
    served = sorted(set(server.answers(16).values()))

    marks["corrupt"] = time.monotonic()
    pid = server.worker_pid(0)
    in_flight, on_killed = load.snapshot(0)
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    again = server.wait_until(lambda s: 0 in s and 1 in s, 60, connections=2)
    time.sleep(max(0.0, args.seconds - again))

    marks["kill"] = time.monotonic()
    if server.process.poll() is not None:
        raise RuntimeError(f"the server exited ({server.process.returncode})")
    in_flight_at_stop, _ = load.snapshot(-2)
    sigterm = time.monotonic()
    stop_seconds = server.stop()
    load.stop()

    def ended(start: str, end: str) -> dict[str, Any]:
        return load.ended(marks[start], marks[end])

    listening = [
        _seconds(e["time"]) - killed_at
        for e in server.logs
        if e["message"] == "listening" and e["worker"] == 0
    ]
    replacement = min((t for t in listening if t > 0), default=None)
    return {
        "steady": ended("start", "steady"),
        "reload": {**ended("steady", "reload"), "serving_seconds": round(reload_seconds, 2)},
        "corrupt": {**ended("reload", "corrupt"), "versions_served": served},
        "kill": {
            **ended("corrupt", "kill"),
            "in_flight": in_flight,
            "in_flight_on_killed_worker": on_killed,
            "replacement_listening_seconds": None if replacement is None else round(replacement, 3),
            "every_worker_answering_seconds": round(again, 2),
            "restarts": _restarts(server.logs),
        },
        "sigterm": {
            "in_flight": in_flight_at_stop,
            "sent_before": load.count([c for c in load.calls if c.sent < sigterm <= c.ended]),
            "sent_after": load.count([c for c in load.calls if c.sent >= sigterm]),
            "exit_code": server.process.returncode,
            "stop_seconds": round(stop_seconds, 2),
        },
    }


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-base-path", default=None, help="None: train a small model")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rows", type=int, default=16, help="rows per request")
    parser.add_argument("--seconds", type=float, default=5.0, help="steady phases")
    parser.add_argument("--deadline", type=float, default=5.0, help="seconds per request")
    parser.add_argument("--poll-seconds", type=float, default=0.5, help="the server's")
    parser.add_argument("--spare-workers", type=int, default=1, help="the server's")
    args = parser.parse_args(argv)

    result: dict[str, Any] = {
        "what": "faults",
        "workers": 2,
        "spare_workers": args.spare_workers,
        "clients": args.clients,
        "rows_per_request": args.rows,
    }
    with tempfile.TemporaryDirectory(prefix="ue-faults-") as tmp:
        root = Path(tmp)
        source = Path(args.model_base_path) if args.model_base_path else build_model(root)
        newest = source / str(list_versions(source)[-1])
        base = root / "served"
        base.mkdir()
        copy_in(newest, base, 1)
        server = Server(base, 2, args.poll_seconds, args.spare_workers)
        load = None
        try:
            result["start_seconds"] = round(server.wait_until(lambda s: len(s) == 2, 180), 2)
            with grpc.insecure_channel(server.target) as channel:
                info = prediction_pb2_grpc.RankingStub(channel).GetModelInfo(
                    prediction_pb2.ModelInfoRequest(), timeout=10
                )
            rows = rows_from_file(rows_file(root), "criteo", info)
            requests = [
                prediction_pb2.ScoreRequest(rows=[row_proto(r) for r in rows[i : i + args.rows]])
                for i in range(0, len(rows) - args.rows, args.rows)
            ]
            load = Load(server.target, requests, args.clients, args.deadline)
            load.start()
            result["phases"] = phases(server, load, base, newest, args)
        finally:
            if load is not None:
                load.stop()
            if server.process.poll() is None:
                server.process.kill()
        idle = {f"workers_{n}": idle_stop(base, n, args.poll_seconds) for n in (1, 2)}
    kill, before = result["phases"]["kill"], result["phases"]["sigterm"]["sent_before"]
    reload_failed = result["phases"]["reload"]["failed"] + result["phases"]["corrupt"]["failed"]
    result.update(
        {
            "idle_stop_seconds": idle,
            "targets": TARGETS,
            "met": {
                "reload_failed": reload_failed == 0,
                "kill_failed": kill["failed"] <= kill["in_flight_on_killed_worker"],
                "kill_serving_again_seconds": kill["every_worker_answering_seconds"]
                <= TARGETS["kill_serving_again_seconds"],
                "sigterm_cancelled": before["failed_by_code"].get("CANCELLED", 0) == 0,
                "idle_stop_seconds": max(idle.values()) <= TARGETS["idle_stop_seconds"],
            },
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
    )
    return result


def main() -> None:
    print(json.dumps(run()))


if __name__ == "__main__":
    main()
