"""The rules a raw row must meet, checked a block of lines at a time, shared by the Beam jobs
and the in-process reader.

    checked = BlockValidator(spec).validate(block)
    checked.columns["C1"]   # pa.StringArray of the valid rows (missing tokens -> "")
    checked.labels          # float32 (valid,), NaN where an optional label is absent
    checked.dead            # [DeadRow(line index, reason, detail naming the field and value)]

Every line ends as a valid row or a dead row with a reason from `REASONS`. The checks run as
pyarrow/NumPy column operations; Python touches only the dead rows (to word their detail).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.rows.cells import split_cells
from unified_embedding.rows.textfile import LineBlock, text_ends

REASONS = (
    "undecodable",
    "wrong_column_count",
    "bad_label",
    "non_numeric",
    "field_too_long",
    "non_finite",
)
# ASCII decimal or scientific numbers only: what Python, pyarrow and TensorFlow parse alike.
NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # beyond it a value is inf to the model
_SAFE_DIGITS = 38  # a plain digit string this long or shorter is finite in float32


@dataclass(frozen=True)
class DeadRow:
    line: int  # index of the line in its block
    reason: str
    detail: str


@dataclass
class CheckedBlock:
    """A block after validation: the valid rows' cells and labels, and the dead rows."""

    block: LineBlock
    columns: dict[str, pa.Array]  # every column of the input format (by name), valid rows only
    labels: np.ndarray  # float32 (valid,)
    rows: np.ndarray  # int64 (valid,): line index in the block
    starts: np.ndarray  # int64 (lines,): where each line starts in block.data
    ends: np.ndarray  # int64 (lines,): where its text ends (terminator excluded)
    dead: list[DeadRow] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return len(self.starts)

    def offsets(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Byte offset in the file of each valid row (or of the given line indexes)."""
        rows = self.rows if rows is None else rows
        return self.block.offset + self.starts[rows]

    def line_numbers(self, rows: np.ndarray | None = None) -> np.ndarray:
        """1-based line numbers, or zeros when the block's position in lines is unknown."""
        rows = self.rows if rows is None else rows
        return (self.block.line + rows) if self.block.line else np.zeros_like(rows)

    def raw(self, line: int) -> str:
        return self.block.data[self.starts[line] : self.ends[line]].decode(
            "utf-8", errors="backslashreplace"
        )

    def dead_letters(self) -> list[str]:
        """One JSON line per dead row: where it came from, its text and why it was rejected."""
        return [
            json.dumps(
                {
                    "source": self.block.source,
                    "line": int(self.line_numbers(np.array([d.line]))[0]) or None,
                    "offset": int(self.offsets(np.array([d.line]))[0]),
                    "raw": self.raw(d.line),
                    "reason": d.reason,
                    "detail": d.detail,
                }
            )
            for d in self.dead
        ]

    def dead_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(REASONS, 0)
        for d in self.dead:
            counts[d.reason] += 1
        return counts


class BlockValidator:
    """The checks, as a plain object (testable without Beam).

    Args:
        spec: the feature contract (input format, label, fields, missing-value tokens, and
            `input_format.max_field_chars`: longer cells are dead-lettered as `field_too_long`).
        label_required: False when scoring: an empty label is allowed (NaN), others must be 0/1.
    """

    def __init__(self, spec: FeatureSpec, label_required: bool = True) -> None:
        self.spec = spec
        self.max_field_chars = spec.input_format.max_field_chars
        self.label_required = label_required
        self._missing = pa.array(spec.input_format.missing, pa.string())

    def validate(self, block: LineBlock) -> CheckedBlock:
        starts = block.line_starts()
        ends = text_ends(block.data, starts)
        reason = np.zeros(len(starts), dtype=np.int8)  # 0 = valid, else 1 + REASONS index
        details: dict[int, str] = {}
        for line, detail in _undecodable(block.data, starts).items():
            reason[line], details[line] = 1 + REASONS.index("undecodable"), detail
        candidates = np.flatnonzero(reason == 0)
        fmt = self.spec.input_format
        cells = split_cells(block.data, starts[candidates], ends[candidates], fmt, block.columns)
        width = len(fmt.columns if block.columns is None else block.columns)
        for line, found in zip(candidates[cells.bad].tolist(), cells.widths.tolist(), strict=True):
            reason[line] = 1 + REASONS.index("wrong_column_count")
            details[line] = _wrong_width(width, found)
        rows = candidates[cells.rows]
        columns = {
            name: cells.table.column(name).combine_chunks() for name in cells.table.column_names
        }
        columns = self._blank_missing(columns)
        long_rows = (ends - starts)[rows] > self.max_field_chars
        verdict, words = self._check_cells(columns, long_rows)
        for i in np.flatnonzero(verdict).tolist():
            reason[rows[i]], details[int(rows[i])] = verdict[i], words(i)
        ok = verdict == 0
        if ok.all():
            valid = columns
        else:
            mask = pa.array(ok)
            valid = {name: column.filter(mask) for name, column in columns.items()}
        dead = [
            DeadRow(i, REASONS[reason[i] - 1], details[i]) for i in np.flatnonzero(reason).tolist()
        ]
        return CheckedBlock(
            block, valid, self._labels(valid[self.spec.label]), rows[ok], starts, ends, dead
        )

    def _blank_missing(self, columns: dict[str, pa.Array]) -> dict[str, pa.Array]:
        """Declared missing-value tokens (`null`, `\\N`, ...) become empty cells in the fields."""
        if not len(self._missing):
            return columns
        out = dict(columns)
        for f in self.spec.fields:
            column = columns[f.name]
            out[f.name] = pc.if_else(pc.is_in(column, value_set=self._missing), "", column)
        return out

    def _check_cells(
        self, columns: dict[str, pa.Array], long_rows: np.ndarray
    ) -> tuple[np.ndarray, Any]:
        """Per row: 0 or 1 + the index of the first failing reason; and a function wording it.
        Only `long_rows` (lines longer than the limit) can hold a cell that is too long."""
        n = len(long_rows)
        verdict = np.zeros(n, dtype=np.int8)
        checks: list[tuple[str, str, np.ndarray]] = []  # (reason, column, failing rows mask)
        if long_rows.any():
            for name, column in columns.items():
                length = pc.utf8_length(column)
                checks.append(
                    ("field_too_long", name, _mask(pc.greater(length, self.max_field_chars)))
                )
        label = columns[self.spec.label]
        ok_label = pc.is_in(label, value_set=pa.array(["0", "1"]))
        if not self.label_required:
            ok_label = pc.or_(ok_label, pc.equal(label, ""))
        checks.append(("bad_label", self.spec.label, ~_mask(ok_label)))
        for f in self.spec.numeric_fields:
            column = columns[f.name]
            present = _mask(pc.not_equal(column, ""))
            number = number_cells(column)
            checks.append(("non_numeric", f.name, present & ~number))
            longest = pc.max(pc.binary_length(column)).as_py() or 0
            if longest > _SAFE_DIGITS or not _mask(pc.ascii_is_decimal(column))[present].all():
                values = pc.cast(pc.if_else(pa.array(number), column, "0"), pa.float64())
                checks.append(("non_finite", f.name, number & ~_finite32(values)))
        order = {
            r: i for i, r in enumerate(("field_too_long", "bad_label", "non_numeric", "non_finite"))
        }
        checks.sort(key=lambda c: order[c[0]])  # the first failing rule names the row
        first_column: dict[int, tuple[str, str]] = {}
        for reason, name, failing in checks:
            fresh = failing & (verdict == 0)
            if fresh.any():
                verdict[fresh] = 1 + REASONS.index(reason)
                for i in np.flatnonzero(fresh).tolist():
                    first_column[i] = (reason, name)

        def words(i: int) -> str:
            reason, name = first_column[i]
            value = columns[name][i].as_py()
            return _detail(reason, name, value, self)

        return verdict, words

    def _labels(self, label: pa.Array) -> np.ndarray:
        values = pc.if_else(pc.equal(label, ""), None, label)
        return np.asarray(pc.cast(values, pa.float32()).to_numpy(zero_copy_only=False), np.float32)


def _wrong_width(width: int, found: int) -> str:
    if found < 0:
        return f"expected {width} columns; the row cannot be split (unbalanced quotes or a CR)"
    return f"expected {width} columns, found {found if found else 'an empty line'}"


def _detail(reason: str, name: str, value: str, validator: BlockValidator) -> str:
    if reason == "field_too_long":
        return f"field `{name}` has {len(value)} characters (max {validator.max_field_chars})"
    if reason == "bad_label":
        allowed = "0 or 1" if validator.label_required else "0, 1 or empty"
        return f"label `{name}` should be {allowed}. Received: {value!r}"
    if reason == "non_numeric":
        return f"field `{name}` is not a number: {value!r} (ASCII decimal digits expected)"
    return f"field `{name}` is not a finite float32 number: {value!r}"


def number_cells(column: pa.Array) -> np.ndarray:
    """Cells that are ASCII decimal numbers. Plain digit strings (most cells of count data)
    pass a cheap test; only the rest meet the regular expression."""
    plain = _mask(pc.ascii_is_decimal(column))
    rest = np.flatnonzero(~plain)
    if len(rest):
        plain[rest] = _mask(pc.match_substring_regex(column.take(pa.array(rest)), NUMBER))
    return plain


def _mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)


def _finite32(values: pa.Array) -> np.ndarray:
    x = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    return np.abs(x) <= _FLOAT32_MAX  # False for inf and NaN too


def _undecodable(data: bytes, starts: np.ndarray) -> dict[int, str]:
    """Lines that are not UTF-8 or hold a NUL byte -> detail. One C-speed decode of the whole
    block when it is clean; line by line only past the first bad byte."""
    out: dict[int, str] = {}
    buffer = np.frombuffer(data, dtype=np.uint8)
    for position in np.flatnonzero(buffer == 0).tolist():
        out.setdefault(
            int(np.searchsorted(starts, position, side="right") - 1), "contains a NUL byte"
        )
    position = 0
    while position < len(data):
        try:
            data[position:].decode("utf-8")
            break
        except UnicodeDecodeError as e:
            line = int(np.searchsorted(starts, position + e.start, side="right") - 1)
            out[line] = f"not UTF-8 at byte {position + e.start - starts[line]}"
            position = int(starts[line + 1]) if line + 1 < len(starts) else len(data)
    return out
