"""Headers are read by name: a file's columns map to the schema's in any order, extra columns
are ignored and reported, and a missing column fails naming it and the file (in-process reader,
block validator, and the Beam job's start check, before anything is written).

    schema (MOVIES): id, clicked, age, city   label `clicked`, `id` ignored, `age` numeric

    id  clicked  age  city        the rows of every test file, whatever its column order
    1   1        30   paris
    2   0        41   rome
    3   1        ""   lyon
"""

import gzip
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.read import check_headers, matched_files
from unified_embedding.contract.schemas import criteo, from_short_form
from unified_embedding.rows.headers import HeaderError, extra_columns, header_of
from unified_embedding.rows.reader import parse_bytes, read_rows
from unified_embedding.rows.textfile import file_blocks
from unified_embedding.rows.validation import BlockValidator

MOVIES = {
    "name": "movies",
    "columns": ["id", "clicked", "age", "city"],
    "label": "clicked",
    "ignore": ["id"],
    "numeric": {"age": "log1p"},
    "header": True,
}
SPEC = from_short_form(MOVIES)
TSV = from_short_form({**MOVIES, "delimiter": "\t"})
ROWS = [
    {"id": "1", "clicked": "1", "age": "30", "city": "paris"},
    {"id": "2", "clicked": "0", "age": "41", "city": "rome"},
    {"id": "3", "clicked": "1", "age": "", "city": "lyon"},
]


def text(columns: list[str], sep: str = ",", end: str = "\n", extra: dict | None = None) -> str:
    """The rows with a header of `columns` (schema columns in any order, or extra ones:
    `extra[name]` is that column's value in every row)."""
    values = [{**row, **(extra or {})} for row in ROWS]
    lines = [sep.join(columns), *(sep.join(v[c] for c in columns) for v in values)]
    return end.join(lines) + end


def assert_rows_read_correctly(columns: dict, labels: np.ndarray) -> None:
    assert list(columns["age"]) == ["30", "41", ""]
    assert list(columns["city"]) == ["paris", "rome", "lyon"]
    assert labels.tolist() == [1.0, 0.0, 1.0]


def test_reordered_header_columns_land_in_their_fields() -> None:
    # Before: the header was dead-lettered and `age`/`city` were read swapped.
    rows = parse_bytes(SPEC, text(["city", "clicked", "id", "age"]).encode())
    assert_rows_read_correctly(rows.columns, rows.labels)


def test_validator_columns_follow_each_blocks_file_columns() -> None:
    data = text(["age", "city", "id", "clicked"]).encode()
    blocks = list(file_blocks(io.BytesIO(data), "f.csv", header_of(SPEC.input_format), 2))
    assert [b.columns for b in blocks] == [("age", "city", "id", "clicked")] * 2
    assert [b.line for b in blocks] == [2, 4]  # the header is line 1
    checked = [BlockValidator(SPEC).validate(b) for b in blocks]
    assert not any(c.dead for c in checked)
    assert list(checked[0].columns) == ["id", "clicked", "age", "city"]  # the schema's order
    columns = {
        name: [value for c in checked for value in c.columns[name].to_pylist()]
        for name in SPEC.input_format.columns
    }
    assert_rows_read_correctly(columns, np.concatenate([c.labels for c in checked]))
    assert columns["id"] == ["1", "2", "3"]


def test_extra_columns_are_ignored_and_reported(tmp_path: Path) -> None:
    header = ["note", "city", "clicked", "age", "id", "score"]
    (tmp_path / "a.csv").write_text(text(header, extra={"note": "x", "score": "not a number"}))
    (tmp_path / "b.csv").write_text(text(MOVIES["columns"]))
    rows = read_rows(SPEC, tmp_path / "a.csv")
    assert_rows_read_correctly(rows.columns, rows.labels)
    assert "note" not in rows.columns
    files = matched_files(str(tmp_path / "*.csv"))
    assert check_headers(files, SPEC.input_format) == {
        str(tmp_path / "a.csv"): ("note", "score"),
        str(tmp_path / "b.csv"): (),
    }
    assert extra_columns(SPEC.input_format, tuple(header)) == ("note", "score")


