"""`ue schema infer FILE`: a schema file proposed from FILE's header and first rows, to edit.

    ue schema infer clicks.csv.gz --out clicks.json   # the schema in clicks.json
    ue schema infer day1.tsv --label c0                # no header: columns c0, c1, ...

The schema (JSON, the short form of `contract/schemas.py`) goes to stdout or `--out`; a summary
of each column (kind, distinct values in the sample, missing share, why) goes to stderr as `#`
lines, with a warning for any sampled row the schema would still dead-letter. The rules are in
`infer.py` and `column_kinds.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from unified_embedding.contract.spec import SpecError
from unified_embedding.rows.infer import InferError, Proposal, propose
from unified_embedding.rows.sample import SampleConfig, SampleError, read_sample
from unified_embedding.rows.textfile import CorruptInput
from unified_embedding.runtime.flags import add_flags, from_flags
from unified_embedding.runtime.helpformat import DefaultsHelpFormatter

PROG = "ue schema"
# How a shell passes a tab: `--delimiter '\t'` arrives as backslash and t.
_DELIMITER_NAMES = {"\\t": "\t", "tab": "\t"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Schema files for your own CSV/TSV files."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    infer = commands.add_parser(
        "infer",
        help="propose a schema file from FILE's header and first rows",
        description="Proposes a schema file (JSON, on stdout or in --out) from FILE's header and "
        "first rows, with a summary of each column on stderr; edit it, then pass it to "
        "`ue preprocess --schema`.",
        formatter_class=DefaultsHelpFormatter,
    )
    infer.add_argument("file", metavar="FILE", help="a CSV/TSV file (.gz, .bz2, .xz ok)")
    add_flags(infer, SampleConfig)
    infer.add_argument(
        "--label", help="the label column; when not given, the 0/1 column named label, click, ..."
    )
    infer.add_argument("--name", help="the schema's name; when not given, FILE's name")
    infer.add_argument("--out", type=Path, help="write the schema to this file, not to stdout")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`ue schema ...`: 0 when a schema was written, 2 (one line on stderr) when none can be."""
    args = build_parser().parse_args(argv)
    command = f"{PROG} {args.command}"
    try:
        if not Path(args.file).is_file():
            raise FileNotFoundError(f"`FILE` should be a file. Received: {args.file}")
        delimiter = _DELIMITER_NAMES.get(args.delimiter, args.delimiter)
        sample = read_sample(args.file, from_flags(SampleConfig, args, delimiter=delimiter))
        proposal = propose(sample, label=args.label, name=args.name)
    except (InferError, SampleError, SpecError, CorruptInput, OSError) as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return 2
    text = schema_json(proposal.schema)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    schema_file = str(args.out) if args.out is not None else "SCHEMA.json"
    print("\n".join(summary(proposal, sample.lines, args.file, schema_file)), file=sys.stderr)
    return 0


def schema_json(schema: dict[str, Any]) -> str:
    """The schema as JSON for a person to edit: one key per line, lists on one line, one line
    per column of `numeric`, `multi_valued` and `vocabulary`."""

    def value(item: Any) -> str:
        if isinstance(item, dict) and item:
            inner = ",\n".join(f"    {_dumps(k)}: {_dumps(v)}" for k, v in item.items())
            return "{\n" + inner + "\n  }"
        return _dumps(item)

    lines = [f"  {_dumps(key)}: {value(item)}" for key, item in schema.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def summary(proposal: Proposal, lines: int, source: str, schema_file: str) -> list[str]:
    """`#` lines: the sample, one line per column, the missing tokens, warnings, next step."""
    schema = proposal.schema
    width = min(max(len("column"), *(len(d.column.name) for d in proposal.decisions)), 24)
    header = "yes" if schema["header"] else "no (columns c0, c1, ...)"
    out = [
        f"# {source}: {lines:,} rows sampled; header: {header}; "
        f"delimiter: {_dumps(schema['delimiter'])}",
        f"# {'column':<{width}}  {'kind':<18} {'distinct':>8} {'missing':>7}  why",
    ]
    for d in proposal.decisions:
        kind = d.kind
        if d.kind == "numeric":
            kind = f"numeric {d.transform}"
        elif d.kind == "multi_valued":
            kind = f"multi_valued {d.separator}"
        out.append(
            f"# {d.column.name:<{width}}  {kind:<18} {d.column.distinct:>8,} "
            f"{d.column.missing_share:>7.1%}  {d.why}"
        )
    for token, columns in proposal.missing.items():
        out.append(f"# missing {_dumps(token)}: found in {', '.join(columns)}")
    out += [f"# warning: {w}" for w in proposal.warnings]
    out.append(
        f"# next: edit the schema, then `ue preprocess --input {source} --schema {schema_file} "
        f"--output DIR`"
    )
    return out


def _dumps(item: Any) -> str:
    return json.dumps(item, ensure_ascii=False)
