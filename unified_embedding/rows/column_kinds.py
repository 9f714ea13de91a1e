"""The kind of a sampled column, by rules over its distinct values: what `infer.py` proposes.

    column = Column("age", rows=1000, values=pa.array(["31", "7", ...]), counts=np.array([...]))
    decide(column, delimiter=",")   # Decision(kind="numeric", why="...", transform="log1p")

The rules (missing tokens and empty cells left out of a column's values):

- numeric: every value a finite number as the validator reads numbers (`validation.NUMBER`,
  within float32). Values with a fraction or exponent are numeric. Integers are numeric only
  when they look like counts: they start at 1 or below, reach at least 20 x their median, and
  no order of magnitude in between is empty (Criteo's I1..I13). Other integers are codes and
  stay categorical: integers with a leading zero (zip codes), with at most 16 distinct values,
  or without such a tail (Avazu's C14, Frappe's ids, a date-hour like 14102100).
- transform: `log1p` for a count or a long tail (max >= 20 x the median's magnitude), else
  `identity`.
- multi_valued: cells hold `|`, `;` or `,` (not the delimiter) in at least 2 rows, and the
  split tokens recur: fewer distinct tokens than distinct cells.
- ignore: a different value in every one of at least 100 rows (a row id), or a name that
  cannot name a field (letters, digits, `_.-`).
- vocabulary: a categorical column of 2 to 10 distinct values, each in at least 20 rows.
- categorical: everything else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from unified_embedding.contract.spec import FieldSpec, SpecError
from unified_embedding.rows.validation import NUMBER

SEPARATORS = ("|", ";", ",")
FEW_VALUES = 16  # integer columns with at most this many values are categorical
LONG_TAIL = 20.0  # max >= LONG_TAIL x median: a count (integers) or log1p (any number)
ID_ROWS = 100  # a unique value per row means a row id only over this many rows
VOCABULARY_VALUES = 10
VOCABULARY_ROWS = 20  # each value of a vocabulary seen in at least this many rows
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # beyond it the validator refuses a number
_INTEGER = r"^[+-]?[0-9]+$"
_LEADING_ZERO = r"^[+-]?0[0-9]"


@dataclass(frozen=True)
class Column:
    """A sampled column by its distinct present values (no empty cell, no missing token)."""

    name: str
    rows: int
    values: pa.Array  # strings, distinct
    counts: np.ndarray  # int64: rows holding each value

    @property
    def present(self) -> int:
        return int(self.counts.sum())

    @property
    def distinct(self) -> int:
        return len(self.values)

    @property
    def missing_share(self) -> float:
        return 1.0 - self.present / self.rows if self.rows else 0.0


@dataclass(frozen=True)
class Decision:
    """What to do with one column, and why (a few words for the summary)."""

    column: Column
    kind: str  # label | ignore | numeric | categorical | multi_valued
    why: str
    transform: str = "identity"
    separator: str | None = None
    vocabulary: tuple[str, ...] | None = None


def decide(column: Column, delimiter: str) -> Decision:
    """The kind of a column other than the label (module docstring)."""
    try:
        FieldSpec(column.name)
    except SpecError:
        return Decision(column, "ignore", "not a field name (letters, digits, _.-): rename it")
    if column.distinct <= 1:
        many = "no value" if column.distinct == 0 else "one value"
        return Decision(column, "categorical", f"{many} in the sample")
    if numbers(column.values).all():
        decision = _numeric_rule(column)
    else:
        decision = _text_rule(column, delimiter)
    return _with_vocabulary(decision) if decision.kind == "categorical" else decision


def numbers(values: pa.Array) -> np.ndarray:
    """Which values the validator reads as numbers (`validation.NUMBER`)."""
    return np.asarray(pc.match_substring_regex(values, NUMBER), bool)


def _numeric_rule(column: Column) -> Decision:
    values = np.asarray(pc.cast(column.values, pa.float64()), np.float64)
    if not (np.abs(values) <= _FLOAT32_MAX).all():
        return Decision(column, "categorical", "numbers beyond float32: text")
    median = float(np.median(np.repeat(values, column.counts)))
    if not _match(column.values, _INTEGER, every=True):
        transform = "log1p" if values.max() >= LONG_TAIL * max(abs(median), 1e-12) else "identity"
        return Decision(column, "numeric", f"numbers with fractions ({transform})", transform)
    if _match(column.values, _LEADING_ZERO, every=False):
        return Decision(column, "categorical", "integers with leading zeros: codes")
    if _unique(column):
        return Decision(column, "ignore", "a different integer in every row: a row id")
    if column.distinct <= FEW_VALUES:
        return Decision(column, "categorical", f"integers, at most {FEW_VALUES} values: codes")
    tail = values.min() <= 1 and values.max() >= LONG_TAIL * max(median, 1.0)
    if tail and _magnitudes_contiguous(column.values):
        return Decision(column, "numeric", "integers from 0 with a long tail: a count", "log1p")
    return Decision(column, "categorical", "integers without a tail from 0: codes")


def _text_rule(column: Column, delimiter: str) -> Decision:
    separator = multi_value_separator(column, delimiter)
    if separator is not None:
        why = f"values split on {separator!r} recur"
        return Decision(column, "multi_valued", why, separator=separator)
    if _unique(column):
        return Decision(column, "ignore", "a different value in every row: a row id")
    return Decision(column, "categorical", "text values")


def multi_value_separator(column: Column, delimiter: str) -> str | None:
    """The separator splitting the column's cells into recurring tokens, or None: of those
    found in at least 2 rows, the one found in the most."""
    best, best_rows = None, 1
    for separator in SEPARATORS:
        if separator == delimiter:
            continue
        holding = np.asarray(pc.match_substring(column.values, separator), bool)
        rows = int(column.counts[holding].sum())
        if rows <= best_rows:
            continue
        tokens = pc.list_flatten(pc.split_pattern(column.values, separator))
        if pc.count_distinct(tokens).as_py() < column.distinct:
            best, best_rows = separator, rows
    return best


def _with_vocabulary(decision: Decision) -> Decision:
    """A small collision-free table when each of a few values is well seen."""
    column = decision.column
    if column.distinct > VOCABULARY_VALUES or column.counts.min() < VOCABULARY_ROWS:
        return decision
    values = tuple(sorted(column.values.to_pylist()))
    return replace(decision, why=decision.why + "; few values: a vocabulary", vocabulary=values)


def _match(values: pa.Array, pattern: str, every: bool) -> bool:
    matched = pc.match_substring_regex(values, pattern)
    return bool((pc.all if every else pc.any)(matched).as_py())


def _unique(column: Column) -> bool:
    return column.present >= ID_ROWS and column.distinct == column.present


def _magnitudes_contiguous(values: pa.Array) -> bool:
    """No empty order of magnitude: every digit count from the shortest to the longest value
    occurs (a count's 7, 52, 311; not a code's -1 beside 100084)."""
    digits = np.unique(np.asarray(pc.utf8_length(pc.utf8_ltrim(values, "+-")), np.int64))
    return len(digits) == int(digits.max() - digits.min()) + 1
