"""What every Beam job of this project does alike, in one runner and two composite transforms:

    stats = run_job(Job("score", options, input_format, patterns, build, fingerprint), beam_args)

run_job: match the inputs (`read.matched_files`; `--input`, and a job's other globs such as
`--eval-input`) -> refuse globs that overlap each other or the output -> read each file's
header (a missing column fails here) -> own the output directory
(`outputs.JobOutputs`) -> run the pipeline `build` lays out -> read stats.json -> seal the
manifest -> fail on too many dead rows or an empty input (the outputs stay for the user).

    rows = pipeline | "Rows" >> ReadRows(spec, inputs, block_rows, output)    # read, validate,
    rows.valid  # CheckedBlocks                                          # dead letters written
    stats | "Stats" >> WriteDocuments(MergeFn(...), documents, output, inputs, rows.lines)
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    StandardOptions,
    WorkerOptions,
)

from pipelines.accounting import FilesRead, MergeFilesReadFn
from pipelines.globs import globs_overlap
from pipelines.options import JobOptions
from pipelines.outputs import JobOutputs, is_local
from pipelines.read import FILES_READ, ReadBlocks, check_headers, matched_files
from pipelines.validate import DEAD_LETTERS, ValidateBlocks
from unified_embedding.contract import artifacts
from unified_embedding.contract.spec import FeatureSpec, InputFormat
from unified_embedding.rows.headers import header_of

# Local inputs at least this big run on one worker thread per core by default. Threads, not
# processes: the heavy work (pyarrow parsing, NumPy hashing, a model's graph, zlib) releases
# the GIL, and worker processes would each start Python and Beam again (and, scoring, import
# TensorFlow: seconds, ~0.7 GB each). Measured on 1M rows, 2 cores, when preprocessing still
# imported TensorFlow: 55k rows/s with 2 threads, 45k in one thread, 34k with 2 processes.
LOCAL_PARALLEL_BYTES = 64 << 20


def default_runner(
    beam_args: Sequence[str], input_bytes: int = 0, verbose: bool = False
) -> PipelineOptions:
    """The FnApiRunner unless a runner is given (Beam's DirectRunner default, Prism, downloads
    a binary; the FnApiRunner ships in the wheel), with one worker thread per core for
    inputs of LOCAL_PARALLEL_BYTES or more unless --direct_num_workers says otherwise. Worker
    processes log warnings only, unless `verbose` or --default_sdk_harness_log_level."""
    options = PipelineOptions(beam_args)
    workers = options.view_as(WorkerOptions)
    if not verbose and workers.default_sdk_harness_log_level is None:
        workers.default_sdk_harness_log_level = "WARNING"
    if options.view_as(StandardOptions).runner is not None:
        return options
    options.view_as(StandardOptions).runner = "FnApiRunner"
    chosen = any(a.startswith("--direct_num_workers") for a in beam_args)
    cores = os.cpu_count() or 1
    if not chosen and input_bytes >= LOCAL_PARALLEL_BYTES and cores > 1:
        direct = options.view_as(DirectOptions)
        direct.direct_num_workers = cores
        direct.direct_running_mode = "multi_threading"
    return options


class DeadRowsError(RuntimeError):
    """More rows were dead-lettered than `--max-dead-fraction` allows."""


def check_dead_fraction(stats: Mapping[str, Any], limit: float, output: str) -> None:
    """Raises DeadRowsError when more than `limit` of the rows read were dead-lettered."""
    read, dead = stats["rows_read"], stats["rows_dead"]
    if not read or dead / read <= limit:
        return
    reasons = ", ".join(f"{k}: {v}" for k, v in stats["dead_by_reason"].items() if v)
    raise DeadRowsError(
        f"{dead} of {read} rows ({dead / read:.1%}) were dead-lettered, more than "
        f"--max-dead-fraction {limit:g} allows ({reasons}); "
        f"see {output}/{artifacts.DEAD_LETTERS_GLOB}"
    )


class EmptyInputError(RuntimeError):
    """The job read no row at all, and `--allow-empty` was not given."""


def check_not_empty(
    stats: Mapping[str, Any],
    allow_empty: bool,
    pattern: str,
    flag: str = "--input",
    paths: Sequence[str] | None = None,
) -> None:
    """Raises EmptyInputError when no row was read from the files of `pattern` (`paths`;
    None: every file), unless `allow_empty`: files that are empty or hold only a header are a
    mistake far more often than a dataset."""
    files = sorted(stats["files"] if paths is None else paths)
    if allow_empty or sum(stats["files"].get(p, {}).get("rows_read", 0) for p in files):
        return
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    raise EmptyInputError(
        f"read 0 rows from the {len(files)} files `{flag} {pattern}` matches ({shown}): "
        f"empty, or a header only; pass --allow-empty to accept an empty input"
    )


@dataclass(frozen=True)
class JobInputs:
    """The files matched once at the start (the job reads what it checked, never a file that
    appears later, such as its own outputs) and each one's header columns the format lacks."""

    files: tuple[FileMetadata, ...]
    extra_columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    globs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # flag -> its paths

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files)

    @property
    def total_bytes(self) -> int:
        return sum(f.size_in_bytes for f in self.files)


