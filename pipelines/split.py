"""Which valid rows of a block go to the eval split: one small class per way of splitting, each
deciding a whole block at once and describing itself for stats.json (`split`).

    RandomSplit(0.1, key=None)          # a FarmHash bucket of the row's text (or key's value)
    FileSplit(eval_files)               # every row of the `--eval-input` files, none of `--input`
    ColumnSplit("hour", "14102200")     # rows whose `hour` is at or after 14102200

    assigned = split.assign(checked)    # assigned.eval: bool (valid,); assigned.without_value

A time-ordered split (`FileSplit`, `ColumnSplit`) makes the eval rows the future of the train
rows, as they will be when the model serves: a random split of a time-ordered log overstates
AUC. `ColumnSplit` compares numbers when `eval_from` is a number (float64: day indexes and Unix
times order as numbers, "9" < "10"), else strings by code point (ISO dates and timestamps order
correctly as strings). A cell of the other kind fails the job, naming it: a split that silently
compared "9" with "10" as strings would put the wrong rows in eval. A row whose cell is empty
(or a missing-value token) has no time: it trains, and stats.json counts it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.farmhash import fingerprint64
from unified_embedding.rows.arrow_tensors import pack_strings
from unified_embedding.rows.validation import NUMBER, CheckedBlock, number_cells

SPLIT_BUCKETS = 1_000_000


class Assigned(NamedTuple):
    eval: np.ndarray  # bool (valid rows,): True for an eval row
    without_value: int = 0  # rows placed in train for lack of a split value


class Split(Protocol):
    """Decides each valid row's split, a block at a time, and says how in stats.json."""

    def assign(self, checked: CheckedBlock) -> Assigned: ...

    def document(self, without_value: int) -> dict[str, Any]: ...

    def file_split(self, path: str) -> str | None: ...


@dataclass(frozen=True)
class RandomSplit:
    """`fraction` of the rows in eval by a FarmHash bucket of each row's text (or of its `key`
    column's value): the split depends on content alone, never on order or workers."""

    fraction: float
    key: str | None = None

    def assign(self, checked: CheckedBlock) -> Assigned:
        # FarmHash's Fingerprint64 in NumPy: the bucket `tf.strings.to_hash_bucket_fast` gives
        if self.key is not None:
            data, starts, lengths = pack_strings([checked.columns[self.key]])
        else:
            data, starts = checked.block.data, checked.starts[checked.rows]
            lengths = checked.ends[checked.rows] - starts
        buckets = fingerprint64(data, starts, lengths) % np.uint64(SPLIT_BUCKETS)
        return Assigned(buckets < round(self.fraction * SPLIT_BUCKETS))

    def document(self, without_value: int) -> dict[str, Any]:
        return {
            "method": "random",
            "time_ordered": False,
            "eval_fraction": self.fraction,
            "key": self.key,
        }

    def file_split(self, path: str) -> str | None:
        return None


@dataclass(frozen=True)
class FileSplit:
    """Every row of `eval_files` (matched by `eval_input`) is an eval row, every other row
    (`input`'s) a train row: e.g. train on one day, evaluate on the next."""

    eval_files: frozenset[str]
    input: str = ""
    eval_input: str = ""
    train_files: int = 0

    def assign(self, checked: CheckedBlock) -> Assigned:
        return Assigned(np.full(len(checked.rows), checked.block.source in self.eval_files))

    def document(self, without_value: int) -> dict[str, Any]:
        return {
            "method": "eval_input",
            "time_ordered": True,
            "input": self.input,
            "eval_input": self.eval_input,
            "train_files": self.train_files,
            "eval_files": len(self.eval_files),
        }

    def file_split(self, path: str) -> str | None:
        return "eval" if path in self.eval_files else "train"


class SplitValueError(ValueError):
    """A split column cell of the other kind than `--eval-from` (a number against a string)."""


def is_number(text: str) -> bool:
    """What the validation calls a number (ASCII decimal or scientific)."""
    return re.match(NUMBER, text) is not None


@dataclass(frozen=True)
class ColumnSplit:
    """Rows whose `column` value is at or after `eval_from` are eval rows, the rest train rows;
    numbers compare as numbers when `eval_from` is one, else strings compare by code point.
    Empty cells and `missing` tokens have no value: those rows train."""

    column: str
    eval_from: str
    missing: tuple[str, ...] = ()

    @property
    def numeric(self) -> bool:
        return is_number(self.eval_from)

    def assign(self, checked: CheckedBlock) -> Assigned:
        cells = checked.columns[self.column]
        present = _mask(pc.invert(pc.is_in(cells, value_set=pa.array(["", *self.missing]))))
        number = number_cells(cells)
        wrong = present & (~number if self.numeric else number)
        if wrong.any():
            raise SplitValueError(self._mixed(checked, int(np.flatnonzero(wrong)[0])))
        if self.numeric:
            values = pc.cast(pc.if_else(pa.array(number), cells, "0"), pa.float64())
            later = _mask(pc.greater_equal(values, float(self.eval_from)))
        else:
            later = _mask(pc.greater_equal(cells, self.eval_from))
        return Assigned(present & later, int((~present).sum()))

    def _mixed(self, checked: CheckedBlock, i: int) -> str:
        row = checked.rows[i : i + 1]
        line = int(checked.line_numbers(row)[0])
        where = f"line {line}" if line else f"byte offset {int(checked.offsets(row)[0])}"
        value = checked.columns[self.column][i].as_py()
        head = f"`--split-by {self.column}` holds {value!r} at {checked.block.source} {where}"
        if self.numeric:
            return (
                f"{head}, not a number, but `--eval-from {self.eval_from}` is one: the split "
                f"compares numbers, so every value of the column should be a number (or empty)"
            )
        return (
            f"{head}, a number, but `--eval-from {self.eval_from}` is not: the split compares "
            f"strings, so no value of the column should be a number (a column of numbers "
            f"needs a number as --eval-from)"
        )

    def document(self, without_value: int) -> dict[str, Any]:
        return {
            "method": "column",
            "time_ordered": True,
            "column": self.column,
            "eval_from": self.eval_from,
            "compare": "numbers" if self.numeric else "strings",
            "rows_without_value": without_value,
        }

    def file_split(self, path: str) -> str | None:
        return None


def _mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)
