"""The preprocessing job: raw click logs -> train/eval block records, spec.json, stats.json.

Runs locally on the FnApiRunner by default and on Dataflow, Flink or Spark by runner flags:

    ue preprocess --input 'logs/day=*/part-*.tsv.gz' --schema criteo --output out/ \\
        [--budget 4MB] [--eval-fraction 0.1] [--direct_num_workers 2 \\
        --direct_running_mode multi_processing]

Outputs under --output: `train-*.tfrecord.gz`, `eval-*.tfrecord.gz` (block records, see
`unified_embedding.records`), `dead_letters-*.jsonl`, `spec.json`, `stats.json`.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.transforms.stats import ApproximateUnique

from pipelines.encode import FINGERPRINTS, EncodeBlocks
from pipelines.read import ReadLines
from pipelines.stats import RowStatsFn, build_stats
from pipelines.validate import DEAD_LETTERS, ValidateFn
from unified_embedding.budget import parse_budget, plan_budget
from unified_embedding.schemas import load_schema
from unified_embedding.spec import FeatureSpec

SPLITS = ("train", "eval")
_DISTINCT_SAMPLE = 16_384  # ApproximateUnique sample size: ~1.6% standard error


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="ue preprocess", description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True, help="file glob (TSV/CSV, .gz ok)")
    parser.add_argument("--schema", required=True, help="criteo | avazu | frappe | FILE.json")
    parser.add_argument("--output", required=True, help="output directory (local or remote)")
    parser.add_argument("--eval-fraction", type=float, default=0.1)
    parser.add_argument(
        "--split-key", default=None, help="column deciding the split (default: the whole row)"
    )
    parser.add_argument(
        "--budget", default=None, help="size the shared table from a budget, e.g. 4MB"
    )
    parser.add_argument("--block-rows", type=int, default=4096, help="rows per record")
    parser.add_argument("--max-field-chars", type=int, default=1000)
    args, beam_args = parser.parse_known_args(argv)
    if not 0.0 <= args.eval_fraction <= 1.0:
        parser.error(f"`--eval-fraction` should be in [0, 1]. Received: {args.eval_fraction}")
    return args, beam_args


def load_spec(args: argparse.Namespace) -> FeatureSpec:
    spec = load_schema(args.schema)
    if args.budget:
        spec = spec.replace(table=plan_budget(spec, parse_budget(args.budget)).table)
    if args.split_key and args.split_key not in spec.input_format.columns:
        raise ValueError(f"`--split-key` is not a column. Received: `{args.split_key}`")
    return spec


def split_of(row: Any, partitions: int, eval_fraction: float) -> int:
    """0 = train, 1 = eval; a function of the row's content only."""
    return int(row.split_key % 1_000_000 < eval_fraction * 1_000_000)


class SplitFn(beam.PartitionFn):
    def partition_for(self, row: Any, partitions: int, eval_fraction: float) -> int:
        return split_of(row, partitions, eval_fraction)


def reason_of(dead_letter: str) -> str:
    return str(json.loads(dead_letter)["reason"])


class WriteStatsFn(beam.DoFn):
    """Assembles stats.json from the side inputs, checks the invariant, writes the file."""

    def __init__(self, spec_json: str) -> None:
        self._spec_json = spec_json

    def process(
        self,
        path: str,
        rows_read: int,
        row_stats: list[int],
        dead: dict[str, int],
        split_rows: dict[str, int],
        distinct: dict[str, int],
    ) -> Iterator[str]:
        spec = FeatureSpec.from_json(self._spec_json)
        split_rows = {s: split_rows.get(s, 0) for s in SPLITS}
        stats = build_stats(spec, rows_read, row_stats, dead, split_rows, distinct)
        with FileSystems.create(path) as f:
            f.write((json.dumps(stats, indent=2) + "\n").encode("utf-8"))
        yield path


