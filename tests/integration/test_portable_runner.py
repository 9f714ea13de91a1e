"""Both Beam jobs through Beam's portable Job API, as Flink, Spark and Dataflow run Python: a
local job service and a worker pool, each its own process, the pipeline's code run by workers
the pool starts (`--environment_type=EXTERNAL`). Their outputs equal the FnApiRunner's.

The launcher runs in another working directory than the pool with relative paths, so a path
that is not made absolute before the job is submitted names no file in the workers."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
import tensorflow as tf

from pipelines.options import PreprocessOptions, ScoreOptions, with_absolute_paths
from pipelines.preprocess import run as preprocess
from pipelines.score import run as score
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.rows.records import read_blocks
from unified_embedding.synthetic import SyntheticConfig, generate

START_SECONDS = 60.0
# Rows the validation refuses, so both runners also write dead letters.
BAD_LINES = b"1\t2\t3\n7" + b"\t1" * 13 + b"\ta" * 26 + b"\n"


@dataclass(frozen=True)
class PortableRunner:
    """A running local job service and worker pool: the Beam flags that submit a job to them."""

    job_port: int
    pool_port: int
    pool_log: Path

    def workers_started(self) -> int:
        """How many worker processes the pool has started so far (one line each)."""
        return self.pool_log.read_text(errors="replace").count("Starting worker with command")

    def flags(self) -> list[str]:
        return [
            "--runner=PortableRunner",
            f"--job_endpoint=localhost:{self.job_port}",
            "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{self.pool_port}",
        ]


def _start(command: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """`python -m command` in its own process group (the pool's workers join it), logging to
    `log`. The pool starts each worker as `python` from PATH: this interpreter's folder first."""
    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *command],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for(
    found: Callable[[], str | None], processes: list[subprocess.Popen[bytes]], logs: list[Path]
) -> str:
    """`found()`'s first value, polled until both processes are up; raises with their logs
    when one exits first or START_SECONDS pass."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        if any(p.poll() is not None for p in processes):
            break
        time.sleep(0.1)
    text = "\n".join(f"{log.name}:\n{log.read_text(errors='replace')}" for log in logs)
    raise RuntimeError(f"the job service or worker pool did not start:\n{text}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group (the process and any worker it started; SIGINT may be
    ignored by a process started in the background), then SIGKILL to what is left of it."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):  # the group is gone: nothing left
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait)


@pytest.fixture(scope="module")
def portable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortableRunner]:
    """A job service and a worker pool on free ports (port 0: each reports the one it bound),
    both stopped at the end whatever happened."""
    tmp = tmp_path_factory.mktemp("portable")
    port_file, logs = tmp / "job_service.port", [tmp / "job_service.log", tmp / "pool.log"]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(
            _start(
                [
                    "apache_beam.runners.portability.local_job_service_main",
                    "--port=0",
                    f"--port_file={port_file}",
                ],
                tmp,
                logs[0],
            )
        )
        processes.append(
            _start(
                ["apache_beam.runners.worker.worker_pool_main", "--service_port=0"], tmp, logs[1]
            )
        )

        def job_port() -> str | None:
            return port_file.read_text() if port_file.exists() else None

        def pool_port() -> str | None:
            started = re.search(r"worker pool servicer at port: \S+:(\d+)", logs[1].read_text())
            return started.group(1) if started else None

        job, pool = _wait_for(job_port, processes, logs), _wait_for(pool_port, processes, logs)
        yield PortableRunner(int(job), int(pool), logs[1])
    finally:
        for process in processes:
            _stop(process)


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 generated rows (the planted model of `exported_model`) and two bad ones."""
    path = tmp_path_factory.mktemp("rows") / "rows.tsv"
    config = SyntheticConfig(seed=7, weighted_top_k=3, signal_scale=2.0)
    path.write_bytes(generate(3000, config, start_row=5000).to_tsv_bytes() + BAD_LINES)
    return path


def dead_letters(output: Path) -> list[str]:
    return sorted(
        line for f in output.glob("dead_letters-*") for line in f.read_text().splitlines()
    )


