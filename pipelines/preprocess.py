"""The preprocessing job: raw click logs -> train/eval block records, spec.json, stats.json.

Runs locally on the FnApiRunner by default and on Dataflow, Flink or Spark by runner flags:

    ue preprocess --input 'logs/day=*/part-*.tsv.gz' --schema criteo --output out/ \\
        [--budget 4MB] [--probes 4] [--eval-fraction 0.1] [--direct_num_workers 2 \\
        --direct_running_mode multi_processing]
    ue preprocess --input 'logs/day=06/*' --eval-input 'logs/day=07/*' ...   # eval: the next day
    ue preprocess --input 'logs/*' --split-by hour --eval-from 14102200 ...  # eval: from then on

Blocks of lines flow from read to write: read (byte ranges of uncompressed files) -> validate
(dead letters) -> hash with the shared function, split (`split`: by content, by file or by a
column), one record per block and split -> write; statistics are merged per block. No row is
ever its own element, and no step groups or reshuffles rows, so memory stays bounded whatever
the input's size.

Outputs under --output: `train-*.tfrecord.gz`, `eval-*.tfrecord.gz` (block records, see
`unified_embedding.rows.records`), `dead_letters-*.jsonl`, `spec.json` (with the shared table
`ue train` uses: `--budget`'s, or sized from the data's distinct counts), `stats.json` (rows
read, valid and dead in total and per input file of every glob, distinct counts, how the split
was made) and `manifest.json` naming them (the job owns the directory: see `outputs`).

This module imports neither Beam nor TensorFlow until the flags are parsed (`main`, `run`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipelines.options import (
    PreprocessOptions,
    check_local_input,
    parse,
    quiet_logging,
    with_absolute_paths,
)
from unified_embedding.budget.plan import parse_budget, plan_budget
from unified_embedding.budget.probes import with_probes
from unified_embedding.contract import artifacts
from unified_embedding.contract.schemas import load_schema
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.runtime.command import run_command

if TYPE_CHECKING:
    import apache_beam as beam

    from pipelines.jobs import JobInputs
    from pipelines.split import Split

PROG = "ue preprocess"
OUTPUTS = (
    artifacts.SPEC_FILE,
    artifacts.STATS_FILE,
    *(artifacts.record_glob(split) for split in artifacts.SPLITS),
    artifacts.DEAD_LETTERS_GLOB,
)
SUMMARY_KEYS = ("rows_read", "rows_valid", "rows_dead", "dead_by_reason", "rows_by_split")


def parse_args(argv: Sequence[str] | None) -> tuple[PreprocessOptions, list[str]]:
    return parse(PreprocessOptions, PROG, __doc__.split("\n")[0], argv)


def load_spec(options: PreprocessOptions) -> FeatureSpec:
    """The schema's spec with the job's probes, cell limit and `--budget` table (without a
    budget, the table is sized from the data when the job ends)."""
    spec = with_probes(load_schema(options.schema), options.probes)
    if options.max_field_chars is not None:
        fmt = dataclasses.replace(spec.input_format, max_field_chars=options.max_field_chars)
        spec = spec.replace(input_format=fmt)
    if options.budget:
        spec = spec.replace(table=plan_budget(spec, parse_budget(options.budget)).table)
    if options.split_key and options.split_key not in spec.input_format.columns:
        raise ValueError(f"`--split-key` is not a column. Received: `{options.split_key}`")
    by, fmt = options.split_by, spec.input_format
    if by is not None and (by not in fmt.columns or by == spec.label):
        raise ValueError(
            f"`--split-by` should be a column of the input format other than the label "
            f"`{spec.label}` (one of {list(fmt.columns)}). Received: `--split-by {by}`"
        )
    return spec


def split_of(options: PreprocessOptions, spec: FeatureSpec, inputs: JobInputs) -> Split:
    """How the job chooses its eval rows: by `--eval-input`'s files, by `--split-by`'s
    column, or at random (`split`)."""
    from pipelines.split import ColumnSplit, FileSplit, RandomSplit

    if options.eval_input is not None:
        return FileSplit(
            frozenset(inputs.globs["--eval-input"]),
            options.input,
            options.eval_input,
            len(inputs.globs["--input"]),
        )
    if options.split_by is not None and options.eval_from is not None:
        return ColumnSplit(options.split_by, options.eval_from, spec.input_format.missing)
    assert options.eval_fraction is not None  # set by PreprocessOptions for a random split
    return RandomSplit(options.eval_fraction, options.split_key)


def build_pipeline(
    pipeline: beam.Pipeline, spec: FeatureSpec, options: PreprocessOptions, inputs: JobInputs
) -> None:
    import apache_beam as beam

    from pipelines.accounting import MergeFn
    from pipelines.encode import STATS, EncodeBlockFn
    from pipelines.jobs import ReadRows, WriteDocuments
    from pipelines.sinks import WriteRecords
    from pipelines.stats import BlockStats, PreprocessDocuments

    output = options.output.rstrip("/")
    spec_json = spec.to_json()
    chooser = split_of(options, spec, inputs)
    rows = pipeline | "Rows" >> ReadRows(spec, inputs, options.block_rows, output)
    encoded = rows.valid | "Encode" >> beam.ParDo(
        EncodeBlockFn(spec_json, split=chooser)
    ).with_outputs(STATS, *artifacts.SPLITS)
    for split in artifacts.SPLITS:
        _ = encoded[split] | f"Write{split.capitalize()}" >> WriteRecords(
            f"{output}/{artifacts.record_prefix(split)}"
        )
    documents = PreprocessDocuments(spec_json, size_table=not options.budget, split=chooser)
    _ = encoded[STATS] | "Stats" >> WriteDocuments(
        MergeFn(BlockStats), documents, output, inputs, rows.lines
    )


def run_options(options: PreprocessOptions, beam_args: Sequence[str]) -> dict[str, Any]:
    """Runs the job (`jobs.run_job`) and returns stats.json's contents; local paths are made
    absolute first (`with_absolute_paths`), for workers in another working directory."""
    from pipelines.jobs import Job, run_job

    options = with_absolute_paths(options)
    spec = load_spec(options)
    job = Job(
        "preprocess",
        options,
        spec.input_format,
        OUTPUTS,
        lambda pipeline, inputs: build_pipeline(pipeline, spec, options, inputs),
        lambda stats: str(stats["spec_fingerprint"]),  # spec.json's, with its final table
    )
    return run_job(job, beam_args)


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parses the flags, runs the job to completion and returns stats.json's contents; raises
    when rows would be lost, an input cannot be read, input and output overlap, the output
    directory holds files no manifest names, too many rows are dead-lettered, or none was
    read."""
    return run_options(*parse_args(argv))


