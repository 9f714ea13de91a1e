"""Serving throughput and latency on loopback, next to the in-process SavedModel call.

Measures, in one run, for the same model and the same rows:
  in_process   the server's model call (`Predictor.predict`, a session callable of the `packed`
               signature) in-process on the ranking requests' rows (batches of `--candidates`),
               from 1 and from `cores` threads: rows/s (the baseline is the faster of the two,
               measured before and after the servers run, and averaged); and batch-1 latency
               p50/p99, next to the `packed` tf.function signature's
  ranking      `--clients` concurrent clients (asyncio, one channel each) sending ranking
               requests (a context of `--context-fields` categorical fields sent once, plus
               `--candidates` candidates column-wise) for `--seconds`, against `ue serve
               --workers W` for W in 1, 2 and the number of cores: rows/s, latency p50/p99;
               `ranking` is the default (`--workers` = cores), `ranking_vs_in_process` its
               rows/s over the in-process baseline
  sequential   one client, batch-1 row requests one after another (against the default server):
               latency p50/p99; next to it a health check the same way (the gRPC round trip
               without model or batcher: the floor under any call)
  rest         the same as TF Serving REST clients (aiohttp, against the default server's
               `--rest-api-port`): `--clients` clients posting `:predict` in the columnar format
               (the ranking requests' rows, every field a column) for `--seconds`, and batch-1
               row-format requests one after another; `rest_vs_grpc` is their rows/s over the
               gRPC ranking run's, `rest_sequential_vs_grpc` the p50 over gRPC's sequential p50
  breakdown    sequential batch-1 in ms: the gRPC round trip without a model (the health check),
               the model call in process (session callable, and the tf.function for comparison),
               and the server's total on gRPC and on REST
Clients send requests built and serialized once in advance (a pool of `--distinct` ones), so
the client process spends little of the cores it shares with the server: `client_cores` (its
CPU seconds per second of a run) measures how little. The server runs as a
subprocess (`ue serve`) on 127.0.0.1. Without `--model-base-path` a small Criteo-shaped model
is trained and exported first (~30 s). Prints one JSON line.

Run: `.venv/bin/python benchmarks/serve.py [--model-base-path E] [--seconds 20]`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from protos import prediction_pb2, prediction_pb2_grpc
from serving.client import columns_from_file, ranking_request, row_proto, rows_from_file
from serving.model_manager import list_versions
from serving.predictor import PackedBatch, Predictor
from unified_embedding.runtime.threads import set_op_threads

TARGETS = {
    "ranking_vs_in_process": 0.7,
    "sequential_p50_ms": 1.0,
    "sequential_p99_ms": 3.0,
    "rest_sequential_p50_ms": 1.0,
    "rest_sequential_p99_ms": 3.0,
}
SCORE = "/unified_embedding.serving.v1.Ranking/Score"


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
    from unified_embedding.exported.writer import export
    from unified_embedding.synthetic import SyntheticConfig, generate
    from unified_embedding.training.loop import TrainJob, load_trained, train

    config = SyntheticConfig(seed=3)
    (root / "train.tsv").write_bytes(generate(2000, config).to_tsv_bytes())
    preprocess(
        ["--input", str(root / "train.tsv"), "--schema", "criteo", "--output", str(root / "prep")]
    )
    job = TrainJob(
        str(root / "prep"),
        str(root / "model"),
        budget="1MB",
        steps=20,
        eval_every=20,
        checkpoint_every=20,
        batch_size=128,
    )
    train(job)
    model, run = load_trained(job.model_dir)
    export(model, run.feature_spec(), root / "export")
    return root / "export"


def ranking_requests(
    columns: dict[str, np.ndarray], context_fields: Sequence[str], candidates: int, distinct: int
) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """`distinct` (context, candidates) pairs: request i takes its context from row i and its
    candidates from the next `candidates` rows of the pool."""
    count = len(next(iter(columns.values())))
    out = []
    for i in range(distinct):
        index = (np.arange(candidates) + i * candidates) % count
        context = {name: columns[name][i].item() for name in context_fields}
        out.append((context, {k: v[index] for k, v in columns.items() if k not in context}))
    return out


def in_process(
    predictor: Predictor, batches: list[PackedBatch], seconds: float, threads: int
) -> float:
    """Rows/s of `threads` threads calling the model on `batches` round-robin for `seconds`."""
    for batch in batches:
        predictor.predict(batch)
    rows = [0] * threads
    stop_at = time.perf_counter() + seconds

    def work(index: int) -> None:
        i = index
        while time.perf_counter() < stop_at:
            batch = batches[i % len(batches)]
            predictor.predict(batch)
            rows[index] += len(batch)
            i += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(rows) / (time.perf_counter() - started)


def in_process_rates(
    predictor: Predictor, batches: list[PackedBatch], cores: int, seconds: float
) -> dict[int, int]:
    """Rows/s on the ranking requests' rows from 1 and `cores` threads."""
    return {
        threads: round(in_process(predictor, batches, seconds, threads))
        for threads in sorted({1, cores})
    }


