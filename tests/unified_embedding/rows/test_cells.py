"""Lines -> cells (pyarrow's CSV parser, with a line-by-line fallback) against Python's csv
module as the oracle: lines written by `csv.writer` come back cell for cell, lines of another
width are reported with their width, whichever path parsed them.

    line  text (CSV, 3 columns)      -> rows / bad (width)
    0     1,"a,b",c                     row 0: ["1", "a,b", "c"]
    1     0,"a ""b"" c",                row 1: ["0", 'a "b" c', ""]
    2     1,x                           bad: 2 columns
    3     (empty)                       bad: 0 columns
    4     1,"cr\\rinside",z             row 2 (a lone CR: parsed by the csv module)
"""

import csv
import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unified_embedding.contract.spec import InputFormat
from unified_embedding.rows.cells import Cells, split_cells, split_line

CSV = InputFormat(columns=("y", "a", "b"), delimiter=",")
TSV = InputFormat(columns=("y", "a", "b"), delimiter="\t")
DIAGRAM = ['1,"a,b",c', '0,"a ""b"" c",', "1,x", "", '1,"cr\rinside",z']


def block(lines: list[str], terminator: str = "\n") -> tuple[bytes, np.ndarray, np.ndarray]:
    """The lines as a block's bytes, with each line's start and text end (terminator out)."""
    encoded = [line.encode() for line in lines]
    sizes = np.array([len(e) + len(terminator) for e in encoded], np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    ends = starts + np.array([len(e) for e in encoded], np.int64)
    return b"".join(e + terminator.encode() for e in encoded), starts, ends


def csv_line(cells: list[str], delimiter: str = ",") -> str:
    """One line as csv.writer writes it (a cell holding CR or LF quoted), without its end."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerow(cells)
    return out.getvalue().removesuffix("\r\n")


def oracle(lines: list[str], fmt: InputFormat, names: tuple[str, ...]) -> tuple[list, list]:
    """Rows of the format's columns, and (line, width) of the other lines: by Python's csv
    module (a plain split for TSV), one line at a time; width -1: the line cannot be split."""
    rows, bad = [], []
    for i, line in enumerate(lines):
        if fmt.delimiter == "\t":
            cells = line.split("\t") if line else []
        else:
            try:
                cells = next(csv.reader([line], delimiter=fmt.delimiter, strict=True), [])
            except csv.Error:  # an unquoted CR, a quote left open
                bad.append((i, -1))
                continue
        if len(cells) == len(names):
            by_name = dict(zip(names, cells, strict=True))
            rows.append([by_name[c] for c in fmt.columns])
        else:
            bad.append((i, len(cells)))
    return rows, bad


def parsed(cells: Cells, fmt: InputFormat) -> tuple[list, list]:
    table = cells.table
    assert table.column_names == list(fmt.columns)
    assert cells.rows.dtype == cells.bad.dtype == np.int64
    assert cells.rows.tolist() == sorted(cells.rows.tolist())  # rows in line order
    columns = [table.column(c).to_pylist() for c in fmt.columns]
    rows = [list(r) for r in zip(*columns, strict=True)]
    return rows, sorted(zip(cells.bad.tolist(), cells.widths.tolist(), strict=True))


def check(
    lines: list[str],
    fmt: InputFormat,
    names: tuple[str, ...] | None = None,
    terminator: str = "\n",
) -> None:
    data, starts, ends = block(lines, terminator)
    cells = split_cells(data, starts, ends, fmt, columns=names)
    expected_rows, expected_bad = oracle(lines, fmt, names or fmt.columns)
    rows, bad = parsed(cells, fmt)
    assert rows == expected_rows
    assert bad == expected_bad
    assert len(cells.rows) + len(cells.bad) == len(lines)  # every line is a row or bad


def test_the_diagram() -> None:
    check(DIAGRAM, CSV)
    cells = split_cells(*block(DIAGRAM), CSV)
    assert cells.rows.tolist() == [0, 1, 4] and cells.bad.tolist() == [2, 3]
    assert cells.table.column("a").to_pylist() == ["a,b", 'a "b" c', "cr\rinside"]


def test_crlf_line_ends() -> None:
    check(['1,"a,b",c', "0,d,e", "1,x"], CSV, terminator="\r\n")
    check(["1\ta\tb", "0\t\t"], TSV, terminator="\r\n")


def test_tsv_splits_plainly_and_keeps_quotes() -> None:
    lines = ['1\t"a\tb"\tc', '0\t"q"\t', "1\tx"]
    check(lines, TSV)
    rows, _ = parsed(split_cells(*block(lines), TSV), TSV)
    assert rows == [["0", '"q"', ""]]  # the quoted tab split the first line into 4 cells


def test_a_files_own_column_order_and_extra_columns() -> None:
    names = ("b", "extra", "y", "a")  # the file's header order
    lines = [csv_line(["B", "x", "1", "A"]), csv_line(["b2", "", "0", 'q"uote']), "1,2"]
    check(lines, CSV, names)


def test_an_unclosed_quote_is_one_bad_line() -> None:
    lines = ["1,x,y", '0,"unclosed,z', "1,u,v"]
    cells = split_cells(*block(lines), CSV)
    assert cells.rows.tolist() == [0, 2] and cells.bad.tolist() == [1]
    assert split_line('0,"unclosed,z', CSV) is None  # the line-by-line path cannot split it


# Cells as csv.writer quotes them: delimiters, quotes, lone CRs, unicode; no NUL or LF (a NUL
# line is undecodable before splitting; an LF ends the line).
csv_cells = st.text(st.characters(codec="utf-8", exclude_characters="\x00\n"), max_size=8)
tsv_cells = st.text(st.characters(codec="utf-8", exclude_characters="\x00\n\r\t"), max_size=8)
FUZZ = settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@FUZZ
@given(st.lists(st.lists(csv_cells, min_size=1, max_size=5), max_size=12), st.booleans())
def test_csv_lines_come_back_as_the_csv_module_reads_them(rows: list, crlf: bool) -> None:
    check([csv_line(r) for r in rows], CSV, terminator="\r\n" if crlf else "\n")


@FUZZ
@given(st.lists(st.lists(csv_cells, min_size=4, max_size=4), max_size=12))
def test_csv_lines_in_the_files_own_order(rows: list) -> None:
    check([csv_line(r) for r in rows], CSV, names=("a", "skip", "b", "y"))


@FUZZ
@given(st.lists(st.lists(st.text("ab,\r é", max_size=6), min_size=1, max_size=5), max_size=12))
def test_csv_lines_with_unquoted_crs_cannot_be_split(rows: list) -> None:
    check([",".join(r) for r in rows], CSV)


@FUZZ
@given(st.lists(st.lists(tsv_cells, min_size=1, max_size=5), max_size=12))
def test_tsv_lines_come_back_split_on_tabs(rows: list) -> None:
    check(["\t".join(r) for r in rows], TSV)