def summary(stats: Mapping[str, Any], output: str) -> str:
    """stats.json for a person: rows read, valid and dead by reason, split sizes, the input
    files (a count, and the few with dead rows or none), the output files."""
    from pipelines.accounting import notable_files

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
        *((f"{split} split", f"{splits.get(split, 0):,}") for split in artifacts.SPLITS),
        ("input files", f"{len(stats['files']):,}"),
    ]
    width = max(len(label) for label, _ in lines) + 2
    files = [
        *(
            f"{split} records: {output}/{artifacts.record_glob(split)}"
            for split in artifacts.SPLITS
        ),
        f"dead letters: {output}/{artifacts.DEAD_LETTERS_GLOB}" if dead else "dead letters: none",
        f"spec, stats: {output}/{artifacts.SPEC_FILE}, {output}/{artifacts.STATS_FILE}",
    ]
    table = [f"{label:<{width}}{value:>12}" for label, value in lines]
    table[2] += share
    split = [split_summary(stats["split"])] if "split" in stats else []
    return "\n".join([*table, *split, *notable_files(stats["files"]), *files])


def split_summary(split: Mapping[str, Any]) -> str:
    """One line for a person: how stats.json's `split` chose the eval rows."""
    method = split["method"]
    if method == "eval_input":
        return (
            f"split: eval rows from `--eval-input {split['eval_input']}` "
            f"({split['eval_files']:,} files), train rows from the other {split['train_files']:,}"
        )
    if method == "column":
        missing = split["rows_without_value"]
        trained = f"; {missing:,} rows without a value in train" if missing else ""
        return (
            f"split: eval rows have {split['column']} >= {split['eval_from']} "
            f"(compared as {split['compare']}){trained}"
        )
    key = f"`{split['key']}`" if split["key"] else "each row"
    return f"split: random, a share of {split['eval_fraction']:g} in eval by a hash of {key}"


def main(argv: Sequence[str] | None = None) -> int:
    """`ue preprocess`: the summary for a person on stderr, one JSON line on stdout."""

    def work() -> int:
        options, beam_args = parse_args(sys.argv[1:] if argv is None else argv)
        for flag, pattern in options.globs().items():
            check_local_input(pattern, flag)
        load_spec(options)  # a bad schema or budget fails before Beam starts
        quiet_logging(options.verbose)
        from unified_embedding.runtime.startup import import_beam_quietly

        import_beam_quietly()
        stats = run_options(options, beam_args)
        print(summary(stats, options.output), file=sys.stderr)
        print(json.dumps({k: stats[k] for k in SUMMARY_KEYS}))
        return 0

    return run_command(PROG, work)


if __name__ == "__main__":
    sys.exit(main())
