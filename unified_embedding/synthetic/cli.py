"""`ue generate`: Criteo-format rows with planted interactions, one JSON line of what was written.

ue generate --rows 100000 --out rows.tsv.gz [--seed 1] [--weighted-top-k 3]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from unified_embedding.runtime.flags import add_flags, command_parser, from_flags, option
from unified_embedding.synthetic.config import SyntheticConfig


@dataclass(frozen=True)
class GenerateCommand:
    rows: int = option(help="rows to write")
    out: Path = option(help="output path; .gz compresses")


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "ue generate",
        "Write Criteo-format rows (TSV) drawn from a planted logistic model with pairwise and "
        "three-way interactions; the same flags write the same rows.",
    )
    add_flags(parser, GenerateCommand)
    add_flags(parser, SyntheticConfig)
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    command = from_flags(GenerateCommand, args)
    config = from_flags(SyntheticConfig, args)
    from unified_embedding.synthetic.writer import write_tsv

    print(json.dumps(write_tsv(command.out, command.rows, config).to_dict()))
    return 0
