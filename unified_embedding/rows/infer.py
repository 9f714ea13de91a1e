"""A short-form schema (`contract/schemas.py`) proposed from a sample of a file, for the user to
edit: `ue schema infer FILE`.

    sample = read_sample("day1.csv.gz", SampleConfig(rows=10_000))
    proposal = propose(sample, label=None)
    proposal.schema     # {"name": "day1", "columns": [...], "label": "click", ...}
    proposal.decisions  # per column: kind and why (`column_kinds`)
    proposal.warnings   # sampled rows the schema would still dead-letter, by reason

Besides each column's kind (`column_kinds.py`):

- label: `--label`, else the first column named `label`, `click`, `clicked`, `clicks`,
  `is_click`, `y`, `target`, `conversion` or `converted` (any case) holding only 0 and 1.
- missing: `null`, `NULL`, `Null`, `\\N`, `nan`, `NaN`, `NAN`, `None`, `none` wherever they
  appear; `NA`, `N/A`, `n/a`, `-`, `?` when they are the only non-numbers of a column.
- max_field_chars: twice the longest sampled cell, when that is over the default limit.

The proposal is checked as the jobs read files: the sample's rows go through the file reader
and `validation.BlockValidator` with the proposed schema, and every dead row is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from unified_embedding.contract.schemas import from_short_form
from unified_embedding.contract.spec import MAX_FIELD_CHARS
from unified_embedding.rows.column_kinds import Column, Decision, decide, numbers
from unified_embedding.rows.headers import header_of
from unified_embedding.rows.sample import Sample
from unified_embedding.rows.textfile import file_blocks
from unified_embedding.rows.validation import BlockValidator

LABEL_NAMES = (
    "label",
    "click",
    "clicked",
    "clicks",
    "is_click",
    "y",
    "target",
    "conversion",
    "converted",
)
NULL_TOKENS = ("null", "NULL", "Null", "\\N", "nan", "NaN", "NAN", "None", "none")
NUMBER_GAPS = ("NA", "N/A", "n/a", "-", "?")  # missing only among numbers: "NA" may be Namibia
_TOKENS = NULL_TOKENS + NUMBER_GAPS
Counts = tuple[pa.Array, np.ndarray]  # a column's distinct cells and how many rows hold each


class InferError(ValueError):
    """No schema can be proposed: no label found, or a `--label` that is not a column."""


@dataclass(frozen=True)
class Proposal:
    schema: dict[str, Any]
    decisions: list[Decision]
    missing: dict[str, list[str]]  # token -> the columns holding it
    warnings: list[str] = field(default_factory=list)


def propose(sample: Sample, label: str | None = None, name: str | None = None) -> Proposal:
    """The schema of `sample`'s file (module docstring); `label` overrides the label rule,
    `name` the schema's name (default: the file's name without extensions)."""
    raw = {n: _value_counts(sample.cells.column(n)) for n in sample.names}
    missing = missing_tokens(raw)
    blank = pa.array(("", *missing), pa.string())
    columns = {n: _column(n, sample.rows, raw[n], blank) for n in sample.names}
    chosen = choose_label(columns, raw, label)
    decisions = [
        chosen if n == chosen.column.name else decide(c, sample.delimiter)
        for n, c in columns.items()
    ]
    schema = _schema(sample, decisions, missing, name)
    return Proposal(schema, decisions, missing, dead_rows(schema, sample))


def missing_tokens(raw: dict[str, Counts]) -> dict[str, list[str]]:
    """Tokens that mean "missing" (module docstring) -> the columns they were found in."""
    found: dict[str, list[str]] = {}
    gaps = pa.array(NUMBER_GAPS, pa.string())
    for name, (values, _) in raw.items():
        tokens = values.filter(pc.is_in(values, value_set=pa.array(NULL_TOKENS, pa.string())))
        is_gap = pc.is_in(values, value_set=gaps)
        others = values.filter(pc.and_(pc.invert(is_gap), pc.not_equal(values, "")))
        if len(others) and numbers(others).all():
            tokens = pa.concat_arrays([tokens, values.filter(is_gap)])
        for token in tokens.to_pylist():
            found.setdefault(token, []).append(name)
    return dict(sorted(found.items(), key=lambda item: _TOKENS.index(item[0])))


def choose_label(columns: dict[str, Column], raw: dict[str, Counts], label: str | None) -> Decision:
    """The label column: `label` when given, else the first 0/1 column with a label's name."""
    if label is not None and label not in columns:
        raise InferError(
            f"`--label` should name a column. Received: `--label={label}`; columns: {list(columns)}"
        )
    binary = [n for n, (values, _) in raw.items() if set(values.to_pylist()) <= {"0", "1"}]
    if label is None:
        by_name = {n.lower(): n for n in columns}
        named = [by_name[n] for n in LABEL_NAMES if n in by_name]
        label = next((n for n in named if n in binary), None)
        if label is None and named:
            other = next(v for v in raw[named[0]][0].to_pylist() if v not in ("0", "1"))
            raise InferError(
                f"the column `{named[0]}` is named like a label but holds values other than 0 "
                f"and 1 (e.g. {other!r}); pass `--label {named[0]}` to use it anyway"
            )
        if label is None:
            raise InferError(
                f"no column named like a label ({', '.join(LABEL_NAMES)}) holds only 0 and 1; "
                f"pass `--label NAME`. Columns holding only 0 and 1: {binary or 'none'}"
            )
        why = "named like a label, values 0/1"
    else:
        why = "`--label`" + ("" if label in binary else ", NOT only 0/1: see the warnings")
    values, counts = raw[label]
    ones = int(counts[np.asarray(pc.equal(values, "1"), bool)].sum())
    rate = f" ({ones / counts.sum():.1%} ones)" if counts.sum() else ""
    return Decision(columns[label], "label", why + rate)


