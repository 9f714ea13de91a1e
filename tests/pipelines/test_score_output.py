"""The scoring job's output table: its schema, one block as a table, and the CSV and Parquet
shards read back by pyarrow's own readers and by Python's csv module."""

import csv
import math
from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.inference import BlockPredictions
from pipelines.score_output import (
    FORMATS,
    PROBABILITY,
    STATS,
    ScoreTable,
    SummarizeBlockFn,
    WriteTables,
    check_key_columns,
)
from unified_embedding.contract.schemas import from_short_form
from unified_embedding.rows.textfile import LineBlock
from unified_embedding.rows.validation import BlockValidator, CheckedBlock

SPEC = from_short_form(
    {
        "columns": ["y", "id", "n", "c", "m"],
        "label": "y",
        "header": False,
        "numeric": ["n"],
        "multi_valued": {"m": "|"},
        "ignore": ["id"],  # an input column that is not a field: a key to join scores on
    }
)
FIELDS = ("n", "c", "m")  # spec order: pair index = source * 3 + target
#  line  y   id        n    c   m     -> scored?
#  0     1   a         1    x   p|q   yes, row 0
#  1     ""  b,"q"     2    é   ""    yes, row 1 (no label: NaN when scoring)
#  2     0   c         two  x   p     no: non_numeric
#  3     0   中        3    ""  q     yes, row 2
LINES = ["1,a,1,x,p|q", ',"b,""q""",2,é,', "0,c,two,x,p", "0,中,3,,q"]
DATA = "".join(f"{line}\n" for line in LINES).encode()
OFFSET = 3_000_000_000  # past 2^31: offsets are int64
IDS = ["a", 'b,"q"', "中"]
OFFSETS = [OFFSET + len("".join(f"{x}\n" for x in LINES[:i]).encode()) for i in (0, 1, 3)]
PROBABILITIES = np.array([0.1, 1 / 3, 0.999], np.float32)  # not exact in decimal
PAIRS = np.array([[1, 5], [6, 2], [3, 7]], np.int32)  # (rows, k): strongest first
WEIGHTS = np.array([[0.5, 0.25], [0.75, 0.125], [1.0, 0.0]], np.float32)
# PAIRS as (source, target): 1 = (n, c), 5 = (c, m), 6 = (m, n), 2 = (n, m), 3 = (c, n), 7 = (m, c)
NAMED = [[("n", "c"), ("c", "m")], [("m", "n"), ("n", "m")], [("c", "n"), ("m", "c")]]


def checked_block(source: str = "in.csv", offset: int = OFFSET) -> CheckedBlock:
    return BlockValidator(SPEC, label_required=False).validate(LineBlock(source, offset, 1, DATA))


def predictions(top_k: int = 2) -> BlockPredictions:
    if not top_k:
        return BlockPredictions(PROBABILITIES)
    return BlockPredictions(PROBABILITIES, PAIRS[:, :top_k], WEIGHTS[:, :top_k])


def no_predictions(top_k: int) -> BlockPredictions:
    """A block without valid rows: nothing scored."""
    return BlockPredictions(
        np.zeros(0, np.float32), np.zeros((0, top_k), np.int32), np.zeros((0, top_k), np.float32)
    )


def expected_rows(keys: tuple[str, ...], top_k: int, source: str = "in.csv") -> list[dict]:
    """The oracle: each scored row as a dict, from the tables above."""
    key_values: dict[str, list] = {"id": IDS, "source": [source] * 3, "offset": OFFSETS}
    rows = []
    for r in range(3):
        row: dict = {k: key_values[k][r] for k in keys}
        row[PROBABILITY] = float(PROBABILITIES[r])
        for i in range(top_k):
            source_name, target_name = NAMED[r][i]
            row[f"pair_{i + 1}_source"] = source_name
            row[f"pair_{i + 1}_target"] = target_name
            row[f"pair_{i + 1}_weight"] = float(WEIGHTS[r, i])
        rows.append(row)
    return rows


def test_the_block_is_as_the_diagram_says() -> None:
    checked = checked_block()
    assert SPEC.field_names == FIELDS
    assert checked.rows.tolist() == [0, 1, 3] and [d.reason for d in checked.dead] == [
        "non_numeric"
    ]
    assert checked.columns["id"].to_pylist() == IDS
    assert checked.labels[0] == 1.0 and math.isnan(checked.labels[1]) and checked.labels[2] == 0.0


