"""How raw rows are laid out: columns, delimiter, header, missing-value cells, the cell limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from unified_embedding.contract.errors import require

# The longest cell (in characters) a row may hold, everywhere raw rows are read: preprocessing
# and scoring dead-letter longer ones, the serving APIs refuse them (INVALID_ARGUMENT / 400).
MAX_FIELD_CHARS = 1000
_NOT_DELIMITERS = ("\n", "\r", '"', "\0")


@dataclass(frozen=True)
class InputFormat:
    """How raw rows are laid out: `columns` in file order (label and ignored columns included);
    with `header`, each file's first line names its columns and they are matched by name, in
    any order, extra columns ignored (`headers.py`);
    `missing`: cell values that mean "missing" besides the empty cell (e.g. `null`, `\\N`);
    `max_field_chars`: longer cells make a row invalid, in every reader and API.
    CSV formats are read with RFC 4180 quoting; a tab delimiter means a plain split."""

    columns: tuple[str, ...]
    delimiter: str = "\t"
    header: bool = False
    missing: tuple[str, ...] = ()
    max_field_chars: int = MAX_FIELD_CHARS

    def __post_init__(self) -> None:
        for name in ("columns", "missing"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        require(
            all(isinstance(m, str) for m in self.missing),
            f"`missing` should be a list of strings. Received: `missing={list(self.missing)!r}`",
        )
        require(
            len(self.columns) > 0 and all(isinstance(c, str) and c for c in self.columns),
            f"`columns` should be a non-empty list of names. Received: `columns={self.columns!r}`",
        )
        repeated = sorted({c for c in self.columns if self.columns.count(c) > 1})
        require(not repeated, f"`columns` should not repeat names. Received duplicates {repeated}")
        require(
            isinstance(self.delimiter, str) and len(self.delimiter) == 1,
            f"`delimiter` should be one character. Received: `delimiter={self.delimiter!r}`",
        )
        require(
            self.delimiter not in _NOT_DELIMITERS,
            f"`delimiter` cannot be a line break, a quote or a NUL. "
            f"Received: `delimiter={self.delimiter!r}`",
        )
        limit = self.max_field_chars
        require(
            isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1,
            f"`max_field_chars` should be a positive integer. "
            f"Received: `max_field_chars={limit!r}`",
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "columns": list(self.columns),
            "delimiter": self.delimiter,
            "header": self.header,
        }
        # Only when set: specs without them keep their fingerprint.
        if self.missing:
            out["missing"] = list(self.missing)
        if self.max_field_chars != MAX_FIELD_CHARS:
            out["max_field_chars"] = self.max_field_chars
        return out