@dataclass(frozen=True)
class Job:
    """One run of a job: `build(pipeline, inputs)` lays out its steps; `outputs`: the file-name
    globs it writes in `options.output` (its manifest names them); `fingerprint`: the spec
    fingerprint the manifest records, from the finished job's stats.json."""

    name: str
    options: JobOptions
    input_format: InputFormat
    outputs: tuple[str, ...]
    build: Callable[[beam.Pipeline, JobInputs], None]
    fingerprint: Callable[[Mapping[str, Any]], str]


def run_job(job: Job, beam_args: Sequence[str]) -> dict[str, Any]:
    """Runs the job to completion and returns stats.json's contents; raises when rows would
    be lost, an input cannot be read, input and output overlap, the output directory holds
    files no manifest names, too many rows are dead-lettered, or none was read."""
    options = job.options
    output = options.output.rstrip("/")
    outputs = JobOutputs(job.name, output, job.outputs)
    matched = match_inputs(options.globs(), outputs)
    files = tuple(f for group in matched.values() for f in group)
    inputs = JobInputs(
        files,
        check_headers(files, job.input_format),  # a missing column fails
        {flag: tuple(f.path for f in group) for flag, group in matched.items()},
    )
    pipeline_options = default_runner(beam_args, inputs.total_bytes, options.verbose)
    stats: dict[str, Any] = {}
    with outputs.writing(options.overwrite, lambda: job.fingerprint(stats)):
        with beam.Pipeline(options=pipeline_options) as pipeline:
            job.build(pipeline, inputs)
        with FileSystems.open(outputs.path(artifacts.STATS_FILE)) as f:
            stats.update(json.loads(f.read().decode("utf-8")))
    logging.info(
        "%s: %d rows read, %d dead-lettered %s",
        job.name,
        stats["rows_read"],
        stats["rows_dead"],
        {k: v for k, v in stats["dead_by_reason"].items() if v},
    )
    check_dead_fraction(stats, options.max_dead_fraction, output)
    for flag, pattern in options.globs().items():
        check_not_empty(stats, options.allow_empty, pattern, flag, inputs.globs[flag])
    return stats


def match_inputs(
    globs: Mapping[str, str], outputs: JobOutputs
) -> dict[str, tuple[FileMetadata, ...]]:
    """Each input glob's files, by flag (a glob matching nothing fails, naming its flag);
    refuses two globs that could match one path (its rows would be read twice) and a glob
    that overlaps the output."""
    matched = {flag: tuple(matched_files(pattern, flag)) for flag, pattern in globs.items()}
    for (a, glob_a), (b, glob_b) in itertools.combinations(globs.items(), 2):
        check_disjoint((a, glob_a, matched[a]), (b, glob_b, matched[b]))
    for flag, pattern in globs.items():
        try:
            outputs.check_input(pattern, matched[flag])
        except ValueError as e:  # its message names `--input`
            if flag == "--input":
                raise
            raise ValueError(
                str(e).replace(f"`--input {pattern}`", f"`{flag} {pattern}`")
            ) from None
    return matched


