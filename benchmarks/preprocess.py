"""Throughput and memory of the preprocessing job, next to a per-row pipeline in the same run.

In one run, on generated Criteo rows, end to end (pipeline start-up included):
- `rows_per_s`: `pipelines.preprocess.run` with default flags on `--rows` rows in 4 files;
- `per_row_baseline_rows_per_s`: a per-row Beam pipeline (one element per line, Python
  split and checks per row, the same hashing function in batches, one `tf.train.Example` per
  row) on `--baseline-rows` rows, and `vs_per_row_baseline`;
- `single_file`: one file of `--single-file-gb` through the default runner: rows/s and the
  peak RSS summed over every process of the job (the workers included), sampled every 0.2 s;
- `startup`: the job on `--startup-rows` rows, seconds from its process's start to: its
  modules imported (`imports_s`), Beam imported (`beam_s`), the pipeline built and handed to
  the runner (`pipeline_built_s`), the first block of rows encoded (`first_row_s`), and the
  end (`seconds`); `startup_seconds` repeats `first_row_s`.

Prints one JSON line. Run: `.venv/bin/python benchmarks/preprocess.py` (~3 min on 2 cores).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import contextlib
import itertools
import json
import logging
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import psutil
import tensorflow as tf
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.options.pipeline_options import PipelineOptions

from unified_embedding.contract.artifacts import STATS_FILE
from unified_embedding.contract.features import encode_features
from unified_embedding.contract.schemas import criteo
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.rows.records import LABEL
from unified_embedding.synthetic import SyntheticConfig, write_tsv

INPUT_FILES = 4


def write_inputs(directory: Path, rows: int, files: int, seed: int) -> str:
    """`rows` generated rows in `files` TSV files; returns their glob."""
    whole = directory / "generated.tsv"
    write_tsv(whole, rows, SyntheticConfig(seed=seed))
    if files == 1:
        return str(whole)
    lines = whole.read_bytes().splitlines(keepends=True)
    whole.unlink()
    bounds = np.linspace(0, len(lines), files + 1).astype(int)
    for i, (start, end) in enumerate(itertools.pairwise(bounds)):
        (directory / f"part-{i:05d}.tsv").write_bytes(b"".join(lines[start:end]))
    return str(directory / "part-*.tsv")


class PerRowExamplesFn(beam.DoFn):
    """A batch of raw lines -> per-row split and checks in Python, the shared hashing in one
    batch, one serialized `tf.train.Example` per row: the naive design."""

    def __init__(self, spec_json: str) -> None:
        self._spec_json = spec_json

    def setup(self) -> None:
        self._spec = FeatureSpec.from_json(self._spec_json)
        columns = self._spec.input_format.columns
        self._index = [columns.index(f.name) for f in self._spec.fields]

    def process(self, lines: list[str]) -> Iterator[bytes]:
        rows = [line.split("\t") for line in lines]
        rows = [r for r in rows if len(r) == 40 and r[0] in ("0", "1")]
        raw = {
            f.name: tf.constant([r[i] for r in rows])
            for f, i in zip(self._spec.fields, self._index, strict=True)
        }
        encoded = {k: v.numpy().tolist() for k, v in encode_features(self._spec, raw).items()}
        for j, row in enumerate(rows):
            feature = {
                LABEL: tf.train.Feature(float_list=tf.train.FloatList(value=[float(row[0])]))
            }
            for f in self._spec.fields:
                value = encoded[f.name][j]
                if f.kind == "numeric":
                    feature[f.name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
                else:
                    feature[f.name] = tf.train.Feature(int64_list=tf.train.Int64List(value=value))
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            yield example.SerializeToString()


def run_baseline(pattern: str, output: str) -> None:
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as pipeline:
        _ = (
            pipeline
            | "ReadLines" >> beam.io.ReadFromText(pattern)
            | "Batch" >> beam.BatchElements(min_batch_size=256, max_batch_size=4096)
            | "PerRowExamples" >> beam.ParDo(PerRowExamplesFn(criteo().to_json()))
            | "Write"
            >> beam.io.WriteToTFRecord(
                f"{output}/examples",
                file_name_suffix=".tfrecord.gz",
                compression_type=CompressionTypes.GZIP,
            )
        )


class PeakRss:
    """Peak of the RSS summed over a process and all its descendants, sampled."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self._pid = pid
        self._every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        root = psutil.Process(self._pid)
        tree: list[psutil.Process] = [root]
        while not self._stop.is_set():
            total = 0
            with contextlib.suppress(psutil.Error):
                tree = [root, *root.children(recursive=True)]
            for process in tree:
                with contextlib.suppress(psutil.Error):  # a worker that just ended
                    total += process.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(self._every)