def in_process_figures(
    predictor: Predictor,
    batches: list[PackedBatch],
    version: Path,
    row: dict[str, Any],
    cores: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The baseline before the servers: rows/s from 1 and `cores` threads (the faster is
    `rows_per_second`, until `bracket` adds the one after them), and batch-1 latency."""
    per_thread = in_process_rates(predictor, batches, cores, args.in_process_seconds)
    one = predictor.pack_rows([row])
    session, function = batch_1_calls(predictor, version, one, args.requests)
    return {
        "rows_per_second": max(per_thread.values()),
        **{f"threads_{t}_rows_per_second": v for t, v in per_thread.items()},
        "batch_1": session,
        "batch_1_tf_function": function,
    }


def bracket(before: dict[str, Any], after: dict[int, int]) -> dict[str, Any]:
    """The baseline as the mean of its best rate before and after the servers ran: the
    machine's other work moves a 5 s measurement more than the servers' 20 s runs."""
    best = (before["rows_per_second"], max(after.values()))
    return {
        **before,
        "rows_per_second": round(sum(best) / 2),
        "best": {"before": best[0], "after": best[1]},
        **{f"after_threads_{t}_rows_per_second": v for t, v in after.items()},
    }


def batch_1_calls(
    predictor: Predictor, version: Path, one: PackedBatch, count: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Batch-1 latency of the server's model call (`Predictor.predict`: a session callable)
    and of the `packed` tf.function signature, alternating call by call so both see the same
    machine; the scores must agree to 1e-6."""
    import tensorflow as tf

    from serving.model_call import FunctionCalls

    function = FunctionCalls(tf.saved_model.load(str(version)))
    calls = (
        lambda: predictor.predict(one),
        lambda: function.packed(one.categorical, one.numeric),
    )
    np.testing.assert_allclose(calls[0](), calls[1](), rtol=0, atol=1e-6)
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(2 * (count + 50)):
        started = time.perf_counter()
        calls[i % 2]()
        if i >= 100:  # warm-up
            times[i % 2].append(time.perf_counter() - started)
    return percentiles(times[0]), percentiles(times[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`ue serve --workers W` on a free loopback port, stopped with SIGTERM."""

    def __init__(self, base: Path, workers: int, op_threads: int, pin: bool = False) -> None:
        self.port = free_port()
        self.rest_port = free_port()
        self.rest_url = f"http://127.0.0.1:{self.rest_port}/v1/models/default:predict"
        command = [
            sys.executable,
            "-m",
            "ue.cli",
            "serve",
            "--port",
            str(self.port),
            "--model-base-path",
            str(base),
            "--workers",
            str(workers),
            "--op-threads",
            str(op_threads),
            "--rest-api-port",
            str(self.rest_port),
            *(["--pin-workers"] if pin else []),
        ]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        self.target = f"127.0.0.1:{self.port}"
        self.workers = workers

    def wait_ready(self) -> None:
        """Until every worker answers (each new connection lands on some worker)."""
        deadline = time.monotonic() + 180
        seen: set[int] = set()
        while len(seen) < self.workers:
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start serving")
            options = [("grpc.use_local_subchannel_pool", 1)]
            with grpc.insecure_channel(self.target, options=options) as channel:
                try:
                    info = prediction_pb2_grpc.RankingStub(channel).GetModelInfo(
                        prediction_pb2.ModelInfoRequest(), timeout=2
                    )
                    seen.add(info.worker)
                except grpc.RpcError:
                    time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


class Load:
    """Clients sending back to back for `seconds` (plus a second of warm-up): the answered
    requests' latencies and the errors."""

    def __init__(self, seconds: float) -> None:
        self.stop_at = time.perf_counter() + seconds + 1.0
        self.latencies: list[float] = []
        self.errors = 0

    def running(self) -> bool:
        return time.perf_counter() < self.stop_at

    async def measure(self, clients: list[Coroutine[Any, Any, None]], rows: int) -> dict[str, Any]:
        """Runs `clients`; rows/s and latencies after the first second (`rows` per request)."""
        tasks = [asyncio.create_task(c) for c in clients]
        await asyncio.sleep(1.0)  # connections and the first requests out of the way
        first = len(self.latencies)
        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        measured = self.latencies[first:]
        rate = round(len(measured) * rows / elapsed)
        return {
            "rows_per_second": rate,
            "requests": len(measured),
            "errors": self.errors,
            # the cores this process's clients kept busy, taken from the server's machine
            "client_cores": round((time.process_time() - cpu_started) / elapsed, 2),
            **percentiles(measured),
        }


async def concurrent(
    target: str, requests: list[bytes], rows_per_request: int, clients: int, seconds: float
) -> dict[str, Any]:
    """`clients` clients sending pre-serialized requests back to back for `seconds`."""
    load = Load(seconds)

    async def client(index: int) -> None:
        # Its own connection, as separate client processes would have: channels otherwise
        # share one, and SO_REUSEPORT gives all of it to one worker.
        options = [("grpc.use_local_subchannel_pool", 1)]
        async with grpc.aio.insecure_channel(target, options=options) as channel:
            score = channel.unary_unary(
                SCORE,
                request_serializer=None,
                response_deserializer=prediction_pb2.ScoreResponse.FromString,
            )
            sent = index
            await score(requests[sent % len(requests)], timeout=30)  # connect
            while load.running():
                started = time.perf_counter()
                try:
                    await score(requests[sent % len(requests)], timeout=30)
                    load.latencies.append(time.perf_counter() - started)
                except grpc.RpcError:
                    load.errors += 1
                sent += 1

    return await load.measure([client(i) for i in range(clients)], rows_per_request)


def sequential(target: str, requests: list[prediction_pb2.ScoreRequest], count: int) -> dict:
    """One client, one row per request, each sent after the previous answer; and, as the floor
    of any call, a health check (no model, no batcher) the same way."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        score = prediction_pb2_grpc.RankingStub(channel).Score
        index = iter(range(10**9))
        out = percentiles(
            timed(lambda: score(requests[next(index) % len(requests)], timeout=5), count)
        )
        check = health_pb2_grpc.HealthStub(channel).Check
        probe = health_pb2.HealthCheckRequest()
        floor = percentiles(timed(lambda: check(probe, timeout=5), count))
    return {**out, "health_check": floor}


def rest_body(rows: dict[str, np.ndarray] | list[dict[str, Any]]) -> bytes:
    """A `:predict` body as a TF Serving REST client writes it: `inputs` (columnar) for columns,
    `instances` (row format) for rows."""
    if isinstance(rows, dict):
        return json.dumps({"inputs": {k: v.tolist() for k, v in rows.items()}}).encode()
    return json.dumps({"instances": rows}).encode()


async def concurrent_rest(
    url: str, bodies: list[bytes], rows_per_request: int, clients: int, seconds: float
) -> dict[str, Any]:
    """As `concurrent`, over HTTP/1.1 keep-alive, one connection per client."""
    import aiohttp

    load = Load(seconds)
    headers = {"Content-Type": "application/json"}

    async def client(index: int) -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            sent = index
            while load.running():
                started = time.perf_counter()
                async with session.post(
                    url, data=bodies[sent % len(bodies)], headers=headers
                ) as response:
                    await response.read()
                    if response.status == 200:
                        load.latencies.append(time.perf_counter() - started)
                    else:
                        load.errors += 1
                sent += 1

    return await load.measure([client(i) for i in range(clients)], rows_per_request)


def sequential_rest(url: str, bodies: list[bytes], count: int) -> dict[str, float]:
    """One REST client (urllib, one keep-alive connection), batch-1 requests one after another."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    index = iter(range(10**9))

    def call() -> None:
        connection.request(
            "POST",
            parts.path,
            bodies[next(index) % len(bodies)],
            {"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status

    try:
        return percentiles(timed(call, count))
    finally:
        connection.close()


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-base-path", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=20.0, help="per ranking run")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--candidates", type=int, default=100, help="per ranking request")
    parser.add_argument(
        "--context-fields",
        type=int,
        default=13,
        help="categorical fields sent once per request as context",
    )
    parser.add_argument("--distinct", type=int, default=8, help="distinct requests in the pool")
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests")
    parser.add_argument("--in-process-seconds", type=float, default=5.0)
    parser.add_argument("--op-threads", type=int, default=1, help="as `ue serve --op-threads`")
    parser.add_argument(
        "--pin-workers",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="as `ue serve --pin-workers`, for every server",
    )
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    set_op_threads(args.op_threads or None)  # the in-process calls run as the server's do
    with tempfile.TemporaryDirectory() as tmp:
        from unified_embedding.synthetic import SyntheticConfig, generate

        rows_file = Path(tmp) / "rows.tsv"
        pool = args.candidates * args.distinct
        rows_file.write_bytes(
            generate(pool, SyntheticConfig(seed=4), start_row=10**6).to_tsv_bytes()
        )
        base = args.model_base_path or build_model(Path(tmp), rows_file)
        version = base / str(list_versions(base)[-1])
        predictor = Predictor.load(version)
        spec = predictor.spec
        info = prediction_pb2.ModelInfo(
            fields=[prediction_pb2.Field(name=f.name, kind=f.kind) for f in spec.fields]
        )
        columns = columns_from_file(rows_file, "criteo", info)
        context_fields = [f.name for f in spec.categorical_fields][: args.context_fields]
        pairs = ranking_requests(columns, context_fields, args.candidates, args.distinct)
        singles = rows_from_file(rows_file, "criteo", info)[: args.distinct * 4]
        batches = [predictor.pack_ranking(context, candidates) for context, candidates in pairs]
        before = in_process_figures(predictor, batches, version, singles[0], cores, args)
        ranking = [ranking_request(c, k).SerializeToString() for c, k in pairs]
        single_requests = [prediction_pb2.ScoreRequest(rows=[row_proto(r)]) for r in singles]
        rest_bodies = [
            rest_body({**{k: np.full(args.candidates, v) for k, v in c.items()}, **k})
            for c, k in pairs
        ]
        rest_singles = [rest_body([r]) for r in singles]
        served: dict[int, dict[str, Any]] = {}
        sequential_ms: dict[str, float] = {}
        rest: dict[str, Any] = {}
        for workers in sorted({1, 2, cores}, reverse=True):
            server = ServerProcess(base, workers, args.op_threads, args.pin_workers)
            try:
                server.wait_ready()
                served[workers] = asyncio.run(
                    concurrent(server.target, ranking, args.candidates, args.clients, args.seconds)
                )
                if workers == cores:
                    sequential_ms = sequential(server.target, single_requests, args.requests)
                    rest = asyncio.run(
                        concurrent_rest(
                            server.rest_url,
                            rest_bodies,
                            args.candidates,
                            args.clients,
                            args.seconds,
                        )
                    )
                    rest["sequential"] = sequential_rest(
                        server.rest_url, rest_singles, args.requests
                    )
            finally:
                server.stop()
        baseline = bracket(
            before, in_process_rates(predictor, batches, cores, args.in_process_seconds)
        )
    ratio = round(served[cores]["rows_per_second"] / baseline["rows_per_second"], 3)
    result: dict[str, Any] = {
        "benchmark": "serve",
        "model_version": version.name,
        "fields": {
            "numeric": len(spec.numeric_fields),
            "categorical": len(spec.categorical_fields),
        },
        "request": {
            "candidates": args.candidates,
            "context_fields": len(context_fields),
            "distinct": args.distinct,
            "clients": args.clients,
            "seconds": args.seconds,
        },
        "in_process": baseline,
        "ranking": {"workers": cores, **served[cores]},
        "ranking_vs_in_process": ratio,
        **{
            f"ranking_workers_{w}": {
                **v,
                "vs_in_process": round(v["rows_per_second"] / baseline["rows_per_second"], 3),
            }
            for w, v in served.items()
        },
        "sequential_p50_ms": sequential_ms["p50_ms"],
        "sequential_p99_ms": sequential_ms["p99_ms"],
        "sequential_health_check": sequential_ms["health_check"],
        "breakdown": {  # sequential batch-1, ms: the floor, the model, the server's total
            "grpc_round_trip_no_model": sequential_ms["health_check"],
            "model_call_in_process": baseline["batch_1"],
            "model_call_in_process_tf_function": baseline["batch_1_tf_function"],
            "server_grpc": {k: sequential_ms[k] for k in ("p50_ms", "p99_ms")},
            "server_rest": rest["sequential"],
        },
        "rest": {"workers": cores, "format": "columnar", **rest},
        "rest_vs_grpc": round(rest["rows_per_second"] / served[cores]["rows_per_second"], 3),
        "rest_sequential_vs_grpc": round(rest["sequential"]["p50_ms"] / sequential_ms["p50_ms"], 3),
        "targets": TARGETS,
        "met": {
            "ranking_vs_in_process": ratio >= TARGETS["ranking_vs_in_process"],
            "sequential_p50_ms": sequential_ms["p50_ms"] <= TARGETS["sequential_p50_ms"],
            "sequential_p99_ms": sequential_ms["p99_ms"] <= TARGETS["sequential_p99_ms"],
            **{
                f"rest_sequential_{p}": rest["sequential"][p] <= TARGETS[f"rest_sequential_{p}"]
                for p in ("p50_ms", "p99_ms")
            },
        },
        "op_threads": args.op_threads,
        "pin_workers": args.pin_workers,
        "cpus": cores,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run()
