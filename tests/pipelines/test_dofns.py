"""The preprocessing DoFns inside a Beam pipeline (TestPipeline + assert_that): the splittable
reader over real files, ValidateBlockFn's outputs and counters, EncodeBlockFn's splits with
records read back by the records module and hashed values checked against `fingerprint`.

(tests/pipelines/test_transforms.py drives the byte-range reader by hand and checks each
validation reason; these tests run the DoFns as a runner does.)
"""

import gzip
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

import pipelines.read as read
from pipelines.encode import STATS, EncodeBlockFn, encode_columns, graph_encoder
from pipelines.read import FILES_READ, ReadBlocks, matched_files
from pipelines.validate import DEAD_LETTERS, ValidateBlockFn
from tests.pipelines.tiny_schema import TINY_SCHEMA
from unified_embedding.contract.artifacts import SPLITS
from unified_embedding.contract.hashing import fingerprint
from unified_embedding.contract.schemas import from_short_form
from unified_embedding.rows.records import parse_block
from unified_embedding.rows.textfile import LineBlock
from unified_embedding.rows.validation import REASONS, BlockValidator, CheckedBlock

SPEC = from_short_form(TINY_SCHEMA)
BLOCK_ROWS = 7


def tsv_lines(count: int, tag: str) -> list[bytes]:
    return [f"{i % 2}\t{i}\t{tag}{i % 13}\tp|q{i % 3}".encode() for i in range(count)]


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, list[bytes]]:
    """Three files and their lines:

    plain.tsv    300 lines, no newline after the last   splittable into byte ranges
    rows.tsv.gz   40 lines                               read whole (compressed)
    empty.tsv      0 bytes                               no lines, still accounted for
    """
    files = {
        tmp_path / "plain.tsv": tsv_lines(300, "a"),
        tmp_path / "rows.tsv.gz": tsv_lines(40, "b"),
        tmp_path / "empty.tsv": [],
    }
    for path, lines in files.items():
        data = b"\n".join(lines)
        path.write_bytes(gzip.compress(data + b"\n") if path.suffix == ".gz" else data)
    return {str(path): lines for path, lines in files.items()}


def blocks_match(inputs: dict[str, list[bytes]]) -> Callable[[list[LineBlock]], None]:
    """A check of ReadBlocks' blocks: every line of every file once, whole lines at the
    file's offsets, and known line numbers that are right."""

    def check(blocks: list[LineBlock]) -> None:
        lines = Counter((b.source, line) for b in blocks for line in b.data.splitlines())
        assert lines == Counter((path, line) for path, rows in inputs.items() for line in rows)
        for b in blocks:
            assert b.data.endswith(b"\n") and 0 < b.data.count(b"\n") <= BLOCK_ROWS
            if not b.source.endswith(".gz"):  # the block is the file's bytes at its offset
                data = Path(b.source).read_bytes() + b"\n"  # a last line gets its newline
                assert data[b.offset : b.offset + len(b.data)] == b.data
            if b.line:  # a known line number: the block's first line is that line of the file
                assert b.data.splitlines()[0] == inputs[b.source][b.line - 1]
        gz = sorted(b.line for b in blocks if b.source.endswith(".gz"))
        assert gz == list(range(1, 41, BLOCK_ROWS))  # read whole: every line number known

    return check


def files_match(
    inputs: dict[str, list[bytes]], ranges: dict[str, int]
) -> Callable[[list[tuple[str, int]]], None]:
    """A check of FILES_READ: per file, `ranges[file]` pairs whose lines add up to the
    file's, the empty file included."""

    def check(pairs: list[tuple[str, int]]) -> None:
        lines: Counter[str] = Counter()
        for path, count in pairs:
            lines[path] += count
        assert dict(lines) == {path: len(rows) for path, rows in inputs.items()}
        assert Counter(path for path, _ in pairs) == Counter(ranges)

    return check


def run_read(tmp_path: Path, inputs: dict[str, list[bytes]], ranges: dict[str, int]) -> None:
    files = matched_files(str(tmp_path / "*"))
    with TestPipeline(runner="FnApiRunner") as p:
        out = p | ReadBlocks(files, header=None, block_rows=BLOCK_ROWS)
        assert_that(out.blocks, blocks_match(inputs), label="Blocks")
        assert_that(out[FILES_READ], files_match(inputs, ranges), label="FilesRead")


def test_read_blocks_reads_every_line_of_every_file_once(
    tmp_path: Path, inputs: dict[str, list[bytes]]
) -> None:
    run_read(tmp_path, inputs, ranges=dict.fromkeys(inputs, 1))  # one range per file


