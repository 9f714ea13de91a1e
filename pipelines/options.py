"""The Beam jobs' own flags, as config dataclasses, and the skeleton of their `main(argv)`.

Nothing here imports Apache Beam or TensorFlow: a wrong flag or a missing input is refused in
a fraction of a second. Flags the job does not know are left to Beam's `PipelineOptions`
(`--runner`, `--direct_num_workers`, ...), as in Beam's wordcount.

    options, beam_args = parse(PreprocessOptions, "ue preprocess", __doc__, argv)
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from unified_embedding.contract import artifacts
from unified_embedding.runtime.flags import add_flags, from_flags, option
from unified_embedding.runtime.helpformat import DefaultsHelpFormatter

# Matched once at the start; every match must be a readable file (`read.matched_files`).
INPUT_HELP = "file glob (CSV/TSV; .gz, .bz2, .xz ok)"
DEFAULT_EVAL_FRACTION = 0.1  # the random split's share of eval rows
SCORE_FORMATS = ("csv", "parquet")  # `score_output.FORMATS`: the writers of each
DEFAULT_KEYS = ("source", "offset")  # `score_output.ROW_KEYS`: where each row came from


def _check(ok: bool, flag: str, should: str, value: object) -> None:
    if not ok:
        raise ValueError(f"`{flag}` should be {should}. Received: `{flag} {value}`")


@dataclass(frozen=True, kw_only=True)
class JobOptions:
    """What every job reading raw rows takes: where from, where to, and the fail-loud rules."""

    input: str = option(help=INPUT_HELP)
    output: str = option(help="output directory (local or remote)")
    block_rows: int = option(
        4096, "rows per block: a record when preprocessing, a model call when scoring"
    )
    max_dead_fraction: float = option(
        0.01,
        "fail the job when more of the rows read are dead-lettered (outputs still written)",
    )
    overwrite: bool = option(
        False,
        f"remove the files an earlier run wrote in --output first (those its "
        f"{artifacts.MANIFEST_FILE} names; the job never removes anything else)",
    )
    allow_empty: bool = option(
        False, "succeed when the input holds no row (by default a job that reads 0 rows fails)"
    )
    verbose: bool = option(
        False, "log Beam's progress (INFO); otherwise warnings and the job's summary only"
    )

    def __post_init__(self) -> None:
        _check(self.block_rows >= 1, "--block-rows", "positive", self.block_rows)
        fraction = self.max_dead_fraction
        _check(0.0 <= fraction <= 1.0, "--max-dead-fraction", "in [0, 1]", fraction)

    def globs(self) -> dict[str, str]:
        """The input globs the job reads, by flag (`--input`, and a job's others)."""
        return {"--input": self.input}


@dataclass(frozen=True, kw_only=True)
class PreprocessOptions(JobOptions):
    """`ue preprocess`'s flags. The eval rows come from one of three splits: random (the
    default: `--eval-fraction` of the rows by a hash of their content or `--split-key`'s
    value), `--eval-input`'s files, or `--split-by COLUMN --eval-from VALUE`; flags of two of
    them together are refused. A random split leaves `eval_fraction` set (its default when
    not given); the others leave it None."""

    schema: str = option(help="criteo | avazu | frappe | FILE.json")
    eval_fraction: float | None = option(
        None,
        f"share of rows in eval by a hash of each row (the random split); None: "
        f"{DEFAULT_EVAL_FRACTION}, unless --eval-input or --split-by chooses the eval rows",
    )
    split_key: str | None = option(
        None, "column whose value decides the random split; None: the whole row"
    )
    eval_input: str | None = option(
        None,
        f"{INPUT_HELP} of the eval rows, e.g. the next day's: every row of it goes to eval, "
        f"every row of --input to train",
    )
    split_by: str | None = option(
        None,
        "column ordering the split (e.g. a timestamp; an ignored column will do): rows whose "
        "value is at or after --eval-from go to eval, the rest (empty cells too) to train",
    )
    eval_from: str | None = option(
        None,
        "first --split-by value of the eval rows; a number compares as a number (the column "
        "must hold numbers), anything else as a string (ISO dates and times order correctly)",
    )
    budget: str | None = option(
        None,
        "embedding parameter budget with units (200KB, 4MB, 1MiB) sizing the shared table; "
        "None: sized from the data's distinct counts (budget.data_budget)",
    )
    probes: int | None = option(
        None,
        "fingerprints recorded per hashed field: `ue train --probes` uses up to this many (4 "
        "lets `--probes auto` reach its maximum); None: the schema's",
    )
    max_field_chars: int | None = option(
        None,
        "longer cells are dead; recorded in spec.json, so scoring and serving refuse them "
        "too; None: the schema's",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_split()
        if self.eval_fraction is None and not self.time_ordered:
            object.__setattr__(self, "eval_fraction", DEFAULT_EVAL_FRACTION)
        fraction = self.eval_fraction
        if fraction is not None:
            _check(0.0 <= fraction <= 1.0, "--eval-fraction", "in [0, 1]", fraction)

    @property
    def time_ordered(self) -> bool:
        """True when the eval rows are chosen by file or by a column, not at random."""
        return self.eval_input is not None or self.split_by is not None

    def globs(self) -> dict[str, str]:
        extra = {"--eval-input": self.eval_input} if self.eval_input is not None else {}
        return {**super().globs(), **extra}

    def _check_split(self) -> None:
        """Refuses flags of two splits, or half of the column split, in one line."""
        by, start = self.split_by, self.eval_from
        if (by is None) != (start is None):
            given = f"--split-by {by}" if start is None else f"--eval-from {start}"
            missing = "--eval-from" if start is None else "--split-by"
            raise ValueError(
                f"`--split-by` and `--eval-from` go together: rows whose --split-by value is at "
                f"or after --eval-from are eval rows. Received: `{given}` without "
                f"`{missing}`"
            )
        if self.eval_input is not None and by is not None:
            raise ValueError(
                f"`--eval-input` and `--split-by` are two ways to choose the eval rows; give "
                f"one. Received: `--eval-input {self.eval_input}` and `--split-by {by}`"
            )
        _check(start != "", "--eval-from", "a value of the --split-by column", "''")
        chosen = (
            f"--eval-input {self.eval_input}" if self.eval_input is not None else f"--split-by {by}"
        )
        for flag, value in (
            ("--eval-fraction", self.eval_fraction),
            ("--split-key", self.split_key),
        ):
            if self.time_ordered and value is not None:
                raise ValueError(
                    f"`{flag}` belongs to the random split: with `{chosen}` the eval rows are "
                    f"chosen by {'file' if self.eval_input is not None else 'column'}. "
                    f"Received: `{flag} {value}` and `{chosen}`"
                )


@dataclass(frozen=True, kw_only=True)
class ScoreOptions(JobOptions):
    model: str = option(help="an export base (its newest version) or a version folder")
    schema: str | None = option(
        None, "input format: criteo | avazu | frappe | FILE.json; None: the model's spec.json"
    )
    key_columns: str = option(
        ",".join(DEFAULT_KEYS),
        "comma-separated output keys: input columns, or `source` (the file) and `offset` (the "
        "row's byte offset in it)",
    )
    format: str = option("csv", "score shards", choices=SCORE_FORMATS)
    explain_top_k: int = option(0, "add each row's K strongest attention pairs")
    op_threads: int = option(
        0, "TensorFlow threads per worker process (0: its default); 1 with a worker per core"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.op_threads >= 0, "--op-threads", "non-negative", self.op_threads)
        top_k = self.explain_top_k
        _check(top_k >= 0, "--explain-top-k", "non-negative", top_k)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(c.strip() for c in self.key_columns.split(",") if c.strip())


Options = TypeVar("Options", bound=JobOptions)


def parser_of(cls: type[JobOptions], prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=DefaultsHelpFormatter
    )
    add_flags(parser, cls)
    return parser


def parse(
    cls: type[Options], prog: str, description: str, argv: Sequence[str] | None
) -> tuple[Options, list[str]]:
    """The job's options and the flags left to Beam. A flag of the wrong type exits as argparse
    does (status 2); a value out of range raises ValueError naming the flag."""
    parser = parser_of(cls, prog, description)
    args, beam_args = parser.parse_known_args(argv)
    return from_flags(cls, args), beam_args


# The fields holding a path the job's workers open (`--schema` is read by the launcher alone).
WORKER_PATHS = ("input", "eval_input", "output", "model")


def with_absolute_paths(options: Options) -> Options:
    """`options` with its local paths (WORKER_PATHS) made absolute. A runner's workers may run
    in another working directory (a portable runner's worker pool, Flink's task managers),
    where a relative path would name other files or none."""
    paths = {name: getattr(options, name, None) for name in WORKER_PATHS}
    local = {n: os.path.abspath(p) for n, p in paths.items() if p is not None and "://" not in p}
    return dataclasses.replace(options, **local)


def check_local_input(pattern: str, flag: str = "--input") -> None:
    """Refuses a local input (given by `flag`) that cannot match anything, before Beam is
    imported: a path without a glob that does not exist, or a glob whose fixed folder does
    not. The full match (`read.matched_files`) runs when the job starts."""
    if "://" in pattern:
        return
    fixed = re.match(r"^[^[*?]*", pattern)
    prefix = fixed.group(0) if fixed else ""
    if prefix == pattern:
        missing = not os.path.lexists(pattern)
    else:
        folder = os.path.dirname(prefix)
        missing = bool(folder) and not os.path.isdir(folder)
    if missing:
        raise FileNotFoundError(f"no input file matches `{flag} {pattern}`")


def quiet_logging(verbose: bool) -> None:
    """Beam's INFO lines (each step, each bundle) only with `--verbose`."""
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)
    # one INFO line per string type hint Beam cannot resolve (dozens per job), even verbose
    logging.getLogger("apache_beam.typehints.native_type_compatibility").setLevel(logging.WARNING)
