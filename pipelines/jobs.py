"""What every Beam job of this project does alike: the row-rule flags, the local runner
default, and the checks that fail a finished job (the dead-row limit, an empty input). The
output directory's rules live in `outputs`, the input's in `read.matched_files`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import Any

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from unified_embedding.contract import artifacts

# Local inputs at least this big run on one worker thread per core by default. Threads, not
# processes: the heavy work (pyarrow parsing, the TensorFlow graph, zlib) releases the GIL,
# and worker processes would each import TensorFlow (seconds, and ~0.7 GB each). Measured on
# 1M rows, 2 cores: 55k rows/s with 2 threads, 45k in one thread, 34k with 2 processes.
LOCAL_PARALLEL_BYTES = 64 << 20

# Matched once at the start; every match must be a readable file (`read.matched_files`).
INPUT_HELP = "file glob (CSV/TSV; .gz, .bz2, .xz ok)"


def add_row_rule_flags(parser: argparse.ArgumentParser, block_help: str) -> None:
    """The flags every job reading raw rows shares: blocks, row limits, fail-loud rules."""
    parser.add_argument("--block-rows", type=int, default=4096, help=block_help)
    parser.add_argument(
        "--max-dead-fraction",
        type=float,
        default=0.01,
        help="fail the job when more of the rows read are dead-lettered (outputs still written)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=f"remove the files an earlier run wrote in --output first (those its "
        f"{artifacts.MANIFEST_FILE} names; the job never removes anything else)",
    )
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="succeed when the input holds no row (by default a job that reads 0 rows fails)",
    )


def check_row_rule_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 0.0 <= args.max_dead_fraction <= 1.0:
        parser.error(
            f"`--max-dead-fraction` should be in [0, 1]. Received: {args.max_dead_fraction}"
        )
    if args.block_rows < 1:
        parser.error(f"`--block-rows` should be positive. Received: {args.block_rows}")


def default_runner(beam_args: Sequence[str], input_bytes: int = 0) -> PipelineOptions:
    """The FnApiRunner unless a runner is given (Beam's DirectRunner default, Prism, downloads
    a binary; the FnApiRunner ships in the wheel), with one worker thread per core for
    inputs of LOCAL_PARALLEL_BYTES or more unless --direct_num_workers says otherwise."""
    options = PipelineOptions(beam_args)
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


def check_not_empty(stats: Mapping[str, Any], allow_empty: bool, pattern: str) -> None:
    """Raises EmptyInputError when no row was read, unless `allow_empty`: files that are
    empty or hold only a header are a mistake far more often than a dataset."""
    if stats["rows_read"] or allow_empty:
        return
    files = sorted(stats["files"])
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    raise EmptyInputError(
        f"read 0 rows from the {len(files)} files `--input {pattern}` matches ({shown}): "
        f"empty, or a header only; pass --allow-empty to accept an empty input"
    )
