"""`ue generate`: Criteo-format rows with planted interactions, one JSON line of what was written
(with `--days`, one line per day).

ue generate --rows 100000 --out rows.tsv.gz [--seed 1] [--weighted-top-k 3]
ue generate --rows 100000 --days 7 --out days/ [--new-id-share 0.05] [--ctr-jump-day 5 ...]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from unified_embedding.runtime.flags import (
    add_flags,
    command_parser,
    flag_fields,
    flag_name,
    from_flags,
    option,
)
from unified_embedding.synthetic.config import SyntheticConfig
from unified_embedding.synthetic.day_files import DayReport, write_days
from unified_embedding.synthetic.drift import DriftConfig
from unified_embedding.synthetic.writer import write_tsv

PROG = "ue generate"


@dataclass(frozen=True)
class GenerateCommand:
    rows: int = option(help="rows to write (per day with --days)")
    out: Path = option(help="output path; .gz compresses. With --days: a folder")
    days: int | None = option(
        None,
        "write this many days that drift into the folder OUT: day-01.tsv.gz (the rows written "
        "without --days), day-02.tsv.gz, ...",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        PROG,
        "Write Criteo-format rows (TSV) drawn from a planted logistic model with pairwise and "
        "three-way interactions; the same flags write the same rows. With --days, one file per "
        "day, each later day drifting: new IDs in the high-cardinality fields, a moving base "
        "click rate, planted effects that rotate.",
    )
    add_flags(parser, GenerateCommand)
    add_flags(parser, SyntheticConfig)
    add_flags(parser.add_argument_group("days that drift (with --days)"), DriftConfig)
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    command = from_flags(GenerateCommand, args)
    config = from_flags(SyntheticConfig, args)
    drift = from_flags(DriftConfig, args)
    if command.days is None:
        changed = [f for f in flag_fields(DriftConfig) if getattr(drift, f.name) != f.default]
        if changed:
            raise ValueError(f"`{flag_name(changed[0])}` needs `--days`.")
        print(json.dumps(write_tsv(command.out, command.rows, config).to_dict()))
        return 0

    def report(day: DayReport) -> None:
        print(json.dumps(day.to_dict()), flush=True)  # one line per day, as each is complete

    write_days(command.out, command.days, command.rows, config, drift, on_day=report)
    return 0