def test_read_blocks_in_many_byte_ranges(
    tmp_path: Path, inputs: dict[str, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read, "SPLIT_BYTES", 1000)  # the runner's initial split, in process
    plain = matched_files(str(tmp_path / "plain.tsv"))[0]
    provider = read.FileRanges()
    splits = list(provider.split(plain, provider.initial_restriction(plain)))
    assert len(splits) > 3
    ranges = dict.fromkeys(inputs, 1)  # a compressed file is never split
    ranges[plain.path] = len(splits)  # each range reports its lines
    run_read(tmp_path, inputs, ranges)


#  line  y  n      c   m     -> ValidateBlockFn
#  1     1  3      x   a|b   valid
#  2     0  ""     ""  ""    valid (all missing)
#  3     2  3      x   a     bad_label
#  4     1  three  x   a     non_numeric
#  5     1  3      x         wrong_column_count
#  6     "" 3      y   b     bad_label when labels are required; NaN when scoring
LINES = [b"1\t3\tx\ta|b", b"0\t\t\t", b"2\t3\tx\ta", b"1\tthree\tx\ta", b"1\t3\tx", b"\t3\ty\tb"]


def line_block(lines: list[bytes], source: str = "f.tsv", offset: int = 0) -> LineBlock:
    return LineBlock(source, offset, 1, b"".join(x + b"\n" for x in lines))


def run_validate(
    blocks: list[LineBlock], label_required: bool, valid: list, dead: list
) -> dict[str, int]:
    """ValidateBlockFn over `blocks`: asserts its main output, as (source, valid rows' `c`
    cells, labels with NaN as -1) per block, and its dead letters as (line, reason); returns
    the counters it reported."""
    fn = ValidateBlockFn(SPEC.to_json(), label_required)
    p = TestPipeline(runner="FnApiRunner")
    out = p | beam.Create(blocks) | beam.ParDo(fn).with_outputs(DEAD_LETTERS, main="valid")
    cells = out.valid | beam.Map(
        lambda c: (
            c.block.source,
            c.columns["c"].to_pylist(),
            np.nan_to_num(c.labels, nan=-1).tolist(),
        )
    )
    letters = out[DEAD_LETTERS] | beam.Map(
        lambda d: (json.loads(d)["line"], json.loads(d)["reason"])
    )
    assert_that(cells, equal_to(valid), label="Valid")
    assert_that(letters, equal_to(dead), label="DeadLetters")
    result = p.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace("validate"))["counters"]
    return {c.key.metric.name: c.committed for c in counters if c.committed}


def test_validate_block_fn_outputs_and_counters() -> None:
    counters = run_validate(
        [line_block(LINES), line_block(LINES[2:5], "g.tsv")],
        label_required=True,
        # one CheckedBlock per block, also for g.tsv whose every row is dead
        valid=[("f.tsv", ["x", ""], [1.0, 0.0]), ("g.tsv", [], [])],
        dead=[
            *[(3, "bad_label"), (4, "non_numeric"), (5, "wrong_column_count"), (6, "bad_label")],
            *[(1, "bad_label"), (2, "non_numeric"), (3, "wrong_column_count")],
        ],
    )
    assert counters == {
        "rows_valid": 2,
        "dead_bad_label": 3,
        "dead_non_numeric": 2,
        "dead_wrong_column_count": 2,
    }
    assert set(counters) <= {"rows_valid", *(f"dead_{r}" for r in REASONS)}


def test_validate_block_fn_when_scoring_keeps_rows_without_a_label() -> None:
    counters = run_validate(
        [line_block(LINES)],
        label_required=False,
        valid=[("f.tsv", ["x", "", "y"], [1.0, 0.0, -1.0])],  # -1: NaN, no label
        dead=[(3, "bad_label"), (4, "non_numeric"), (5, "wrong_column_count")],
    )
    assert counters["rows_valid"] == 3 and counters["dead_bad_label"] == 1


def checked(lines: list[bytes], source: str = "f.tsv") -> CheckedBlock:
    return BlockValidator(SPEC).validate(line_block(lines, source))


def rows_of(record: bytes) -> list[tuple]:
    """A block record's rows as (label, c fingerprints, m fingerprints per value), by the
    records module's own parser."""
    parsed = parse_block(SPEC, tf.constant(record))
    return [
        (label[0], tuple(c), tuple(map(tuple, m)))
        for label, c, m in zip(
            parsed["label"].numpy().tolist(),
            parsed["c"].numpy().tolist(),
            parsed["m"].to_list(),
            strict=True,
        )
    ]


