"""Lines of a delimited file -> a table of string cells, one row per line, in C++ (pyarrow.csv).

CSV formats follow RFC 4180 (a delimiter or doubled quotes inside quotes); TSV is a plain split
on tabs (quotes are ordinary characters). A quoted value cannot span lines: files are split into
lines before parsing so that byte ranges can be read by many workers.

    parsed = split_cells(data, starts, ends, input_format, columns=block.columns)
    parsed.table        # pa.Table of strings: the format's columns, in the format's order
    parsed.rows         # index (into starts) of each table row
    parsed.bad, parsed.widths  # lines with another number of columns, and how many they had

`columns` are the file's own columns (from its header, `headers.py`): lines are split by them
and the format's columns picked by name, so a file may order its columns as it likes and hold
more. None: the file's columns are the format's (a headerless format).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from unified_embedding.contract.spec import InputFormat


@dataclass(frozen=True)
class Cells:
    table: pa.Table
    rows: np.ndarray  # int64 (table rows,): line index of each row
    bad: np.ndarray  # int64: line indexes with a wrong number of columns
    widths: np.ndarray  # int64: how many columns each of those had


def quoting(fmt: InputFormat) -> bool:
    """RFC 4180 quoting for CSV-like formats; a tab-separated file is split plainly."""
    return fmt.delimiter != "\t"


def split_cells(
    data: bytes,
    starts: np.ndarray,
    ends: np.ndarray,
    fmt: InputFormat,
    columns: tuple[str, ...] | None = None,
) -> Cells:
    """Parse the lines of `data` (whole lines, each ending in a newline) that start at
    `starts` and whose text (terminator excluded) ends at `ends`, as rows of `columns` (the
    file's, holding each of the format's columns once; None: the format's)."""
    names = fmt.columns if columns is None else columns
    buffer = np.frombuffer(data, dtype=np.uint8)
    lengths = ends - starts
    stops = ends + 1 + (buffer[ends] == 0x0D)  # each line with its "\n" or "\r\n"
    # A lone CR is a line break to pyarrow: such lines are parsed one by one instead.
    cr = np.flatnonzero(buffer == 0x0D)
    lone = np.zeros(len(starts), dtype=bool)
    if len(cr):
        line = np.searchsorted(starts, cr, side="right") - 1
        lone[line[cr < ends[line]]] = True  # a CR before the line's end, not of its CRLF
    fast = np.flatnonzero(~lone & (lengths > 0))
    every_line = len(fast) == int(np.count_nonzero(buffer == 0x0A))
    text = data if every_line else _selected(buffer, starts[fast], stops[fast])
    parts = [_parse_fast(text, data, starts[fast], ends[fast], names, fmt)]
    slow = np.flatnonzero(lone | (lengths == 0))
    if len(slow):
        parts.append(_parse_slow(data, starts[slow], ends[slow], names, fmt))
    return _merge(parts, [fast, slow])


def _parse_fast(
    text: bytes,
    block: bytes,
    starts: np.ndarray,
    ends: np.ndarray,
    names: tuple[str, ...],
    fmt: InputFormat,
) -> Cells:
    """pyarrow over `text`, the given lines (`starts`, `ends` locate them in the block, for
    the fallback); falls back to line-by-line parsing when the row count shows that quoting
    ran across lines (an unclosed quote)."""
    if not len(starts):
        return _cells([], np.zeros(0, np.int64), names, fmt)
    invalid: list[tuple[int, int]] = []

    def on_invalid(row: pa_csv.InvalidRow) -> str:
        invalid.append((row.number, row.actual_columns))
        return "skip"

    quote: str | bool = '"' if quoting(fmt) else False
    # A file's own column order: split by it, convert only the format's columns, by name.
    picked = list(fmt.columns) if names != fmt.columns else []
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(text),
            read_options=pa_csv.ReadOptions(
                column_names=list(names), use_threads=False, block_size=len(text) + 1
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=fmt.delimiter,
                quote_char=quote,
                double_quote=True,
                newlines_in_values=False,
                ignore_empty_lines=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={c: pa.string() for c in fmt.columns},
                include_columns=picked,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, ValueError) as e:
        logging.warning("pyarrow could not parse a block (%s); parsing it line by line", e)
        return _parse_slow(block, starts, ends, names, fmt)
    if table.num_rows + len(invalid) != len(starts) or _spans_lines(table, quote):
        return _parse_slow(block, starts, ends, names, fmt)
    numbers = np.array([n for n, _ in invalid], dtype=np.int64) - 1
    keep = np.ones(len(starts), dtype=bool)
    keep[numbers] = False
    return Cells(
        table.combine_chunks(),
        np.flatnonzero(keep).astype(np.int64),
        numbers,
        np.array([w for _, w in invalid], dtype=np.int64),
    )


def _selected(buffer: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> bytes:
    """The bytes of the lines [starts[i], stops[i]) concatenated, by one boolean mask."""
    delta = np.zeros(len(buffer) + 1, dtype=np.int8)
    delta[starts] += 1
    delta[stops] -= 1
    return buffer[np.cumsum(delta[:-1]) > 0].tobytes()


def _spans_lines(table: pa.Table, quote: str | bool) -> bool:
    """A value holding a newline means a quote ran across lines."""
    if not quote:
        return False
    import pyarrow.compute as pc

    return any(pc.any(pc.match_substring(column, "\n")).as_py() for column in table.columns)


def _parse_slow(
    data: bytes, starts: np.ndarray, ends: np.ndarray, names: tuple[str, ...], fmt: InputFormat
) -> Cells:
    """Line by line (the csv module, or a plain split for TSV): only for lines pyarrow cannot
    take as they are. A width of -1 marks a line that cannot be split (broken quoting)."""
    rows, kept, bad, widths = [], [], [], []
    for i, (start, end) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        cells = split_line(data[start:end].decode("utf-8", errors="replace"), fmt)
        if cells is not None and len(cells) == len(names):
            rows.append(cells)
            kept.append(i)
        else:
            bad.append(i)
            widths.append(-1 if cells is None else len(cells))
    parsed = _cells(rows, np.array(kept, dtype=np.int64), names, fmt)
    return Cells(parsed.table, parsed.rows, np.array(bad, np.int64), np.array(widths, np.int64))


def split_line(text: str, fmt: InputFormat) -> list[str] | None:
    """One line's cells as `fmt` splits them (quoting for CSV); None when quoting is broken."""
    if not text:
        return []
    if not quoting(fmt):
        return text.split(fmt.delimiter)
    try:
        return next(csv.reader([text], delimiter=fmt.delimiter, doublequote=True, strict=True))
    except csv.Error:
        return None


def _cells(
    rows: list[list[str]], index: np.ndarray, names: tuple[str, ...], fmt: InputFormat
) -> Cells:
    """Rows of `names`' cells -> a table of the format's columns."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    position = {name: i for i, name in enumerate(names)}
    table = pa.table({c: pa.array(columns[position[c]], pa.string()) for c in fmt.columns})
    empty = np.zeros(0, dtype=np.int64)
    return Cells(table, index, empty, empty)


def _merge(parts: list[Cells], lines: list[np.ndarray]) -> Cells:
    """Parts parsed from subsets of the lines -> one Cells in line order."""
    if len(parts) == 1:
        only = parts[0]
        return Cells(only.table, lines[0][only.rows], lines[0][only.bad], only.widths)
    rows = np.concatenate([index[p.rows] for p, index in zip(parts, lines, strict=False)])
    bad = np.concatenate([index[p.bad] for p, index in zip(parts, lines, strict=False)])
    widths = np.concatenate([p.widths for p in parts])
    order = np.argsort(rows, kind="stable")
    table = pa.concat_tables([p.table for p in parts]).take(pa.array(order))
    return Cells(table.combine_chunks(), rows[order], bad, widths)