@pytest.mark.parametrize(
    ("spec", "data"),
    [  # lines pyarrow cannot take as they are, parsed one by one: still by name
        (SPEC, b'age,x,city,clicked,id\n30,e,paris,1,1\n"41,e,rome,0,2\n,e,lyon,1,3\n'),
        (TSV, b"age\tx\tcity\tclicked\tid\n30\te\tparis\t1\t1\n41\te\r\tlyon\t1\t3\n"),
    ],
)
def test_lines_parsed_one_by_one_are_mapped_by_name_too(spec: Any, data: bytes) -> None:
    blocks = list(file_blocks(io.BytesIO(data), "f", header_of(spec.input_format), 10))
    checked = BlockValidator(spec).validate(blocks[0])
    assert [d.line for d in checked.dead] == ([1] if spec is SPEC else [])
    assert checked.columns["city"].to_pylist()[0] == "paris"
    assert checked.columns["age"].to_pylist() == (["30", ""] if spec is SPEC else ["30", "41"])
    assert checked.columns["id"].to_pylist() == ["1", "3"]


def test_wrong_column_count_compares_with_the_headers_width() -> None:
    data = "city,extra,clicked,age,id\nparis,e,1,30,1\nrome,0,41,2\n"
    blocks = list(file_blocks(io.BytesIO(data.encode()), "f.csv", header_of(SPEC.input_format), 10))
    checked = BlockValidator(SPEC).validate(blocks[0])
    assert [(d.line, d.reason, d.detail) for d in checked.dead] == [
        (1, "wrong_column_count", "expected 5 columns, found 4")
    ]
    assert checked.columns["city"].to_pylist() == ["paris"]


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        (["city", "clicked", "age"], "id"),  # an ignored column is required too
        (["city", "click", "id", "age"], "clicked"),  # renamed: was read as a data row
        (["city", "clicked", "id", "Age"], "age"),
    ],
)
def test_a_missing_or_renamed_column_fails_naming_it(header: list[str], missing: str) -> None:
    data = ",".join(header) + "\nparis,1,1,30\n"
    with pytest.raises(HeaderError, match=rf"^<input>: the header has no column `{missing}`"):
        parse_bytes(SPEC, data.encode())


def test_a_column_named_twice_fails() -> None:
    with pytest.raises(HeaderError, match=r"names the column `age` more than once"):
        parse_bytes(SPEC, b"city,clicked,id,age,age\nparis,1,1,30,31\n")


def test_bom_and_crlf_header() -> None:
    data = "\ufeff" + text(["city", "age", "id", "clicked"], end="\r\n")
    rows = parse_bytes(SPEC, data.encode())
    assert_rows_read_correctly(rows.columns, rows.labels)


def test_csv_header_with_quoted_names() -> None:
    header = '"city","clicked",id,"age","note, free ""text"""'
    lines = [header, 'paris,1,1,30,"a, b"', "rome,0,2,41,c", "lyon,1,3,,d"]
    rows = parse_bytes(SPEC, ("\n".join(lines) + "\n").encode())
    assert_rows_read_correctly(rows.columns, rows.labels)
    reader = header_of(SPEC.input_format)
    assert reader is not None and reader(header.encode(), "f.csv")[-1] == 'note, free "text"'


def test_tsv_header_by_name_and_quotes_are_plain_characters() -> None:
    rows = parse_bytes(TSV, text(["age", "id", "city", "clicked"], sep="\t").encode())
    assert_rows_read_correctly(rows.columns, rows.labels)
    with pytest.raises(HeaderError, match=r"has no column `city`.*'\"city\"'"):
        parse_bytes(TSV, b'"city"\tclicked\tid\tage\nparis\t1\t1\t30\n')


def test_header_errors_are_one_line_naming_the_file() -> None:
    with pytest.raises(HeaderError, match=r"^f\.csv: the header line is not UTF-8") as caught:
        header_of(SPEC.input_format)(b"city,\xff,clicked", "f.csv")  # type: ignore[misc]
    assert "\n" not in str(caught.value)
    with pytest.raises(HeaderError, match=r"^f\.csv: the header line cannot be split"):
        header_of(SPEC.input_format)(b'city,"clicked,id,age', "f.csv")  # type: ignore[misc]