def records(output: Path, split: str) -> list[bytes]:
    """Every row written to `split`'s records, each as the bytes of its features, sorted."""
    spec = FeatureSpec.load(output / "spec.json")
    pattern = str(output / f"{split}-*.tfrecord.gz")

    def row_bytes(row: dict[str, tf.Tensor]) -> bytes:
        values = [row[name] for name in sorted(row)]
        return b"|".join(
            np.asarray(v.to_list() if isinstance(v, tf.RaggedTensor) else v).tobytes()
            for v in values
        )

    return sorted(row_bytes(row) for row in read_blocks(spec, pattern))


def test_preprocess_on_the_portable_runner_equals_the_fn_api_runner(
    portable: PortableRunner, rows_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = ["--schema", "criteo", "--eval-fraction", "0.2", "--block-rows", "512"]
    local = preprocess(["--input", str(rows_file), "--output", str(tmp_path / "fn"), *flags])
    monkeypatch.chdir(rows_file.parent)  # relative paths, another directory than the pool's
    out = os.path.relpath(tmp_path / "portable", rows_file.parent)
    started = portable.workers_started()
    remote = preprocess(["--input", rows_file.name, "--output", out, *flags, *portable.flags()])
    assert portable.workers_started() > started  # the job ran in the pool's workers
    fn, port = tmp_path / "fn", tmp_path / "portable"
    assert remote == local  # counts per split and file, dead by reason, field statistics
    assert remote["rows_read"] == 3002 and remote["rows_dead"] == 2
    assert remote["rows_by_split"]["eval"] > 0 and remote["rows_by_split"]["train"] > 0
    assert (port / "spec.json").read_bytes() == (fn / "spec.json").read_bytes()
    assert (port / "stats.json").read_bytes() == (fn / "stats.json").read_bytes()
    assert len(dead_letters(port)) == 2 and dead_letters(port) == dead_letters(fn)
    for split, count in remote["rows_by_split"].items():
        written = records(port, split)
        assert len(written) == count and written == records(fn, split)


def score_rows(output: Path) -> pa.Table:
    tables = [pa_csv.read_csv(f) for f in sorted(output.glob("scores-*.csv"))]
    return pa.concat_tables(tables).sort_by([("source", "ascending"), ("offset", "ascending")])


def test_score_on_the_portable_runner_equals_the_fn_api_runner(
    portable: PortableRunner, rows_file: Path, exported_model: Any, tmp_path: Path
) -> None:
    flags = ["--model", str(exported_model.export_base), "--input", str(rows_file)]
    flags += ["--block-rows", "512", "--max-dead-fraction", "0.01"]
    local = score([*flags, "--output", str(tmp_path / "fn")])
    started = portable.workers_started()
    remote = score([*flags, "--output", str(tmp_path / "portable"), *portable.flags()])
    assert portable.workers_started() > started  # the job ran in the pool's workers
    fn, port = tmp_path / "fn", tmp_path / "portable"
    assert remote["rows_read"] == 3002 and remote["rows_scored"] == 3000
    metrics, local_metrics = remote.pop("metrics"), local.pop("metrics")
    assert remote == local  # rows per file, dead by reason, the model
    assert metrics == pytest.approx(local_metrics, rel=1e-9, abs=1e-12)
    assert metrics["auc"] > 0.55  # a model of 30 steps, above chance: a real AUC
    assert dead_letters(port) == dead_letters(fn) and len(dead_letters(port)) == 2
    got, expected = score_rows(port), score_rows(fn)
    assert got.num_rows == 3000
    assert got.column("offset").to_pylist() == expected.column("offset").to_pylist()
    np.testing.assert_allclose(
        got.column("probability").to_numpy(), expected.column("probability").to_numpy(), atol=1e-6
    )


def test_local_paths_are_made_absolute_before_the_job_is_submitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cwd = os.getcwd()  # tmp_path with any link resolved
    options = PreprocessOptions(input="logs/*.tsv", schema="criteo", output="prep")
    absolute = with_absolute_paths(options)
    assert absolute.input == f"{cwd}/logs/*.tsv" and absolute.output == f"{cwd}/prep"
    assert absolute.schema == "criteo" and absolute.eval_input is None
    assert absolute.eval_fraction == options.eval_fraction
    remote = ScoreOptions(input="gs://b/day2/*", output="gs://b/scores", model="export")
    scored = with_absolute_paths(remote)
    assert (scored.input, scored.output) == (remote.input, remote.output)
    assert scored.model == f"{cwd}/export"
