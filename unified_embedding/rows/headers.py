"""A file's header line -> its column names, matched to the input format by name.

When a format has a header, each file names its own columns: in any order, with extra columns
or not, and files of one glob may differ. Rows are parsed with the file's own column list and
the format's columns are picked by name (`cells.split_cells`); extra columns are not read.
Every column the format lists (the label, the fields and the ignored columns alike: a key or
split column may be any of them) must be in each header, once. A file that lacks one fails,
naming the column and the file; to read files without an ignored column, drop it from the
schema's `columns`. Headerless formats are read by position.

    header = header_of(spec.input_format)      # None for a headerless format
    columns = header(b"id,city,clicked", "day1.csv")   # the file's columns, checked
    extra_columns(spec.input_format, columns)  # the columns no one reads: ("id",) ...
"""

from __future__ import annotations

from dataclasses import dataclass

from unified_embedding.contract.spec import InputFormat
from unified_embedding.rows.cells import split_line

_SHOWN = 12  # header names quoted in an error


class HeaderError(ValueError):
    """A header that does not name every column of the format, once; names the file."""


@dataclass(frozen=True)
class HeaderReader:
    """`HeaderReader(fmt)(line, source)`: the column names of a file's header line (BOM and
    line break removed), in file order; raises HeaderError naming the file and the column
    when a column of `fmt` is missing or named twice."""

    fmt: InputFormat

    def __call__(self, line: bytes, source: str) -> tuple[str, ...]:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise HeaderError(
                f"{source}: the header line is not UTF-8 (at byte {e.start})"
            ) from None
        cells = split_line(text, self.fmt)
        if cells is None:
            raise HeaderError(
                f"{source}: the header line cannot be split (unbalanced quotes). "
                f"Received: {text[:200]!r}"
            )
        columns = tuple(cells)
        missing = [c for c in self.fmt.columns if c not in columns]
        if missing:
            raise HeaderError(
                f"{source}: the header has no column `{missing[0]}`; every column of the "
                f"schema should be named in it (missing: {missing[:_SHOWN]}). "
                f"Received header: {_shown(columns)}"
            )
        twice = [c for c in self.fmt.columns if columns.count(c) > 1]
        if twice:
            raise HeaderError(
                f"{source}: the header names the column `{twice[0]}` more than once. "
                f"Received header: {_shown(columns)}"
            )
        return columns


def header_of(fmt: InputFormat) -> HeaderReader | None:
    """The header reader of a format, or None when its files have no header line."""
    return HeaderReader(fmt) if fmt.header else None


def extra_columns(fmt: InputFormat, columns: tuple[str, ...] | None) -> tuple[str, ...]:
    """The columns of a file (`LineBlock.columns`) that `fmt` does not list: ignored."""
    if columns is None or columns == fmt.columns:
        return ()
    known = set(fmt.columns)
    return tuple(c for c in columns if c not in known)


def _shown(columns: tuple[str, ...]) -> str:
    more = f" and {len(columns) - _SHOWN} more" if len(columns) > _SHOWN else ""
    return f"{list(columns[:_SHOWN])}{more}"
