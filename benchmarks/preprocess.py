"""Throughput of the preprocessing job vs a naive one-`tf.train.Example`-per-row pipeline.

Generates `--rows` Criteo-format rows into 4 files, then times, end to end (pipeline startup
included): `pipelines.preprocess.run` on the single-process FnApiRunner, the same job with two
worker processes, and a baseline that writes one Example per row with the same hashing.
Prints one JSON line. Peak RSS is the parent process's (workers of the 2-process run excluded).

Run: `.venv/bin/python benchmarks/preprocess.py --rows 200000`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import itertools
import json
import logging
import resource
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import preprocess
from pipelines.encode import encode_rows
from pipelines.read import ReadLines
from pipelines.validate import DEAD_LETTERS, ValidateFn
from unified_embedding.records import LABEL
from unified_embedding.schemas import load_schema
from unified_embedding.spec import FeatureSpec
from unified_embedding.synthetic import SyntheticConfig, write_tsv
from unified_embedding.validation import ValidRow

INPUT_FILES = 4  # so two workers have files to read in parallel
BLOCK_ROWS = 4096  # the job's `--block-rows` default; also the baseline's batch size
MAX_FIELD_CHARS = 1000  # the job's `--max-field-chars` default


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


class PerRowExamplesFn(beam.DoFn):
    """A batch of rows -> one serialized `tf.train.Example` per row (the naive layout)."""

    def __init__(self, spec_json: str) -> None:
        self._spec_json = spec_json

    def setup(self) -> None:
        self._spec = FeatureSpec.from_json(self._spec_json)

    def process(self, rows: list[ValidRow]) -> Iterator[bytes]:
        columns = encode_rows(self._spec, rows)
        per_row = {name: _per_row_lists(value) for name, value in columns.items()}
        for i, row in enumerate(rows):
            feature = {LABEL: tf.train.Feature(float_list=tf.train.FloatList(value=[row.label]))}
            for f in self._spec.fields:
                value = per_row[f.name][i]
                if f.kind == "numeric":
                    feature[f.name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
                else:
                    feature[f.name] = tf.train.Feature(int64_list=tf.train.Int64List(value=value))
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            yield example.SerializeToString()


def _per_row_lists(value: Any) -> list[Any]:
    """An `encode_rows` column -> one Python value per row (a flat list for multi-valued)."""
    if isinstance(value, tuple):
        flat, lengths = value
        return [np.ravel(v).tolist() for v in np.split(flat, np.cumsum(lengths)[:-1])]
    return list(value.tolist())


def run_baseline(spec: FeatureSpec, pattern: str, output: str) -> None:
    """ReadLines -> Validate -> batches -> one Example per row -> gzip TFRecord files."""
    fmt = spec.input_format
    header = fmt.delimiter.join(fmt.columns).encode("utf-8") if fmt.header else None
    spec_json = spec.to_json()
    options = PipelineOptions(["--runner=FnApiRunner"])
    with beam.Pipeline(options=options) as pipeline:
        checked = (
            pipeline
            | "ReadLines" >> ReadLines(pattern, header)
            | "Validate"
            >> beam.ParDo(ValidateFn(spec_json, MAX_FIELD_CHARS, None)).with_outputs(
                DEAD_LETTERS, main="valid"
            )
        )
        _ = (
            checked.valid
            | "Batch" >> beam.BatchElements(min_batch_size=256, max_batch_size=BLOCK_ROWS)
            | "PerRowExamples" >> beam.ParDo(PerRowExamplesFn(spec_json))
            | "WriteExamples"
            >> beam.io.WriteToTFRecord(
                f"{output}/examples",
                file_name_suffix=".tfrecord.gz",
                compression_type=CompressionTypes.GZIP,
            )
        )


def _measure(rows: int, seconds: float, output: Path, patterns: Sequence[str]) -> dict[str, float]:
    size = sum(p.stat().st_size for pattern in patterns for p in output.glob(pattern))
    return {
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
        "output_mb": round(size / 2**20, 2),
    }


def _time_job(rows: int, pattern: str, output: Path, beam_args: Sequence[str]) -> dict[str, float]:
    started = time.perf_counter()
    stats = preprocess.run(
        ["--input", pattern, "--schema", "criteo", "--output", str(output), *beam_args]
    )
    seconds = time.perf_counter() - started
    if stats["rows_valid"] != rows:
        raise RuntimeError(f"expected {rows} valid rows, the job reported {stats['rows_valid']}")
    return _measure(rows, seconds, output, ["train-*.tfrecord.gz", "eval-*.tfrecord.gz"])


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "input").mkdir()
        pattern = write_inputs(root / "input", args.rows, SyntheticConfig(seed=args.seed))
        one = _time_job(args.rows, pattern, root / "one", [])
        two = _time_job(
            args.rows,
            pattern,
            root / "two",
            ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"],
        )
        started = time.perf_counter()
        run_baseline(load_schema("criteo"), pattern, str(root / "baseline"))
        baseline_seconds = time.perf_counter() - started
        baseline = _measure(
            args.rows, baseline_seconds, root / "baseline", ["examples-*.tfrecord.gz"]
        )
    result: dict[str, Any] = {
        "benchmark": "preprocess",
        "rows": args.rows,
        "block_records_1_process": one,
        "block_records_2_workers": two,
        "baseline_per_row_examples": baseline,
        "speedup_vs_baseline": round(one["rows_per_second"] / baseline["rows_per_second"], 2),
        "speedup_2_workers_vs_1_process": round(two["rows_per_second"] / one["rows_per_second"], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run()
