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
version, and over the rows that carry a label the metrics `ue evaluate` reports: AUC, log
loss, calibration, ECE), and `manifest.json` naming them (the job owns the directory: see
`outputs`).

This module imports neither Beam nor TensorFlow until the flags are parsed (`main`, `run`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pipelines.options import (
    ScoreOptions,
    check_local_input,
    parse,
    quiet_logging,
    with_absolute_paths,
)
from unified_embedding.contract import artifacts
from unified_embedding.contract.schemas import load_schema
from unified_embedding.contract.spec import FeatureSpec, SpecError
from unified_embedding.exported.versions import locate
from unified_embedding.runtime.command import run_command

if TYPE_CHECKING:
    import apache_beam as beam

    from pipelines.inference import ModelVersion
    from pipelines.jobs import JobInputs

PROG = "ue score"
SUMMARY_KEYS = ("rows_read", "rows_scored", "rows_dead", "dead_by_reason", "metrics")


def parse_args(argv: Sequence[str] | None) -> tuple[ScoreOptions, list[str]]:
    return parse(ScoreOptions, PROG, __doc__.split("\n")[0], argv)


def outputs(file_format: str) -> tuple[str, ...]:
    """The files the job writes: stats.json, score shards of `file_format`, dead letters."""
    from pipelines.score_output import FORMATS

    scores = f"{artifacts.SCORES_PREFIX}-*{FORMATS[file_format].suffix}"
    return (artifacts.STATS_FILE, scores, artifacts.DEAD_LETTERS_GLOB)


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


def build_pipeline(
    pipeline: beam.Pipeline,
    model: ModelVersion,
    spec: FeatureSpec,
    options: ScoreOptions,
    inputs: JobInputs,
) -> None:
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference

    from pipelines.accounting import MergeFn
    from pipelines.inference import BlockModelHandler
    from pipelines.jobs import ReadRows, WriteDocuments
    from pipelines.score_output import STATS, ScoreTable, SummarizeBlockFn, WriteTables
    from pipelines.score_stats import ScoreDocuments, ScoreStats

    output = options.output.rstrip("/")
    table = ScoreTable(spec, options.keys, options.explain_top_k)
    header = {
        "model": model.describe(),
        "output": {"format": options.format, "columns": table.schema.names},
    }
    rows = pipeline | "Rows" >> ReadRows(
        spec, inputs, options.block_rows, output, label_required=False
    )
    handler = BlockModelHandler(model.path, model.spec, options.explain_top_k, options.op_threads)
    scored = (
        rows.valid
        | "Score" >> RunInference(handler)
        | "Summarize" >> beam.ParDo(SummarizeBlockFn(table)).with_outputs(STATS, main="tables")
    )
    _ = scored.tables | "WriteScores" >> WriteTables(
        f"{output}/{artifacts.SCORES_PREFIX}", options.format, table.schema
    )
    _ = scored[STATS] | "Stats" >> WriteDocuments(
        MergeFn(ScoreStats), ScoreDocuments(header), output, inputs, rows.lines
    )


def run_options(options: ScoreOptions, beam_args: Sequence[str]) -> dict[str, Any]:
    """Runs the job (`jobs.run_job`) and returns stats.json's contents; local paths are made
    absolute first (`with_absolute_paths`), for workers in another working directory."""
    from pipelines.inference import resolve_model
    from pipelines.jobs import Job, run_job
    from pipelines.score_output import ScoreTable

    options = with_absolute_paths(options)
    model = resolve_model(options.model)
    spec = input_spec(model, options.schema)
    ScoreTable(spec, options.keys, options.explain_top_k)  # bad flags fail before the job
    job = Job(
        "score",
        options,
        spec.input_format,
        outputs(options.format),
        lambda pipeline, inputs: build_pipeline(pipeline, model, spec, options, inputs),
        lambda stats: model.spec.fingerprint,
    )
    return run_job(job, beam_args)


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parses the flags, runs the job to completion and returns stats.json's contents; raises
    when rows would be lost, an input cannot be read, input and output overlap, the output
    directory holds files no manifest names, too many rows are dead-lettered, or none was
    read."""
    return run_options(*parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """`ue score`: one JSON line on stdout (the model's version, the rows, the metrics), a
    warning on stderr for each metric not to be read as usual."""

    def work() -> int:
        options, beam_args = parse_args(sys.argv[1:] if argv is None else argv)
        check_local_input(options.input)
        if "://" not in options.model:
            locate(options.model)  # a local model path that names no model fails here
        quiet_logging(options.verbose)
        from unified_embedding.metrics.summary import metric_warnings
        from unified_embedding.runtime.startup import import_beam_quietly

        import_beam_quietly()
        stats = run_options(options, beam_args)
        line = {"model_version": stats["model"]["version"]}
        print(json.dumps({**line, **{k: stats[k] for k in SUMMARY_KEYS}}, allow_nan=False))
        for warning in metric_warnings(stats["metrics"]):
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
        return 0

    return run_command(PROG, work)


if __name__ == "__main__":
    sys.exit(main())