def test_schema_declares_keys_probability_and_explain_columns() -> None:
    table = ScoreTable(SPEC, ("id", "source", "offset"), explain_top_k=2)
    pairs = [f"pair_{i}_{part}" for i in (1, 2) for part in ("source", "target", "weight")]
    assert table.schema.names == ["id", "source", "offset", PROBABILITY, *pairs]
    types = dict(zip(table.schema.names, table.schema.types, strict=True))
    assert types["id"] == types["source"] == pa.string() and types["offset"] == pa.int64()
    assert types[PROBABILITY] == types["pair_2_weight"] == pa.float32()
    assert types["pair_1_source"] == types["pair_2_target"] == pa.string()
    plain = ScoreTable(SPEC, ("source", "offset"), explain_top_k=0)
    assert plain.schema.names == ["source", "offset", PROBABILITY]


@pytest.mark.parametrize(
    ("keys", "top_k"), [(("source", "offset"), 0), (("id",), 1), (("offset", "id", "source"), 2)]
)
def test_one_block_becomes_one_table_of_the_schema(keys: tuple[str, ...], top_k: int) -> None:
    score_table = ScoreTable(SPEC, keys, top_k)
    table = score_table.table(checked_block(), predictions(top_k))
    assert table.schema == score_table.schema
    assert table.num_rows == 3  # the scored rows only, in block order
    assert table.to_pylist() == expected_rows(keys, top_k)


def test_a_block_without_valid_rows_is_an_empty_table() -> None:
    checked = BlockValidator(SPEC, label_required=False).validate(
        LineBlock("in.csv", 0, 1, b"0,c,two,x,p\n")
    )
    empty = no_predictions(2)
    score_table = ScoreTable(SPEC, ("id", "offset"), 2)
    table = score_table.table(checked, empty)
    assert table.num_rows == 0 and table.schema == score_table.schema


def write(tables: list[pa.Table], prefix: Path, file_format: str, schema: pa.Schema) -> list[Path]:
    with TestPipeline(runner="FnApiRunner") as p:
        _ = p | beam.Create(tables) | WriteTables(str(prefix), file_format, schema)
    return sorted(prefix.parent.glob(f"{prefix.name}-*"))


def read_back(shards: list[Path], file_format: str, schema: pa.Schema) -> pa.Table:
    if file_format == "parquet":
        return pa.concat_tables([pq.read_table(s) for s in shards])
    types = dict(zip(schema.names, schema.types, strict=True))
    options = pa_csv.ConvertOptions(column_types=types, strings_can_be_null=False)
    return pa.concat_tables([pa_csv.read_csv(s, convert_options=options) for s in shards])


