"""Reading raw rows of any schema; bad rows are named by line and value."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from unified_embedding.contract.schemas import criteo, frappe, load_schema
from unified_embedding.rows.reader import parse_bytes, read_rows

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def test_parse_criteo_line() -> None:
    line = "1\t" + "\t".join(["3"] * 13) + "\t" + "\t".join(["68fd1e64"] * 25) + "\t\n"
    rows = parse_bytes(criteo(), line.encode())
    assert len(rows) == 1 and rows.labels.tolist() == [1.0]
    assert rows.columns["I1"].tolist() == ["3"] and rows.columns["C26"].tolist() == [""]
    assert "label" not in rows.columns


def test_gzip_and_header(tmp_path: Path) -> None:
    path = tmp_path / "f.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("label,f0,f1,f2,f3,f4,f5,f6,f7,f8,f9\n0,1,2,3,4,5,6,7,8,9,10\n")
    rows = read_rows(frappe(), path)
    assert rows.columns["f9"].tolist() == ["10"] and rows.labels.tolist() == [0.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("label,f0\n", r"<input>: the header has no column `f1`"),
        ("label,f0,f1,f2,f3,f4,f5,f6,f7,f8,f9\n1,2\n", r"<input>:2: expected 11 columns, found 2"),
        (
            "label,f0,f1,f2,f3,f4,f5,f6,f7,f8,f9\n2,1,2,3,4,5,6,7,8,9,10\n",
            r"<input>:2: label `label` should be 0 or 1. Received: '2'",
        ),
    ],
)
def test_bad_rows_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_bytes(frappe(), text.encode())


def test_take_keeps_columns_aligned() -> None:
    text = "label,f0,f1,f2,f3,f4,f5,f6,f7,f8,f9\n" + "".join(
        f"{i % 2},{i},1,2,3,4,5,6,7,8,9\n" for i in range(5)
    )
    rows = parse_bytes(frappe(), text.encode()).take(np.array([4, 1]))
    assert rows.columns["f0"].tolist() == ["4", "1"] and rows.labels.tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    ("schema", "path", "count"),
    [
        ("criteo", "criteo/criteo_kaggle_head10k.tsv", 10_000),
        ("avazu", "avazu/avazu_train_head10k.csv", 9_999),
        ("frappe", "frappe/frappe_train.csv", 57_722),
    ],
)
def test_real_samples_read(schema: str, path: str, count: int) -> None:
    sample = DATA / path
    if not sample.exists():
        pytest.skip(f"{sample} is absent")
    rows = read_rows(load_schema(schema), sample)
    assert len(rows) == count
    assert 0.1 < rows.labels.mean() < 0.4
