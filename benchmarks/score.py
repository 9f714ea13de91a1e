"""Throughput of `ue score` end to end vs in-process batched prediction with the same SavedModel.

Generates `--rows` Criteo-format rows into 4 files, trains a small model for a few steps on
other generated rows (`ue preprocess` -> `ue train` -> `ue export`: the paper's AutoInt
defaults, `--precision auto`), then, in one run:

- `in_process`: the SavedModel's `serving_default` called on batches of `--block-rows` rows
  whose tensors were built beforehand (model calls only: the ceiling for any job);
- `job`: `ue score` as its own process, end to end (start-up, reading, validation, scoring,
  writing the shards and stats.json), with `--job-args` (e.g. two worker processes);
  peak RSS is the largest sum over the job's process tree, sampled every 0.1 s (psutil);
- `startup`: the same job on one block of the rows (`--block-rows` of them), for the fixed
  cost (process start, imports, pipeline, model load, first call) that the end-to-end rate
  carries, and the rate with that cost taken out (`vs_in_process_after_startup`).

Prints one JSON line. Run: `.venv/bin/python benchmarks/score.py --rows 200000`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import itertools
import json
import logging
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from unified_embedding.synthetic import SyntheticConfig, write_tsv

INPUT_FILES = 4
TRAIN_ROWS = 5000


def write_inputs(directory: Path, rows: int, config: SyntheticConfig) -> str:
    """`rows` generated rows split into INPUT_FILES TSV files; returns their glob."""
    whole = directory / "generated.tsv"
    write_tsv(whole, rows, config)
    lines = whole.read_bytes().splitlines(keepends=True)
    whole.unlink()
    bounds = np.linspace(0, len(lines), INPUT_FILES + 1).astype(int)
    for i, (start, end) in enumerate(itertools.pairwise(bounds)):
        (directory / f"part-{i:05d}.tsv").write_bytes(b"".join(lines[start:end]))
    return str(directory / "part-*.tsv")


def ue(*args: str) -> str:
    """Runs `ue ARGS` as its own process; its stdout."""
    command = [sys.executable, "-m", "ue.cli", *args]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return done.stdout


def export_model(root: Path, seed: int) -> Path:
    """A few training steps on other generated rows, exported; the version's folder."""
    write_tsv(root / "train.tsv", TRAIN_ROWS, SyntheticConfig(seed=seed + 1))
    ue(
        "preprocess",
        "--input",
        str(root / "train.tsv"),
        "--schema",
        "criteo",
        "--output",
        str(root / "prep"),
        "--budget",
        "1MB",
    )
    ue(
        "train",
        "--data",
        str(root / "prep"),
        "--model-dir",
        str(root / "model"),
        "--steps",
        "20",
        "--eval-every",
        "20",
        "--batch-size",
        "256",
    )
    return Path(
        ue(
            "export", "--model-dir", str(root / "model"), "--export-base", str(root / "export")
        ).strip()
    )


def in_process_rate(version: Path, pattern: str, batch_rows: int) -> dict[str, Any]:
    """Rows/s of `serving_default` over all the rows, tensors built beforehand."""
    import tensorflow as tf

    from unified_embedding.exported.model import raw_batches, read_spec
    from unified_embedding.rows.reader import read_rows

    spec = read_spec(version)
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    batches = []
    for path in sorted(Path(pattern).parent.glob(Path(pattern).name)):
        batches += list(raw_batches(spec, read_rows(spec, path), batch_rows))
    serve(**batches[0])  # trace and warm up
    rows = sum(int(next(iter(b.values())).shape[0]) for b in batches)
    started = time.perf_counter()
    for batch in batches:
        serve(**batch)["probability"].numpy()
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_second": round(rows / seconds)}


def tree_rss(process: psutil.Process) -> tuple[int, int]:
    """(bytes of RSS summed over `process` and its descendants, how many processes)."""
    total, count = 0, 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
            count += 1
        except psutil.NoSuchProcess:
            pass
    return total, count


def job_rate(version: Path, pattern: str, output: Path, job_args: Sequence[str]) -> dict[str, Any]:
    """`ue score` end to end as its own process, with its process tree's peak RSS."""
    command = [
        sys.executable,
        "-m",
        "ue.cli",
        "score",
        "--model",
        str(version),
        "--input",
        pattern,
        "--output",
        str(output),
        *job_args,
    ]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(child.pid)
    peak, processes = 0, 0
    while child.poll() is None:
        try:
            rss, count = tree_rss(watched)
        except psutil.NoSuchProcess:
            break
        peak, processes = max(peak, rss), max(processes, count)
        time.sleep(0.1)
    stdout, stderr = child.communicate()
    seconds = time.perf_counter() - started
    if child.returncode:
        raise RuntimeError(f"ue score failed ({child.returncode}): {stderr[-3000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    rows = summary["rows_scored"]
    return {
        "args": shlex.join(job_args),
        "rows": rows,
        "rows_dead": summary["rows_dead"],
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
        "peak_rss_mb_summed": round(peak / 2**20),
        "processes": processes,
    }


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block-rows", type=int, default=4096, help="the job's default")
    parser.add_argument(
        "--job-args", default="", help="more `ue score` flags, e.g. '--direct_num_workers 2'"
    )
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)
    job_args = ["--block-rows", str(args.block_rows), *shlex.split(args.job_args)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "input").mkdir()
        pattern = write_inputs(root / "input", args.rows, SyntheticConfig(seed=args.seed))
        version = export_model(root, args.seed)
        (root / "one_block").mkdir()
        first = Path(sorted(Path(pattern).parent.glob(Path(pattern).name))[0])
        lines = first.read_bytes().splitlines(keepends=True)[: args.block_rows]
        (root / "one_block" / "part-00000.tsv").write_bytes(b"".join(lines))
        startup = job_rate(version, str(root / "one_block" / "*.tsv"), root / "s0", job_args)
        job = job_rate(version, pattern, root / "scores", job_args)
        in_process = in_process_rate(version, pattern, args.block_rows)
    after_startup = job["rows"] / max(job["seconds"] - startup["seconds"], 1e-9)
    result: dict[str, Any] = {
        "benchmark": "score",
        "rows": args.rows,
        "cores": os.cpu_count(),
        "job": job,
        "in_process": in_process,
        "vs_in_process": round(job["rows_per_second"] / in_process["rows_per_second"], 3),
        "startup_seconds": startup["seconds"],
        "vs_in_process_after_startup": round(after_startup / in_process["rows_per_second"], 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run()