@pytest.mark.parametrize("file_format", sorted(FORMATS))
def test_shards_read_back_with_pyarrow(tmp_path: Path, file_format: str) -> None:
    keys = ("id", "source", "offset")
    score_table = ScoreTable(SPEC, keys, 2)
    table = score_table.table(checked_block(), predictions())
    shards = write([table], tmp_path / "scores", file_format, score_table.schema)
    suffix = FORMATS[file_format].suffix
    assert [s.name for s in shards] == [f"scores-00000-of-00001{suffix}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [s.name for s in shards]
    found = read_back(shards, file_format, score_table.schema)
    assert found.schema == score_table.schema  # Parquet keeps the types; CSV is read as declared
    assert found.to_pylist() == expected_rows(keys, 2)  # row order kept; float32 exact


def test_csv_shards_read_back_with_pythons_csv_module(tmp_path: Path) -> None:
    keys = ("id", "offset")
    score_table = ScoreTable(SPEC, keys, 1)
    table = score_table.table(checked_block(), predictions(1))
    (shard,) = write([table], tmp_path / "s", "csv", score_table.schema)
    with shard.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == score_table.schema.names  # a header line
    expected = expected_rows(keys, 1)
    assert [r[0] for r in rows[1:]] == IDS  # the delimiter and quotes inside a key survive
    assert [int(r[1]) for r in rows[1:]] == OFFSETS
    for row, want in zip(rows[1:], expected, strict=True):
        assert np.float32(row[2]) == np.float32(want[PROBABILITY])  # shortest float32 text
        assert row[3:5] == [want["pair_1_source"], want["pair_1_target"]]
        assert np.float32(row[5]) == np.float32(want["pair_1_weight"])


@pytest.mark.parametrize("file_format", sorted(FORMATS))
def test_many_blocks_from_many_files_each_land_once(tmp_path: Path, file_format: str) -> None:
    score_table = ScoreTable(SPEC, ("source", "offset", "id"), 0)
    tables = [
        score_table.table(checked_block(f"part-{i}.csv", i), predictions(0)) for i in range(5)
    ]
    shards = write(tables, tmp_path / "scores", file_format, score_table.schema)
    found = read_back(shards, file_format, score_table.schema).to_pylist()
    expected = [
        {"source": f"part-{i}.csv", "offset": o - OFFSET + i, "id": key, PROBABILITY: float(p)}
        for i in range(5)
        for o, key, p in zip(OFFSETS, IDS, PROBABILITIES, strict=True)
    ]
    assert sorted(found, key=str) == sorted(expected, key=str)


@pytest.mark.parametrize("file_format", sorted(FORMATS))
def test_no_tables_write_one_shard_with_the_schema_and_no_rows(
    tmp_path: Path, file_format: str
) -> None:
    score_table = ScoreTable(SPEC, ("source", "offset"), 1)
    shards = write([], tmp_path / "scores", file_format, score_table.schema)
    assert len(shards) == 1
    found = read_back(shards, file_format, score_table.schema)
    assert found.num_rows == 0 and found.schema == score_table.schema


def test_summarize_yields_the_table_and_one_stats_per_block() -> None:
    score_table = ScoreTable(SPEC, ("id",), 1)
    scored = PredictionResult(checked_block(), predictions(1))
    none_valid = BlockValidator(SPEC, label_required=False).validate(
        LineBlock("in.csv", 0, 1, b"0,c,two,x,p\n")
    )
    unscored = PredictionResult(none_valid, no_predictions(1))
    with TestPipeline(runner="FnApiRunner") as p:
        out = (
            p
            | beam.Create([scored, unscored])
            | beam.ParDo(SummarizeBlockFn(score_table)).with_outputs(STATS, main="tables")
        )
        rows = out.tables | beam.FlatMap(lambda t: t.to_pylist())
        assert_that(rows, equal_to(expected_rows(("id",), 1)), label="Rows")
        stats = out[STATS] | beam.combiners.Count.Globally()
        assert_that(stats, equal_to([2]), label="OneStatsPerBlock")  # also for the empty block


def test_key_columns_are_checked_naming_the_columns() -> None:
    check_key_columns(SPEC, ["id", "c", "source"])  # input columns and row keys
    with pytest.raises(ValueError, match=r"should name input columns or \['offset', 'source'\]"):
        check_key_columns(SPEC, ["nope"])
    with pytest.raises(ValueError, match=r"Received: \[\]"):
        check_key_columns(SPEC, [])
    for clash in (PROBABILITY, "pair_1_source"):
        spec = from_short_form({"columns": ["y", clash, "c"], "label": "y", "ignore": [clash]})
        with pytest.raises(
            ValueError, match=rf"clash with output columns. Received: \['{clash}'\]"
        ):
            check_key_columns(spec, [clash])


@pytest.mark.parametrize("top_k", [-1, 7])
def test_explain_top_k_beyond_the_ordered_pairs_is_refused(top_k: int) -> None:
    with pytest.raises(ValueError, match=rf"should be in \[0, 6\] .* Received: {top_k}"):
        ScoreTable(SPEC, ("source",), top_k)
    ScoreTable(SPEC, ("source",), 6)  # every ordered pair of 3 fields


def test_an_unknown_format_is_refused_naming_the_formats() -> None:
    schema = ScoreTable(SPEC, ("source",), 0).schema
    with pytest.raises(
        ValueError, match=r"should be one of \['csv', 'parquet'\]. Received: `json`"
    ):
        WriteTables("/unused/scores", "json", schema)