def dead_rows(schema: dict[str, Any], sample: Sample) -> list[str]:
    """The sampled rows `schema` would dead-letter, one warning per reason: the file read as
    the jobs read it (`textfile`, `headers`, `validation.BlockValidator`)."""
    spec = from_short_form(schema)
    validator = BlockValidator(spec)
    counts: dict[str, int] = {}
    examples: dict[str, str] = {}
    seen = 0
    with open(sample.source, "rb") as raw:
        blocks = file_blocks(raw, sample.source, header_of(spec.input_format), sample.lines)
        for block in blocks:
            checked = validator.validate(block)
            for dead in checked.dead:
                line = int(checked.line_numbers(np.array([dead.line]))[0])
                counts[dead.reason] = counts.get(dead.reason, 0) + 1
                examples.setdefault(dead.reason, f"line {line}: {dead.detail}")
            seen += checked.lines
            if seen >= sample.lines:
                break
    return [
        f"{n:,} of {seen:,} sampled rows would be dead letters ({reason}), e.g. {examples[reason]}"
        for reason, n in counts.items()
    ]


def _schema(
    sample: Sample, decisions: list[Decision], missing: dict[str, list[str]], name: str | None
) -> dict[str, Any]:
    """The short form, its keys in the order `schemas.py` documents them."""
    of_kind = {
        kind: [d for d in decisions if d.kind == kind]
        for kind in ("label", "ignore", "numeric", "multi_valued")
    }
    schema: dict[str, Any] = {
        "name": name or _file_stem(sample.source),
        "columns": list(sample.names),
        "label": of_kind["label"][0].column.name,
        "delimiter": sample.delimiter,
        "header": sample.header,
        "ignore": [d.column.name for d in of_kind["ignore"]],
        "numeric": {d.column.name: d.transform for d in of_kind["numeric"]},
        "multi_valued": {d.column.name: d.separator for d in of_kind["multi_valued"]},
    }
    vocabularies = {d.column.name: list(d.vocabulary) for d in decisions if d.vocabulary}
    if vocabularies:
        schema["vocabulary"] = vocabularies
    if missing:
        schema["missing"] = list(missing)
    longest = max((pc.max(pc.utf8_length(c)).as_py() or 0 for c in sample.cells.columns), default=0)
    if longest > MAX_FIELD_CHARS:
        schema["max_field_chars"] = 2 * longest
    return schema


def _value_counts(cells: pa.ChunkedArray) -> Counts:
    counted = pc.value_counts(cells)
    return counted.field("values"), np.asarray(counted.field("counts"), np.int64)


def _column(name: str, rows: int, counted: Counts, blank: pa.Array) -> Column:
    values, counts = counted
    keep = np.asarray(pc.invert(pc.is_in(values, value_set=blank)), bool)
    return Column(name, rows, values.filter(pa.array(keep)), counts[keep])


def _file_stem(source: str) -> str:
    """`logs/day1.csv.gz` -> `day1`."""
    return PurePath(source).name.split(".", 1)[0] or "custom"