def check_disjoint(
    a: tuple[str, str, Sequence[FileMetadata]], b: tuple[str, str, Sequence[FileMetadata]]
) -> None:
    """Refuses two (flag, glob, matched files) that could match one path (`globs_overlap`,
    local globs as absolute paths) or that match one file (through links, say)."""
    (flag_a, glob_a, files_a), (flag_b, glob_b, files_b) = a, b
    named = f"`{flag_a} {glob_a}` and `{flag_b} {glob_b}`"
    local = is_local(glob_a) and is_local(glob_b)
    absolute = os.path.abspath if local else str
    if globs_overlap(absolute(glob_a), absolute(glob_b)):
        raise ValueError(
            f"{named} could match the same file, whose rows would then be read twice: give "
            f"globs that no path matches both"
        )
    real = os.path.realpath if local else str
    shared = {real(f.path) for f in files_a} & {real(f.path) for f in files_b}
    if shared:
        raise ValueError(f"{named} both match `{min(shared)}` (through a link): give other files")


class Rows(NamedTuple):
    valid: beam.PCollection  # CheckedBlocks (also those without a valid row: they carry counts)
    lines: beam.PCollection  # one {file: lines read} (a side input for the accounting)


class ReadRows(beam.PTransform):
    """The inputs' lines, validated against `spec` (`label_required=False`: an empty label cell
    is allowed), the dead rows written as dead letters under `output`: `Rows`."""

    def __init__(
        self,
        spec: FeatureSpec,
        inputs: JobInputs,
        block_rows: int,
        output: str,
        label_required: bool = True,
    ) -> None:
        super().__init__()
        self._spec = spec
        self._inputs = inputs
        self._block_rows = block_rows
        self._output = output.rstrip("/")
        self._label_required = label_required

    def expand(self, pipeline: beam.pvalue.PBegin) -> Rows:
        header = header_of(self._spec.input_format)
        files, total = list(self._inputs.files), self._inputs.total_bytes
        read = pipeline | "Read" >> ReadBlocks(files, header, self._block_rows, total)
        checked = read.blocks | "Validate" >> ValidateBlocks(self._spec, self._label_required)
        _ = checked[DEAD_LETTERS] | "WriteDeadLetters" >> beam.io.WriteToText(
            f"{self._output}/{artifacts.DEAD_LETTERS_PREFIX}",
            file_name_suffix=artifacts.DEAD_LETTERS_SUFFIX,
        )
        lines = read[FILES_READ] | "MergeFilesRead" >> beam.CombineGlobally(MergeFilesReadFn())
        return Rows(checked.valid, lines)


class WriteDocumentsFn(beam.DoFn):
    """The merged statistics -> the job's documents (stats.json, ...) under `output`; the
    documents check that no row was lost and each matched file was read in full."""

    def __init__(
        self,
        documents: Callable[[Any, FilesRead], dict[str, str]],
        output: str,
        inputs: JobInputs,
    ) -> None:
        self._documents = documents
        self._output = output.rstrip("/")
        self._matched = inputs.paths
        self._extra_columns = dict(inputs.extra_columns)

    def process(self, total: Any, lines: Mapping[str, int]) -> Any:
        read = FilesRead(self._matched, lines, self._extra_columns)
        for name, text in self._documents(total, read).items():
            path = f"{self._output}/{name}"
            with FileSystems.create(path) as f:
                f.write(text.encode("utf-8"))
            yield path


class WriteDocuments(beam.PTransform):
    """Block statistics -> their sum (`merge`: a CombineFn, e.g. `accounting.MergeFn`) ->
    `documents(total, files read)`, each `{file name: text}` written under `output`."""

    def __init__(
        self,
        merge: beam.CombineFn,
        documents: Callable[[Any, FilesRead], dict[str, str]],
        output: str,
        inputs: JobInputs,
        lines: beam.PCollection,
    ) -> None:
        super().__init__()
        self._merge = merge
        self._write = WriteDocumentsFn(documents, output, inputs)
        self._lines = lines

    def expand(self, stats: beam.PCollection) -> beam.PCollection:
        return (
            stats
            | "Merge" >> beam.CombineGlobally(self._merge)
            | "Write" >> beam.ParDo(self._write, beam.pvalue.AsSingleton(self._lines))
        )
