"""The first rows of a delimited file as a table of string cells, with its delimiter and header
guessed when not given: what `infer.py` proposes a schema from.

    sample = read_sample("day1.csv.gz", SampleConfig(sample_rows=10_000))
    sample.delimiter, sample.header, sample.names  # ",", True, ("id", "click", ...)
    sample.cells["click"]                          # pa.StringArray, one cell per data row

Files are read as every job reads them (`textfile`: decompression by extension, BOM, quoting
by `cells`). The guesses:

- delimiter: of tab, comma, semicolon and pipe, the one that splits the first lines into the
  most columns, the same number on (almost) every line;
- header: the first line is a header when its cells are distinct, non-empty names and none is a
  number, while the lines below hold numbers in some column (a headerless first line holds the
  row's 0/1 label) or do not repeat a first-line cell in its column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from unified_embedding.contract.spec import InputFormat
from unified_embedding.rows.cells import split_cells, split_line
from unified_embedding.rows.textfile import LineBlock, file_blocks, text_ends
from unified_embedding.rows.validation import NUMBER
from unified_embedding.runtime.flags import option

DELIMITERS = ("\t", ",", ";", "|")  # ties go to the first
_GUESS_LINES = 20  # lines that vote on the delimiter
_AGREEING = 0.9  # share of those lines that must split into the first line's width
_NUMBER = re.compile(NUMBER)


class SampleError(ValueError):
    """A file no schema can be proposed for (empty, one column, broken first line)."""


@dataclass(frozen=True)
class SampleConfig:
    """How a sample is read (the flags of `ue schema infer`)."""

    sample_rows: int = option(10_000, "data rows read from the start of FILE")
    delimiter: str | None = option(
        None, "the column delimiter; when not given, guessed among tab, comma, semicolon, pipe"
    )
    header: bool | None = option(
        None, "whether the first line names the columns; when not given, guessed"
    )

    def __post_init__(self) -> None:
        if self.sample_rows < 1:
            raise SampleError(
                f"`sample_rows` should be >= 1. Received: `sample_rows={self.sample_rows}`"
            )


@dataclass(frozen=True)
class Sample:
    """Up to `rows` data lines of `source`, header excluded. `cells` holds the lines that split
    into `len(names)` cells; `bad_lines` counts the others (they would be dead letters)."""

    source: str
    delimiter: str
    header: bool
    names: tuple[str, ...]
    cells: pa.Table
    lines: int
    bad_lines: int

    @property
    def rows(self) -> int:
        return self.cells.num_rows


def read_sample(path: str | Path, config: SampleConfig) -> Sample:
    """The first `config.sample_rows` data rows of `path` (see the module docstring)."""
    source = str(path)
    with open(source, "rb") as raw:
        block = next(file_blocks(raw, source, None, config.sample_rows + 1), None)
    if block is None or not block.data.strip():
        raise SampleError(f"{source}: the file holds no line")
    starts = block.line_starts()
    ends = text_ends(block.data, starts)
    first_text = block.data[starts[0] : ends[0]].decode("utf-8", errors="replace")
    delimiter = config.delimiter or guess_delimiter(block, starts, ends)
    first = split_line(first_text, InputFormat(("c0",), delimiter))
    if not first or len(first) < 2:
        raise SampleError(
            f"{source}: the first line does not split into columns on "
            f"{delimiter!r}; pass `--delimiter`. Received: {first_text[:120]!r}"
        )
    generic = tuple(f"c{i}" for i in range(len(first)))
    parsed = split_cells(block.data, starts, ends, InputFormat(generic, delimiter))
    table, rows = parsed.table, parsed.rows
    below = table.filter(pa.array(rows > 0))
    header = looks_like_header(first, below) if config.header is None else config.header
    offset = 1 if header else 0
    data_lines = min(len(starts) - offset, config.sample_rows)
    if data_lines == 0:
        raise SampleError(f"{source}: the file holds a header line and no row")
    keep = (rows >= offset) & (rows < offset + data_lines)
    names = tuple(first) if header else generic
    cells = table.filter(pa.array(keep)).rename_columns(list(names))
    return Sample(source, delimiter, header, names, cells, data_lines, data_lines - int(keep.sum()))


def guess_delimiter(block: LineBlock, starts: np.ndarray, ends: np.ndarray) -> str:
    """The delimiter that splits the first lines into the most columns, the same on 90% of
    them; "," when none splits them into two or more."""
    texts = [
        block.data[s:e].decode("utf-8", errors="replace")
        for s, e in zip(starts[:_GUESS_LINES].tolist(), ends[:_GUESS_LINES].tolist(), strict=True)
    ]
    best, best_width = ",", 1
    for delimiter in DELIMITERS:
        fmt = InputFormat(("c0",), delimiter)
        widths = [len(split_line(text, fmt) or ()) for text in texts]
        agreeing = sum(w == widths[0] for w in widths) >= _AGREEING * len(widths)
        if agreeing and widths[0] > best_width:
            best, best_width = delimiter, widths[0]
    return best


def looks_like_header(first: list[str], below: pa.Table) -> bool:
    """True when `first` reads as column names over the data rows `below` (module docstring)."""
    names = len(set(first)) == len(first) and all(c and not _NUMBER.match(c) for c in first)
    if not names or below.num_rows == 0:
        return names
    numbers_below = any(
        bool(pc.all(pc.match_substring_regex(column, NUMBER)).as_py()) for column in below.columns
    )
    repeated = any(
        bool(pc.any(pc.equal(column, cell)).as_py())
        for cell, column in zip(first, below.columns, strict=True)
    )
    return numbers_below or not repeated
