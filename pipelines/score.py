"""The batch scoring job: raw rows -> P(click) per row from an exported SavedModel.

Runs locally on the FnApiRunner by default and on Dataflow, Flink or Spark by runner flags:

    ue score --model export/ --input 'candidates/*.tsv.gz' --output scores/ \\
        [--key-columns id] [--format parquet] [--explain-top-k 3] [beam flags]

Blocks of lines flow from read to write as in `ue preprocess`, with the same reader, the same
validation rules (labels optional: an empty label cell is allowed) and the same dead letters:
read (byte ranges of uncompressed files) -> validate -> RunInference (one SavedModel call per
block, the model loaded once per worker process) -> one Arrow table per block -> CSV or
Parquet shards. Statistics are merged per block; no step groups or reshuffles rows.

Outputs under --output: `scores-*.csv` or `scores-*.parquet`, `dead_letters-*.jsonl`,
`stats.json` (rows read / scored / dead by reason, in total and per input file, the model
version, and AUC, log loss and calibration over the rows that carry a label), and
`manifest.json` naming them (the job owns the directory: see `outputs`).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import apache_beam as beam
from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import PredictionResult, RunInference

from pipelines.accounting import FilesRead, MergeFilesReadFn, check_files, files_document
from pipelines.inference import BlockModelHandler, BlockPredictions, ModelVersion, resolve_model
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
from pipelines.score_output import DEFAULT_KEYS, FORMATS, ScoreTable, WriteTables
from pipelines.score_stats import BlockScores, MergeScoreStatsFn, ScoreStats
from pipelines.validate import DEAD_LETTERS, ValidateBlocks
from unified_embedding.contract import artifacts
from unified_embedding.contract.schemas import load_schema
from unified_embedding.contract.spec import FeatureSpec, SpecError
from unified_embedding.rows.headers import header_of
from unified_embedding.rows.validation import CheckedBlock
from unified_embedding.runtime.helpformat import DefaultsHelpFormatter

STATS = "stats"


def outputs_of(output: str, file_format: str) -> JobOutputs:
    """The files the job writes: stats.json, score shards of `file_format`, dead letters."""
    scores = f"{artifacts.SCORES_PREFIX}-*{FORMATS[file_format].suffix}"
    return JobOutputs("score", output, (artifacts.STATS_FILE, scores, artifacts.DEAD_LETTERS_GLOB))


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="ue score",
        description=__doc__.split("\n")[0],
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model", required=True, help="an export base (its newest version) or a version folder"
    )
    parser.add_argument("--input", required=True, help=INPUT_HELP)
    parser.add_argument("--output", required=True, help="output directory (local or remote)")
    parser.add_argument(
        "--schema",
        default=None,
        help="input format: criteo | avazu | frappe | FILE.json; None: the model's spec.json",
    )
    parser.add_argument(
        "--key-columns",
        default=",".join(DEFAULT_KEYS),
        help="comma-separated output keys: input columns, or `source` (the file) and `offset` "
        "(the row's byte offset in it)",
    )
    parser.add_argument("--format", default="csv", choices=sorted(FORMATS), help="score shards")
    parser.add_argument(
        "--explain-top-k", type=int, default=0, help="add each row's K strongest attention pairs"
    )
    parser.add_argument(
        "--op-threads",
        type=int,
        default=0,
        help="TensorFlow threads per worker process (0: its default); 1 with a worker per core",
    )
    add_row_rule_flags(parser, "rows per model call")
    args, beam_args = parser.parse_known_args(argv)
    check_row_rule_flags(parser, args)
    if args.op_threads < 0:
        parser.error(f"`--op-threads` should be non-negative. Received: {args.op_threads}")
    if args.explain_top_k < 0:
        parser.error(f"`--explain-top-k` should be non-negative. Received: {args.explain_top_k}")
    args.key_columns = [c.strip() for c in args.key_columns.split(",") if c.strip()]
    return args, beam_args


def input_spec(model: ModelVersion, schema: str | None) -> FeatureSpec:
    """The model's spec, reading the input format (and label column) of `schema` if given:
    the model's fields must be columns of that format; their kinds stay the model's."""
    if schema is None:
        return model.spec
    data = load_schema(schema)
    missing = [n for n in model.spec.field_names if n not in data.input_format.columns]
    if missing:
        raise SpecError(f"`--schema {schema}` lacks the model's fields {missing}")
    return model.spec.replace(input_format=data.input_format, label=data.label)


class SummarizeBlockFn(beam.DoFn):
    """PredictionResult(CheckedBlock, BlockPredictions) -> the block's output table (main,
    when it has rows) and its BlockScores (`stats`)."""

    def __init__(self, table: ScoreTable) -> None:
        self._table = table

    def process(self, result: PredictionResult) -> Iterator[Any]:
        checked = cast(CheckedBlock, result.example)
        predictions = cast(BlockPredictions, result.inference)
        counts = checked.dead_counts()
        yield beam.pvalue.TaggedOutput(
            STATS,
            BlockScores.of(
                checked.lines, counts, checked.labels, predictions.probability, checked.block.source
            ),
        )
        if len(checked.rows):
            yield self._table.table(checked, predictions)


class WriteStatsFn(beam.DoFn):
    """The merged ScoreStats -> stats.json, after checking that no row was lost and that each
    of the `matched` input files was read in full."""

    def __init__(
        self,
        path: str,
        header: dict[str, Any],
        matched: Sequence[str],
        extra_columns: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self._path = path
        self._header = header
        self._matched = tuple(matched)
        self._extra_columns = dict(extra_columns or {})

    def process(self, total: ScoreStats, lines: Mapping[str, int]) -> Iterator[str]:
        read = FilesRead(self._matched, lines, self._extra_columns)
        stats = build_stats(total, self._header, read)
        with FileSystems.create(self._path) as f:
            f.write((json.dumps(stats, indent=2) + "\n").encode("utf-8"))
        yield self._path


def build_stats(
    total: ScoreStats, header: dict[str, Any], read: FilesRead | None = None
) -> dict[str, Any]:
    """The stats.json document; raises if scored + dead-lettered rows != rows read, and, given
    what the reader `read`, unless each matched file was read in full (`accounting`)."""
    total.check_rows()
    t = total.totals
    if read is not None:
        check_files(t.files, read, "scored")
    return {
        "rows_read": t.rows_read,
        "rows_scored": t.rows_scored,
        "rows_dead": sum(t.dead.values()),
        "dead_by_reason": dict(t.dead),
        "rows_labelled": t.labelled,
        "mean_probability": t.sum_probability / t.rows_scored if t.rows_scored else None,
        "metrics": total.metrics(),
        **header,
        "files": files_document(t.files, "rows_scored", read),
    }


def build_pipeline(
    pipeline: beam.Pipeline,
    model: ModelVersion,
    spec: FeatureSpec,
    args: argparse.Namespace,
    files: Sequence[FileMetadata],
    extra_columns: Mapping[str, tuple[str, ...]] | None = None,
) -> None:
    output = args.output.rstrip("/")
    table = ScoreTable(spec, args.key_columns, args.explain_top_k)
    header = {
        "model": {"path": model.path, "version": model.version,
                  "spec_fingerprint": model.spec.fingerprint},
        "output": {"format": args.format, "columns": table.schema.names},
    }  # fmt: skip
    total_bytes = sum(f.size_in_bytes for f in files)
    read = pipeline | "Read" >> ReadBlocks(
        files, header_of(spec.input_format), args.block_rows, total_bytes
    )
    checked = read.blocks | "Validate" >> ValidateBlocks(spec, label_required=False)
    handler = BlockModelHandler(model.path, model.spec, args.explain_top_k, args.op_threads)
    scored = (
        checked.valid
        | "Score" >> RunInference(handler)
        | "Summarize" >> beam.ParDo(SummarizeBlockFn(table)).with_outputs(STATS, main="tables")
    )
    _ = scored.tables | "WriteScores" >> WriteTables(
        f"{output}/{artifacts.SCORES_PREFIX}", args.format, table.schema
    )
    _ = checked[DEAD_LETTERS] | "WriteDeadLetters" >> beam.io.WriteToText(
        f"{output}/{artifacts.DEAD_LETTERS_PREFIX}", file_name_suffix=artifacts.DEAD_LETTERS_SUFFIX
    )
    lines = read[FILES_READ] | "MergeFilesRead" >> beam.CombineGlobally(MergeFilesReadFn())
    stats_path, matched = f"{output}/{artifacts.STATS_FILE}", [f.path for f in files]
    _ = (
        scored[STATS]
        | "MergeStats" >> beam.CombineGlobally(MergeScoreStatsFn())
        | "WriteStats"
        >> beam.ParDo(
            WriteStatsFn(stats_path, header, matched, extra_columns),
            beam.pvalue.AsSingleton(lines),
        )
    )


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the job to completion and returns stats.json's contents; raises when rows would
    be lost, an input cannot be read, input and output overlap, the output directory holds
    files no manifest names, too many rows are dead-lettered, or none was read."""
    args, beam_args = parse_args(argv)
    model = resolve_model(args.model)
    spec = input_spec(model, args.schema)
    ScoreTable(spec, args.key_columns, args.explain_top_k)  # bad flags fail before the job
    files = matched_files(args.input)
    output = args.output.rstrip("/")
    outputs = outputs_of(output, args.format)
    outputs.check_input(args.input, files)
    extra_columns = check_headers(files, spec.input_format)  # a missing column fails here
    options = default_runner(beam_args, sum(f.size_in_bytes for f in files))
    with (
        outputs.writing(args.overwrite, model.spec.fingerprint),
        beam.Pipeline(options=options) as pipeline,
    ):
        build_pipeline(pipeline, model, spec, args, files, extra_columns)
    with FileSystems.open(f"{output}/{artifacts.STATS_FILE}") as f:
        stats: dict[str, Any] = json.loads(f.read().decode("utf-8"))
    logging.info(
        "score: model version %s; %d rows read, %d scored, %d dead-lettered %s; metrics %s",
        stats["model"]["version"],
        stats["rows_read"],
        stats["rows_scored"],
        stats["rows_dead"],
        {k: v for k, v in stats["dead_by_reason"].items() if v},
        stats["metrics"],
    )
    check_dead_fraction(stats, args.max_dead_fraction, output)
    check_not_empty(stats, args.allow_empty, args.input)
    return stats


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    run()