def expected_rows(lines: list[bytes]) -> list[tuple]:
    """The oracle: each line's label and its values hashed by `fingerprint` one by one."""
    out = []
    for line in lines:
        y, _, c, m = line.decode().split("\t")
        c_ids = fingerprint(tf.constant([c]), "c", 2).numpy()[0]
        values = m.split("|") if m else [""]
        m_ids = fingerprint(tf.constant(values), "m", 2).numpy()
        out.append((float(y), tuple(c_ids.tolist()), tuple(map(tuple, m_ids.tolist()))))
    return out


def run_encode(
    blocks: list[CheckedBlock],
    split_column: str | None,
    fraction: float,
    check: Callable[[list[tuple[str, bytes]]], None],
) -> None:
    """EncodeBlockFn over `blocks`: `check` gets every (split, record) it writes; one stats
    element per block."""
    fn = EncodeBlockFn(SPEC.to_json(), split_column, fraction)
    with TestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create(blocks) | beam.ParDo(fn).with_outputs(STATS, *SPLITS)
        tagged = [out[s] | f"Tag{s}" >> beam.Map(lambda r, s=s: (s, r)) for s in SPLITS]
        assert_that(tagged | beam.Flatten(), check, label="Records")
        stats = out[STATS] | beam.combiners.Count.Globally()
        assert_that(stats, equal_to([len(blocks)]), label="OneStatsPerBlock")


def test_encode_block_fn_splits_every_valid_row_once() -> None:
    #  two blocks of 30 valid rows and 1 dead (bad_label, non_numeric); eval fraction 0.5
    lines = tsv_lines(60, "v")
    first = [*lines[:30], b"7\t1\tx\ta"]
    second = [*lines[30:], b"1\tnan\tx\ta"]
    expected = Counter(expected_rows(lines))

    def check(records: list[tuple[str, bytes]]) -> None:
        assert sorted(Counter(s for s, _ in records).items()) == [("eval", 2), ("train", 2)]
        rows = [row for _, record in records for row in rows_of(record)]
        assert Counter(rows) == expected  # every valid row once, in one of the splits
        assert 10 < sum(len(rows_of(r)) for s, r in records if s == "eval") < 50

    run_encode([checked(first), checked(second, "g.tsv")], None, 0.5, check)


@pytest.mark.parametrize(("fraction", "split"), [(0.0, "train"), (1.0, "eval")])
def test_encode_block_fn_whole_block_to_one_split(fraction: float, split: str) -> None:
    lines = tsv_lines(20, "w")
    expected = expected_rows(lines)

    def check(records: list[tuple[str, bytes]]) -> None:
        ((found_split, record),) = records
        assert found_split == split
        assert rows_of(record) == expected  # row order kept inside a block

    run_encode([checked(lines)], None, fraction, check)


def test_encode_block_fn_keeps_rows_of_one_split_value_together() -> None:
    lines = [f"{i % 2}\t{i}\tkey{i % 5}\tz".encode() for i in range(100)]

    def check(records: list[tuple[str, bytes]]) -> None:
        keys = {s: {row[1] for r in records if r[0] == s for row in rows_of(r[1])} for s in SPLITS}
        assert not keys["train"] & keys["eval"]
        assert len(keys["train"] | keys["eval"]) == 5

    run_encode([checked(lines)], "c", 0.5, check)


def test_encode_block_fn_block_without_valid_rows_gives_only_stats() -> None:
    run_encode([checked([b"7\t1\tx\ta", b"1\t2\tx"])], None, 0.5, equal_to([]))


def test_encode_columns_equals_fingerprint_of_each_cell() -> None:
    # Repeated cells are hashed once and gathered back: rows must keep their own values.
    #  row  c     m
    #  0    x     a|b|a
    #  1    y     ""
    #  2    x     b
    #  3    ""    a|c
    lines = [b"1\t1\tx\ta|b|a", b"0\t2\ty\t", b"1\t3\tx\tb", b"0\t4\t\ta|c"]
    columns: dict[str, Any] = encode_columns(SPEC, checked(lines), graph_encoder(SPEC))
    np.testing.assert_array_equal(
        columns["c"], fingerprint(tf.constant(["x", "y", "x", ""]), "c", 2).numpy()
    )
    flat, lengths = columns["m"]
    assert lengths.tolist() == [3, 1, 1, 2]
    values = ["a", "b", "a", "", "b", "a", "c"]
    np.testing.assert_array_equal(flat, fingerprint(tf.constant(values), "m", 2).numpy())
    np.testing.assert_allclose(columns["n"], np.log1p([1.0, 2.0, 3.0, 4.0]), rtol=1e-6)