def test_headerless_formats_stay_positional() -> None:
    assert header_of(criteo().input_format) is None
    first = "\t".join(criteo().input_format.columns)  # a header line where none is expected
    row = "1\t" + "\t".join(["3"] * 13) + "\t" + "\t".join(["a"] * 26)
    blocks = list(file_blocks(io.BytesIO(f"{first}\n{row}\n".encode()), "f.tsv", None, 10))
    assert blocks[0].columns is None
    checked = BlockValidator(criteo()).validate(blocks[0])
    assert [d.reason for d in checked.dead] == ["bad_label"]  # read as a row, by position
    assert checked.columns["I1"].to_pylist() == ["3"] and checked.columns["C1"].to_pylist() == ["a"]


def test_the_job_start_check_reads_compressed_files_and_bom(tmp_path: Path) -> None:
    (tmp_path / "a.csv.gz").write_bytes(
        gzip.compress(text(["age", "clicked", "city", "id", "x"], extra={"x": "1"}).encode())
    )
    (tmp_path / "b.csv").write_bytes(
        b"\xef\xbb\xbf" + text(["id", "clicked", "age", "city"], end="\r\n").encode()
    )
    (tmp_path / "c.csv").write_bytes(b"")  # no header, no rows: not a header error
    files = matched_files(str(tmp_path / "*"))
    assert check_headers(files, SPEC.input_format) == {
        str(tmp_path / "a.csv.gz"): ("x",),
        str(tmp_path / "b.csv"): (),
        str(tmp_path / "c.csv"): (),
    }
    (tmp_path / "d.csv.gz").write_bytes(gzip.compress(b"city,clicked,id\nparis,1,1\n"))
    with pytest.raises(HeaderError, match=r"d\.csv\.gz: the header has no column `age`"):
        check_headers(matched_files(str(tmp_path / "*")), SPEC.input_format)
    assert check_headers(files, criteo().input_format) == {}  # headerless: nothing to read


def test_the_beam_job_fails_before_writing_when_a_file_lacks_a_column(tmp_path: Path) -> None:
    from pipelines.preprocess import run

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text(text(MOVIES["columns"]))
    (tmp_path / "in" / "b.csv").write_text("city,click,id,age\nparis,1,1,30\n")
    (tmp_path / "schema.json").write_text(json.dumps(MOVIES))
    output = tmp_path / "out"
    with pytest.raises(HeaderError, match=r"b\.csv: the header has no column `clicked`"):
        run(
            [
                "--input",
                str(tmp_path / "in" / "*.csv"),
                "--schema",
                str(tmp_path / "schema.json"),
                "--output",
                str(output),
            ]
        )
    assert not output.exists()


def test_the_beam_job_reads_files_of_one_glob_in_different_column_orders(tmp_path: Path) -> None:
    """Records from files in other column orders (and with extra columns) equal the records
    of the same rows in the schema's order."""
    from pipelines.preprocess import run
    from unified_embedding.contract.spec import FeatureSpec
    from unified_embedding.rows.records import read_blocks

    (tmp_path / "schema.json").write_text(json.dumps(MOVIES))
    (tmp_path / "plain").mkdir()
    for name in ("a.csv", "b.csv"):
        (tmp_path / "plain" / name).write_text(text(MOVIES["columns"]))
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "a.csv").write_text(text(["city", "age", "clicked", "id"]))
    (tmp_path / "mixed" / "b.csv.gz").write_bytes(
        gzip.compress(text(["x", "age", "id", "city", "clicked"], extra={"x": "?"}).encode())
    )

    extras = {}

    def records(directory: str) -> list[str]:
        output = tmp_path / f"out_{directory}"
        stats = run(
            [
                "--input",
                str(tmp_path / directory / "*"),
                "--schema",
                str(tmp_path / "schema.json"),
                "--output",
                str(output),
                "--eval-fraction",
                "0",
            ]
        )
        assert stats["rows_read"] == stats["rows_valid"] == 6
        extras.update({p: f.get("extra_columns") for p, f in stats["files"].items()})
        spec = FeatureSpec.load(output / "spec.json")
        rows = read_blocks(spec, str(output / "train-*.tfrecord.gz"))
        return sorted(
            json.dumps({k: np.asarray(v).tolist() for k, v in r.items()}, sort_keys=True)
            for r in rows.as_numpy_iterator()
        )

    assert records("mixed") == records("plain")
    mixed = tmp_path / "mixed"
    assert extras[str(mixed / "b.csv.gz")] == ["x"]  # listed in stats.json, never read
    assert extras[str(mixed / "a.csv")] is None