def time_job(rows: int, pattern: str, output: Path) -> dict[str, Any]:
    """`ue preprocess` with default flags as its own process, as a user runs it."""
    command = [
        sys.executable,
        "-m",
        "ue.cli",
        "preprocess",
        "--input",
        pattern,
        "--schema",
        "criteo",
        "--output",
        str(output),
    ]
    started = time.perf_counter()
    cpu_before = _children_cpu_seconds()
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with PeakRss(job.pid) as rss:
        _, errors = job.communicate()
    seconds = time.perf_counter() - started
    cpu = _children_cpu_seconds() - cpu_before
    if job.returncode:
        raise RuntimeError(f"ue preprocess failed: {errors.decode()[-2000:]}")
    stats = json.loads((output / STATS_FILE).read_text())
    if stats["rows_valid"] != rows:
        raise RuntimeError(f"expected {rows} valid rows, the job reported {stats['rows_valid']}")
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mb_all_processes": round(rss.peak / 2**20),
        # CPU seconds of the job and its workers: rows per CPU-second x cores is what the job
        # would reach alone on this machine, when other work shares the cores
        "cpu_seconds": round(cpu, 1),
        "rows_per_cpu_s": round(rows / cpu),
    }


# Runs `ue preprocess` (argv) as the console script does, noting when each start-up step ends,
# and prints them as JSON: seconds since the process started (the kernel's start time).
STARTUP_PROBE = """
import json, sys, time
started = time.time()
marks = {}
import pipelines.preprocess as preprocess
marks["imports_s"] = time.time()
from unified_embedding.runtime.startup import import_beam_quietly
import_beam_quietly()
import apache_beam as beam
marks["beam_s"] = time.time()
import pipelines.encode as encode
run, process = beam.Pipeline.run, encode.EncodeBlockFn.process
def timed_run(self, *args, **kwargs):
    marks.setdefault("pipeline_built_s", time.time())
    return run(self, *args, **kwargs)
def timed_process(self, checked):
    yield from process(self, checked)
    marks.setdefault("first_row_s", time.time())
beam.Pipeline.run, encode.EncodeBlockFn.process = timed_run, timed_process
status = preprocess.main(sys.argv[1:])
marks["seconds"] = time.time()
import psutil
zero = psutil.Process().create_time()
print(json.dumps({k: round(v - zero, 2) for k, v in marks.items()}))
sys.exit(status)
"""


def time_startup(pattern: str, output: Path) -> dict[str, float]:
    """The start-up steps of `ue preprocess` on `pattern` (`STARTUP_PROBE`)."""
    args = ["--input", pattern, "--schema", "criteo", "--output", str(output)]
    done = subprocess.run(
        [sys.executable, "-c", STARTUP_PROBE, *args], capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"ue preprocess failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=200_000)
    parser.add_argument("--single-file-gb", type=float, default=1.0)
    parser.add_argument("--startup-rows", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("input", "baseline_input", "single_input", "startup_input"):
            (root / name).mkdir()
        startup_pattern = write_inputs(root / "startup_input", args.startup_rows, 1, args.seed)
        startup = time_startup(startup_pattern, root / "startup")
        pattern = write_inputs(root / "input", args.rows, INPUT_FILES, args.seed)
        job = time_job(args.rows, pattern, root / "job")
        baseline_pattern = write_inputs(root / "baseline_input", args.baseline_rows, 1, args.seed)
        started = time.perf_counter()
        run_baseline(baseline_pattern, str(root / "baseline"))
        baseline_rate = args.baseline_rows / (time.perf_counter() - started)
        single_rows = round(args.single_file_gb * 2**30 / 248)  # generated rows: ~248 bytes
        single_pattern = write_inputs(root / "single_input", single_rows, 1, args.seed + 1)
        size = Path(single_pattern).stat().st_size
        single = {
            "gb": round(size / 2**30, 2),
            **time_job(single_rows, single_pattern, root / "one"),
        }
    result: dict[str, Any] = {
        "benchmark": "preprocess",
        "cores": os.cpu_count(),
        "rows": args.rows,
        "rows_per_s": job["rows_per_s"],
        "seconds": job["seconds"],
        "startup_seconds": startup["first_row_s"],
        "startup": {"rows": args.startup_rows, **startup},
        "peak_rss_mb_all_processes": job["peak_rss_mb_all_processes"],
        "rows_per_cpu_s": job["rows_per_cpu_s"],
        "per_row_baseline_rows": args.baseline_rows,
        "per_row_baseline_rows_per_s": round(baseline_rate),
        "vs_per_row_baseline": round(job["rows_per_s"] / baseline_rate, 2),
        "single_file": single,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run()
