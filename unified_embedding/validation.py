"""The rules a raw row must meet, shared by the Beam pipeline and the in-process reader.

`RowValidator.validate(line)` returns the row's field values (spec order), label and split key,
or raises `InvalidRow` with a reason from `REASONS` and a detail naming the field and value.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from unified_embedding.spec import FeatureSpec

REASONS = (
    "undecodable",
    "wrong_column_count",
    "bad_label",
    "non_numeric",
    "field_too_long",
)
# Plain decimal or scientific numbers only: what Python and TensorFlow both parse the same way.
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class ValidRow(NamedTuple):
    values: tuple[str, ...]  # the spec's fields, in spec order
    label: float
    split_key: int  # 64-bit digest of the row (or of its id column): decides train/eval


class InvalidRow(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def split_digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


class RowValidator:
    """The checks, as a plain object (testable without Beam)."""

    def __init__(self, spec: FeatureSpec, max_field_chars: int, split_column: str | None) -> None:
        columns = spec.input_format.columns
        self.spec = spec
        self.delimiter = spec.input_format.delimiter
        self.width = len(columns)
        self.label_index = columns.index(spec.label)
        self.field_indexes = [columns.index(f.name) for f in spec.fields]
        self.numeric = [(columns.index(f.name), f.name) for f in spec.numeric_fields]
        self.split_index = columns.index(split_column) if split_column else None
        self.max_field_chars = max_field_chars

    def validate(self, data: bytes) -> ValidRow:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidRow("undecodable", f"not UTF-8 at byte {e.start}") from None
        if "\x00" in text:
            raise InvalidRow("undecodable", "contains a NUL byte")
        cells = text.split(self.delimiter)
        if len(cells) != self.width:
            raise InvalidRow(
                "wrong_column_count", f"expected {self.width} columns, found {len(cells)}"
            )
        columns = self.spec.input_format.columns
        for i, cell in enumerate(cells):
            if len(cell) > self.max_field_chars:
                raise InvalidRow(
                    "field_too_long",
                    f"field `{columns[i]}` has {len(cell)} characters (max {self.max_field_chars})",
                )
        label = cells[self.label_index]
        if label not in ("0", "1"):
            raise InvalidRow(
                "bad_label", f"label `{self.spec.label}` should be 0 or 1. Received: {label!r}"
            )
        for i, name in self.numeric:
            if cells[i] and not _NUMBER.match(cells[i]):
                raise InvalidRow("non_numeric", f"field `{name}` is not a number: {cells[i]!r}")
        key = cells[self.split_index] if self.split_index is not None else text
        return ValidRow(
            tuple(cells[i] for i in self.field_indexes), float(label), split_digest(key)
        )
