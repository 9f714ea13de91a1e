"""The preprocessing job: raw click logs -> train/eval block records, spec.json, stats.json.

Runs locally on the FnApiRunner by default and on Dataflow, Flink or Spark by runner flags:

    ue preprocess --input 'logs/day=*/part-*.tsv.gz' --schema criteo --output out/ \\
        [--budget 4MB] [--probes 4] [--eval-fraction 0.1] [--direct_num_workers 2 \\
        --direct_running_mode multi_processing]

Blocks of lines flow from read to write: read (byte ranges of uncompressed files) -> validate
(dead letters) -> hash with the shared function, split by content, one record per block and
split -> write; statistics are merged per block. No row is ever its own element, and no step
groups or reshuffles rows, so memory stays bounded whatever the input's size.

Outputs under --output: `train-*.tfrecord.gz`, `eval-*.tfrecord.gz` (block records, see
`unified_embedding.rows.records`), `dead_letters-*.jsonl`, `spec.json`, `stats.json` (rows read,
valid and dead in total and per input file), and `manifest.json` naming them (the job owns
the directory: see `outputs`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.filesystems import FileSystems

from pipelines.accounting import FilesRead, MergeFilesReadFn, notable_files
from pipelines.encode import SPLITS, STATS, EncodeBlockFn
from pipelines.jobs import (
    INPUT_HELP,
    add_row_rule_flags,
    check_dead_fraction,
    check_not_empty,
    check_row_rule_flags,
    default_runner,
)
from pipelines.outputs import JobOutputs
from pipelines.read import FILES_READ, ReadBlocks, check_headers, matched_files
from pipelines.sinks import WriteRecords
from pipelines.stats import BlockStats, MergeStatsFn, build_stats
from pipelines.validate import DEAD_LETTERS, ValidateBlocks
from unified_embedding.budget.plan import DATA_BUDGET, data_budget, parse_budget, plan_budget
from unified_embedding.budget.probes import with_probes
from unified_embedding.contract import artifacts
from unified_embedding.contract.schemas import load_schema
from unified_embedding.contract.spec import MAX_FIELD_CHARS, FeatureSpec
from unified_embedding.rows.headers import header_of
from unified_embedding.runtime.helpformat import DefaultsHelpFormatter

OUTPUTS = (
    artifacts.SPEC_FILE,
    artifacts.STATS_FILE,
    *(artifacts.record_glob(split) for split in SPLITS),
    artifacts.DEAD_LETTERS_GLOB,
)


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="ue preprocess",
        description=__doc__.split("\n")[0],
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--input", required=True, help=INPUT_HELP)
    parser.add_argument("--schema", required=True, help="criteo | avazu | frappe | FILE.json")
    parser.add_argument("--output", required=True, help="output directory (local or remote)")
    parser.add_argument("--eval-fraction", type=float, default=0.1, help="share of rows in eval")
    parser.add_argument(
        "--split-key", default=None, help="column deciding the split; None: the whole row"
    )
    parser.add_argument(
        "--budget",
        default=None,
        help="embedding parameter budget with units (200KB, 4MB, 1MiB) sizing the shared "
        "table; None: `ue train` sizes it from the data's distinct counts (stats.json's "
        "data_budget_bytes, budget.data_budget)",
    )
    parser.add_argument(
        "--probes",
        type=int,
        default=None,
        help="fingerprints recorded per hashed field: `ue train --probes` uses up to this "
        "many (4 lets `--probes auto` reach its maximum); None: the schema's",
    )
    parser.add_argument(
        "--max-field-chars",
        type=int,
        default=None,
        help="longer cells are dead; recorded in spec.json, so scoring and serving refuse them "
        f"too; None: the schema's (default {MAX_FIELD_CHARS})",
    )
    add_row_rule_flags(parser, "rows per record")
    args, beam_args = parser.parse_known_args(argv)
    if not 0.0 <= args.eval_fraction <= 1.0:
        parser.error(f"`--eval-fraction` should be in [0, 1]. Received: {args.eval_fraction}")
    check_row_rule_flags(parser, args)
    return args, beam_args


def load_spec(args: argparse.Namespace) -> FeatureSpec:
    spec = with_probes(load_schema(args.schema), args.probes)
    if args.max_field_chars is not None:
        fmt = dataclasses.replace(spec.input_format, max_field_chars=args.max_field_chars)
        spec = spec.replace(input_format=fmt)
    if args.budget:
        spec = spec.replace(table=plan_budget(spec, parse_budget(args.budget)).table)
    if args.split_key and args.split_key not in spec.input_format.columns:
        raise ValueError(f"`--split-key` is not a column. Received: `{args.split_key}`")
    return spec


class WriteStatsFn(beam.DoFn):
    """The merged BlockStats -> stats.json, after checking that no row was lost and that each
    of the `matched` input files was read in full. With `budget_from_data`, stats.json also
    carries `data_budget_bytes`: `budget.data_budget` of the merged distinct counts, the
    budget `ue train` spends when given none."""

    def __init__(
        self,
        spec_json: str,
        path: str,
        matched: Sequence[str],
        budget_from_data: bool = False,
        extra_columns: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self._spec_json = spec_json
        self._path = path
        self._matched = tuple(matched)
        self._budget_from_data = budget_from_data
        self._extra_columns = dict(extra_columns or {})

    def process(self, total: BlockStats, lines: Mapping[str, int]) -> Iterator[str]:
        spec = FeatureSpec.from_json(self._spec_json)
        read = FilesRead(self._matched, lines, self._extra_columns)
        stats = build_stats(spec, total, SPLITS, read)
        if self._budget_from_data:
            distinct = {f.name: stats["fields"][f.name]["approx_distinct"]
                        for f in spec.categorical_fields}  # fmt: skip
            stats[DATA_BUDGET] = data_budget(spec, distinct)
        with FileSystems.create(self._path) as f:
            f.write((json.dumps(stats, indent=2) + "\n").encode("utf-8"))
        yield self._path


def build_pipeline(
    pipeline: beam.Pipeline,
    spec: FeatureSpec,
    args: argparse.Namespace,
    files: Sequence[FileMetadata],
    extra_columns: Mapping[str, tuple[str, ...]] | None = None,
) -> None:
    output = args.output.rstrip("/")
    spec_json = spec.to_json()
    total_bytes = sum(f.size_in_bytes for f in files)
    read = pipeline | "Read" >> ReadBlocks(
        files, header_of(spec.input_format), args.block_rows, total_bytes
    )
    checked = read.blocks | "Validate" >> ValidateBlocks(spec)
    encoded = checked.valid | "Encode" >> beam.ParDo(
        EncodeBlockFn(spec_json, args.split_key, args.eval_fraction)
    ).with_outputs(STATS, *SPLITS)
    for split in SPLITS:
        _ = encoded[split] | f"Write{split.capitalize()}" >> WriteRecords(
            f"{output}/{artifacts.record_prefix(split)}"
        )
    _ = checked[DEAD_LETTERS] | "WriteDeadLetters" >> beam.io.WriteToText(
        f"{output}/{artifacts.DEAD_LETTERS_PREFIX}", file_name_suffix=artifacts.DEAD_LETTERS_SUFFIX
    )
    lines = read[FILES_READ] | "MergeFilesRead" >> beam.CombineGlobally(MergeFilesReadFn())
    stats_path, matched = f"{output}/{artifacts.STATS_FILE}", [f.path for f in files]
    _ = (
        encoded[STATS]
        | "MergeStats" >> beam.CombineGlobally(MergeStatsFn())
        | "WriteStats"
        >> beam.ParDo(
            WriteStatsFn(spec_json, stats_path, matched, not args.budget, extra_columns),
            beam.pvalue.AsSingleton(lines),
        )
    )


def summary(stats: Mapping[str, Any], output: str) -> str:
    """stats.json for a person: rows read, valid and dead by reason, split sizes, the input
    files (a count, and the few with dead rows or none), the output files."""
    output = output.rstrip("/")
    read, dead = stats["rows_read"], stats["rows_dead"]
    share = f" ({dead / read:.1%})" if read else ""
    reasons = sorted(
        ((k, v) for k, v in stats["dead_by_reason"].items() if v), key=lambda kv: -kv[1]
    )
    splits = stats["rows_by_split"]
    lines = [
        ("rows read", f"{read:,}"),
        ("  valid", f"{stats['rows_valid']:,}"),
        ("  dead", f"{dead:,}"),
        *((f"    {reason}", f"{count:,}") for reason, count in reasons),
        *((f"{split} split", f"{splits.get(split, 0):,}") for split in SPLITS),
        ("input files", f"{len(stats['files']):,}"),
    ]
    width = max(len(label) for label, _ in lines) + 2
    files = [
        *(f"{split} records: {output}/{artifacts.record_glob(split)}" for split in SPLITS),
        f"dead letters: {output}/{artifacts.DEAD_LETTERS_GLOB}" if dead else "dead letters: none",
        f"spec, stats: {output}/{artifacts.SPEC_FILE}, {output}/{artifacts.STATS_FILE}",
    ]
    table = [f"{label:<{width}}{value:>12}" for label, value in lines]
    table[2] += share
    return "\n".join([*table, *notable_files(stats["files"]), *files])


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the job to completion and returns stats.json's contents; raises when rows would
    be lost, an input cannot be read, input and output overlap, the output directory holds
    files no manifest names, too many rows are dead-lettered, or none was read."""
    args, beam_args = parse_args(argv)
    spec = load_spec(args)
    files = matched_files(args.input)
    output = args.output.rstrip("/")
    outputs = JobOutputs("preprocess", output, OUTPUTS)
    outputs.check_input(args.input, files)
    extra_columns = check_headers(files, spec.input_format)  # a missing column fails here
    options = default_runner(beam_args, sum(f.size_in_bytes for f in files))
    with outputs.writing(args.overwrite, spec.fingerprint):
        with FileSystems.create(f"{output}/{artifacts.SPEC_FILE}") as f:
            f.write(spec.to_json().encode("utf-8"))
        with beam.Pipeline(options=options) as pipeline:
            build_pipeline(pipeline, spec, args, files, extra_columns)
    with FileSystems.open(f"{output}/{artifacts.STATS_FILE}") as f:
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
    check_dead_fraction(stats, args.max_dead_fraction, output)
    check_not_empty(stats, args.allow_empty, args.input)
    return stats


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    run()
