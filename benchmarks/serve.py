"""Serving latency and throughput on loopback, next to the in-process SavedModel call.

Measures, in one run:
  in_process   the `packed` signature called in-process (what the server runs): batch-1 latency
               p50/p99, and rows/s at batch 64 (what 64 concurrent clients can fill) and 512
  sequential   one client, batch-1 requests one after another: latency p50/p99
  concurrent   64 clients (asyncio, one channel each), batch-1 requests for `--seconds`, with
               batching on and off: rows/s and latency p50/p99
The server runs as a subprocess (`ue serve`), so client and server do not share a GIL; on a
2-core machine they do share the cores. Without `--model-base-path` a small model is trained and
exported first (~30 s). Prints one JSON line.

Run: `.venv/bin/python benchmarks/serve.py [--model-base-path E]`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from protos import prediction_pb2, prediction_pb2_grpc
from serving.client import row_proto, rows_from_file
from serving.model_manager import list_versions
from serving.predictor import Predictor, set_op_threads

TARGETS = {
    "sequential_p50_ms": 1.0,
    "sequential_p99_ms": 3.0,
    "concurrent_batching_vs_in_process": 0.6,
}


def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    p50, p99 = np.percentile(np.asarray(seconds) * 1e3, [50, 99])
    return {"p50_ms": round(float(p50), 3), "p99_ms": round(float(p99), 3)}


def timed(call: Callable[[], Any], count: int, warmup: int = 50) -> list[float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def build_model(root: Path, rows_file: Path) -> Path:
    """A small AutoInt trained for a few dozen steps and exported (as the tests' fixture)."""
    from pipelines.preprocess import run as preprocess
    from unified_embedding.export import export
    from unified_embedding.synthetic import SyntheticConfig, generate
    from unified_embedding.train import TrainJob, load_trained, train

    config = SyntheticConfig(seed=3)
    (root / "train.tsv").write_bytes(generate(2000, config).to_tsv_bytes())
    preprocess(["--input", str(root / "train.tsv"), "--schema", "criteo", "--output",
                str(root / "prep")])  # fmt: skip
    job = TrainJob(str(root / "prep"), str(root / "model"), budget="1MB", steps=20,
                   eval_every=20, checkpoint_every=20, batch_size=128)  # fmt: skip
    train(job)
    model, run = load_trained(job.model_dir)
    export(model, run.feature_spec(), root / "export")
    return root / "export"


def in_process(version: Path, rows: list[dict[str, Any]], count: int) -> dict[str, Any]:
    predictor = Predictor.load(version)
    one = predictor.pack_rows(rows[:1])
    latency = percentiles(timed(lambda: predictor.predict(one), count))
    out: dict[str, Any] = {"batch_1": latency}
    for size in (64, 512):
        batch = predictor.pack_rows([rows[i % len(rows)] for i in range(size)])
        seconds = timed(lambda b=batch: predictor.predict(b), max(20, count // size * 4), warmup=5)
        out[f"batch_{size}_rows_per_second"] = round(size / float(np.median(seconds)))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(self, base: Path, batching: bool, op_threads: int) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "unified_embedding.cli", "serve", "--port",
                   str(self.port), "--model-base-path", str(base),
                   "--op-threads", str(op_threads)]  # fmt: skip
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.process = subprocess.Popen([*command, *([] if batching else ["--no-batching"])],
                                        env=env, stderr=subprocess.DEVNULL)  # fmt: skip
        self.target = f"127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + 120
        with grpc.insecure_channel(self.target) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            while time.monotonic() < deadline:
                try:
                    status = check(health_pb2.HealthCheckRequest(), timeout=1).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        raise TimeoutError("the server did not start serving")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


async def concurrent(target: str, requests: list[bytes], clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    stop_at = 0.0

    async def client(index: int) -> None:
        nonlocal errors
        async with grpc.aio.insecure_channel(target) as channel:
            score = channel.unary_unary(
                "/unified_embedding.serving.v1.Ranking/Score",
                request_serializer=None,
                response_deserializer=prediction_pb2.ScoreResponse.FromString,
            )
            await score(requests[index % len(requests)], timeout=10)  # connect
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                try:
                    await score(requests[index % len(requests)], timeout=10)
                    latencies.append(time.perf_counter() - started)
                except grpc.RpcError:
                    errors += 1

    stop_at = time.perf_counter() + seconds + 1.0
    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    await asyncio.sleep(1.0)  # connections and the first requests out of the way
    first = len(latencies)
    started = time.perf_counter()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    measured = latencies[first:]
    return {"rows_per_second": round(len(measured) / elapsed), "errors": errors,
            **percentiles(measured)}  # fmt: skip


def sequential(target: str, requests: list[bytes], count: int) -> dict[str, float]:
    """One client, one row per request, each sent after the previous answer."""
    parsed = [prediction_pb2.ScoreRequest.FromString(r) for r in requests]
    with grpc.insecure_channel(target) as channel:
        score = prediction_pb2_grpc.RankingStub(channel).Score
        index = iter(range(10**9))
        return percentiles(
            timed(lambda: score(parsed[next(index) % len(parsed)], timeout=5), count)
        )


def serve_measurements(base: Path, rows: list[dict[str, Any]], args: argparse.Namespace) -> dict:
    out = {}
    requests = [prediction_pb2.ScoreRequest(rows=[row_proto(r)]).SerializeToString() for r in rows]
    for batching in (True, False):
        server = ServerProcess(base, batching, args.op_threads)
        try:
            server.wait_ready()
            name = "batching" if batching else "no_batching"
            if batching:
                out["sequential_batch_1"] = sequential(server.target, requests, args.requests)
            out[f"concurrent_{args.clients}_{name}"] = asyncio.run(
                concurrent(server.target, requests, args.clients, args.seconds)
            )
        finally:
            server.stop()
    return out


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-base-path", type=Path, default=None)
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0, help="per concurrent run")
    parser.add_argument("--op-threads", type=int, default=1, help="as `ue serve --op-threads`")
    args = parser.parse_args(argv)
    set_op_threads(args.op_threads or None)  # the in-process limit runs as the server does
    with tempfile.TemporaryDirectory() as tmp:
        from unified_embedding.synthetic import SyntheticConfig, generate

        rows_file = Path(tmp) / "rows.tsv"
        rows_file.write_bytes(
            generate(512, SyntheticConfig(seed=4), start_row=10**6).to_tsv_bytes()
        )
        base = args.model_base_path or build_model(Path(tmp), rows_file)
        version = base / str(list_versions(base)[-1])
        predictor = Predictor.load(version)
        info = prediction_pb2.ModelInfo(
            fields=[prediction_pb2.Field(name=f.name, kind=f.kind) for f in predictor.spec.fields]
        )
        rows = rows_from_file(rows_file, "criteo", info)
        del predictor
        limit = in_process(version, rows, args.requests)
        served = serve_measurements(base, rows, args)
    batched = served[f"concurrent_{args.clients}_batching"]["rows_per_second"]
    result: dict[str, Any] = {
        "benchmark": "serve",
        "model_version": version.name,
        "in_process": limit,
        **served,
        "concurrent_batching_vs_in_process_batch_64": round(
            batched / limit["batch_64_rows_per_second"], 3
        ),
        "targets": TARGETS,
        "op_threads": args.op_threads,
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run()