def build_pipeline(pipeline: beam.Pipeline, spec: FeatureSpec, args: argparse.Namespace) -> None:
    fmt = spec.input_format
    header = fmt.delimiter.join(fmt.columns).encode("utf-8") if fmt.header else None
    spec_json = spec.to_json()
    output = args.output.rstrip("/")

    lines = pipeline | "ReadLines" >> ReadLines(args.input, header)
    checked = lines | "Validate" >> beam.ParDo(
        ValidateFn(spec_json, args.max_field_chars, args.split_key)
    ).with_outputs(DEAD_LETTERS, main="valid")
    valid, dead = checked.valid, checked[DEAD_LETTERS]
    parts = valid | "Split" >> beam.Partition(SplitFn(), len(SPLITS), args.eval_fraction)

    fingerprints, counts = [], []
    for name, rows in zip(SPLITS, parts, strict=True):
        title = name.capitalize()
        encoded = rows | f"Encode{title}" >> EncodeBlocks(spec, name, args.block_rows)
        _ = encoded.records | f"Write{title}" >> beam.io.WriteToTFRecord(
            f"{output}/{name}",
            file_name_suffix=".tfrecord.gz",
            compression_type=CompressionTypes.GZIP,
        )
        fingerprints.append(encoded[FINGERPRINTS])
        counts.append(
            rows
            | f"Count{title}" >> beam.combiners.Count.Globally()
            | f"Key{title}" >> beam.Map(lambda n, split=name: (split, n))
        )
    _ = dead | "WriteDeadLetters" >> beam.io.WriteToText(
        f"{output}/dead_letters", file_name_suffix=".jsonl"
    )

    rows_read = lines | "CountRead" >> beam.combiners.Count.Globally()
    row_stats = valid | "RowStats" >> beam.CombineGlobally(RowStatsFn(len(spec.fields)))
    dead_counts = (
        dead
        | "DeadReason" >> beam.Map(reason_of)
        | "CountDeadReasons" >> beam.combiners.Count.PerElement()
    )
    split_counts = counts | "FlattenCounts" >> beam.Flatten()
    distinct = (
        fingerprints
        | "FlattenFingerprints" >> beam.Flatten()
        | "ApproximateDistinct" >> ApproximateUnique.PerKey(size=_DISTINCT_SAMPLE)
    )
    _ = (
        pipeline
        | "StatsPath" >> beam.Create([f"{output}/stats.json"])
        | "WriteStats"
        >> beam.ParDo(
            WriteStatsFn(spec_json),
            beam.pvalue.AsSingleton(rows_read),
            beam.pvalue.AsSingleton(row_stats),
            beam.pvalue.AsDict(dead_counts),
            beam.pvalue.AsDict(split_counts),
            beam.pvalue.AsDict(distinct),
        )
    )


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the job to completion and returns stats.json's contents."""
    args, beam_args = parse_args(argv)
    spec = load_spec(args)
    options = PipelineOptions(beam_args)
    if options.view_as(StandardOptions).runner is None:
        # The DirectRunner's default (Prism) downloads a binary; FnApiRunner is in the wheel.
        options.view_as(StandardOptions).runner = "FnApiRunner"
    output = args.output.rstrip("/")
    if not FileSystems.exists(output):
        FileSystems.mkdirs(output)
    with FileSystems.create(f"{output}/spec.json") as f:
        f.write(spec.to_json().encode("utf-8"))
    with beam.Pipeline(options=options) as pipeline:
        build_pipeline(pipeline, spec, args)
    with FileSystems.open(f"{output}/stats.json") as f:
        stats: dict[str, Any] = json.loads(f.read().decode("utf-8"))
    logging.info(
        "preprocess: %d rows read, %d valid, %d dead-lettered %s; train %d, eval %d",
        stats["rows_read"],
        stats["rows_valid"],
        stats["rows_dead"],
        {k: v for k, v in stats["dead_by_reason"].items() if v},
        stats["rows_by_split"]["train"],
        stats["rows_by_split"]["eval"],
    )
    return stats


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    run()
