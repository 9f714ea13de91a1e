"""Each preprocessing transform on a few blocks, with TestPipeline + assert_that, and the byte
range reader driven by hand (splits before and while reading)."""

import json
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.accounting import MergeFn, RowCounts
from pipelines.encode import STATS, EncodeBlockFn, eval_rows
from pipelines.read import FileRanges, ReadBlocksFn
from pipelines.stats import BlockStats, build_stats, collision_rates
from pipelines.validate import DEAD_LETTERS, ValidateBlocks
from tests.pipelines.tiny_schema import TINY_SCHEMA
from unified_embedding.contract.artifacts import SPLITS
from unified_embedding.contract.hashing import fingerprint
from unified_embedding.contract.schemas import from_short_form
from unified_embedding.rows.headers import header_of
from unified_embedding.rows.records import parse_block
from unified_embedding.rows.textfile import ColumnsOf, LineBlock
from unified_embedding.rows.validation import BlockValidator

SCHEMA = {"name": "tiny", **TINY_SCHEMA}
SPEC = from_short_form(SCHEMA)
SHORT = from_short_form({**SCHEMA, "max_field_chars": 20})  # cells of 21 characters are dead
#  line  y  n      c      m      -> verdict
#  1     1  3      x      a|b    valid
#  2     0  ""     ""     ""     valid (all missing)
#  3     1  3      \xff   a      undecodable
#  4     1  3      x             wrong_column_count (3 columns)
#  5     2  3      x      a      bad_label
#  6     1  three  x      a      non_numeric
#  7     1  3      x*30   a      field_too_long (max 20)
#  8     1  1e999  x      a      non_finite
GOOD = [b"1\t3\tx\ta|b", b"0\t\t\t"]
BAD = {
    "undecodable": b"1\t3\t\xff\ta",
    "wrong_column_count": b"1\t3\tx",
    "bad_label": b"2\t3\tx\ta",
    "non_numeric": b"1\tthree\tx\ta",
    "field_too_long": b"1\t3\t" + b"x" * 30 + b"\ta",
    "non_finite": b"1\t1e999\tx\ta",
}


def block(lines: list[bytes], offset: int = 0, line: int = 1) -> LineBlock:
    return LineBlock("f.tsv", offset, line, b"".join(x + b"\n" for x in lines))


def test_validate_blocks_routes_every_defect_to_dead_letters_with_its_reason() -> None:
    with TestPipeline(runner="FnApiRunner") as p:
        out = (
            p
            | beam.Create([block(GOOD), block(list(BAD.values()), offset=100, line=3)])
            | ValidateBlocks(SHORT)
        )
        reasons = out[DEAD_LETTERS] | beam.Map(
            lambda d: (json.loads(d)["line"], json.loads(d)["reason"])
        )
        expected = [(3 + i, reason) for i, reason in enumerate(BAD)]
        assert_that(reasons, equal_to(expected), label="DeadReasons")
        values = out.valid | beam.FlatMap(
            lambda c: zip(
                *(c.columns[k].to_pylist() for k in "ncm"), c.labels.tolist(), strict=True
            )
        )
        assert_that(values, equal_to([("3", "x", "a|b", 1.0), ("", "", "", 0.0)]), label="Valid")


def test_dead_letter_names_field_value_offset_and_line() -> None:
    checked = BlockValidator(SHORT).validate(block(list(BAD.values()), offset=100, line=3))
    letters = {json.loads(d)["reason"]: json.loads(d) for d in checked.dead_letters()}
    assert "`n` is not a number: 'three'" in letters["non_numeric"]["detail"]
    assert "field `c` has 30 characters (max 20)" in letters["field_too_long"]["detail"]
    assert "`n` is not a finite float32 number: '1e999'" in letters["non_finite"]["detail"]
    assert letters["wrong_column_count"]["detail"] == "expected 4 columns, found 3"
    starts = np.cumsum([0] + [len(x) + 1 for x in BAD.values()])[:-1]
    for i, reason in enumerate(BAD):
        assert letters[reason]["offset"] == 100 + starts[i] and letters[reason]["line"] == 3 + i
    unknown = BlockValidator(SHORT).validate(block([BAD["bad_label"]], line=0))
    assert json.loads(unknown.dead_letters()[0])["line"] is None  # a byte range's block


@pytest.mark.parametrize("value", ["1e5", "-2.5", ".5", "7", "+3", "5.", "1E-3"])
def test_numbers_accepted(value: str) -> None:
    checked = BlockValidator(SPEC).validate(block([f"1\t{value}\tx\ta".encode()]))
    assert not checked.dead


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("inf", "non_numeric"),
        ("nan", "non_numeric"),
        ("1_000", "non_numeric"),
        ("0x10", "non_numeric"),
        (" 3", "non_numeric"),
        ("3 ", "non_numeric"),
        ("\u0661\u0662", "non_numeric"),  # Arabic-Indic digits pass `\d`, not ASCII
        ("\uff13", "non_numeric"),  # a full-width digit
        ("1e999", "non_finite"),
        ("-1e39", "non_finite"),  # finite in float64, inf in the model's float32
    ],
)
def test_numbers_rejected(value: str, reason: str) -> None:
    checked = BlockValidator(SPEC).validate(block([f"1\t{value}\tx\ta".encode()]))
    assert [d.reason for d in checked.dead] == [reason]


def test_quoted_csv_with_delimiters_and_doubled_quotes_inside() -> None:
    spec = from_short_form({"columns": ["y", "title", "city"], "label": "y", "delimiter": ","})
    lines = [b'1,"Heat, Part 2",paris', b'0,"He said ""hi""",""', b'1,plain,"rome"', b"0,a,b,c"]
    checked = BlockValidator(spec).validate(block(lines))
    assert checked.columns["title"].to_pylist() == ["Heat, Part 2", 'He said "hi"', "plain"]
    assert checked.columns["city"].to_pylist() == ["paris", "", "rome"]
    assert [(d.line, d.reason) for d in checked.dead] == [(3, "wrong_column_count")]


def test_an_unclosed_quote_loses_only_its_own_line() -> None:
    spec = from_short_form({"columns": ["y", "a", "b"], "label": "y", "delimiter": ","})
    lines = [b"1,x,y", b'0,"unclosed,z', b"1,u,v", b'1,"q",w']
    checked = BlockValidator(spec).validate(block(lines))
    assert checked.columns["a"].to_pylist() == ["x", "u", "q"]
    assert [(d.line, d.reason) for d in checked.dead] == [(1, "wrong_column_count")]
    assert "unbalanced quotes" in checked.dead[0].detail


def test_tsv_keeps_quotes_and_crlf_is_one_line_end() -> None:
    checked = BlockValidator(SPEC).validate(
        LineBlock("f.tsv", 0, 1, b'1\t3\t"x"\ta\r\n0\t2\tlone\rcr\tb\n')
    )
    assert checked.columns["c"].to_pylist() == ['"x"', "lone\rcr"]
    assert checked.columns["m"].to_pylist() == ["a", "b"]


def test_declared_missing_tokens_are_missing() -> None:
    spec = from_short_form(
        {"columns": ["y", "n", "c"], "label": "y", "numeric": ["n"], "missing": ["null", "\\N"]}
    )
    checked = BlockValidator(spec).validate(block([b"1,null,\\N", b"0,2,null", b"1,,x"]))
    assert not checked.dead
    assert checked.columns["n"].to_pylist() == ["", "2", ""]
    assert checked.columns["c"].to_pylist() == ["", "", "x"]


def test_encode_block_hashes_with_the_shared_function_and_splits_by_content() -> None:
    checked = BlockValidator(SPEC).validate(block(GOOD))
    with TestPipeline(runner="FnApiRunner") as p:
        out = (
            p
            | beam.Create([checked])
            | beam.ParDo(EncodeBlockFn(SPEC.to_json(), None, 0.0)).with_outputs(STATS, *SPLITS)
        )
        blocks = out.train | beam.Map(
            lambda s: {
                k: v.numpy().tolist() if not isinstance(v, tf.RaggedTensor) else v.to_list()
                for k, v in parse_block(SPEC, tf.constant(s)).items()
            }
        )
        expected_c = fingerprint(tf.constant(["x", ""]), "c", 2).numpy().tolist()
        expected_m = [
            fingerprint(tf.constant(["a", "b"]), "m", 2).numpy().tolist(),
            fingerprint(tf.constant([""]), "m", 2).numpy().tolist(),
        ]

        def check(found: list) -> None:
            (one,) = found
            assert one["label"] == [[1.0], [0.0]]
            assert one["c"] == expected_c and one["m"] == expected_m
            assert one["n"][0] == pytest.approx(np.log1p(3.0)) and np.isnan(one["n"][1])

        assert_that(blocks, check, label="Blocks")
        assert_that(out.eval, equal_to([]), label="NoEval")
        counts = out[STATS] | beam.Map(lambda s: (s.rows.read, s.rows.kept, s.splits["train"]))
        assert_that(counts, equal_to([(2, 2, 2)]), label="Stats")


def test_split_depends_only_on_content() -> None:
    lines = [f"{i % 2}\t{i}\tv{i}\ta".encode() for i in range(3000)]
    forward = BlockValidator(SPEC).validate(block(lines))
    backward = BlockValidator(SPEC).validate(block(lines[::-1]))
    first = eval_rows(forward, None, 0.25)
    assert first.tolist() == eval_rows(backward, None, 0.25)[::-1].tolist()
    assert 0.2 < first.mean() < 0.3
    assert not eval_rows(forward, None, 0.0).any() and eval_rows(forward, None, 1.0).all()
    by_column = eval_rows(forward, "c", 0.5)
    assert 0.4 < by_column.mean() < 0.6 and by_column.tolist() != first.tolist()


def test_stats_merge_across_blocks_and_check_the_invariant() -> None:
    validator = BlockValidator(SHORT)
    with TestPipeline(runner="FnApiRunner") as p:
        blocks = [block(GOOD), block(list(BAD.values())), block(GOOD)]
        stats = (
            p
            | beam.Create([validator.validate(b) for b in blocks])
            | beam.ParDo(EncodeBlockFn(SPEC.to_json(), None, 0.5)).with_outputs(STATS, *SPLITS)
        )[STATS] | beam.CombineGlobally(MergeFn(BlockStats))

        def check(found: list[BlockStats]) -> None:
            (total,) = found
            document = build_stats(SPEC, total)
            assert document["rows_read"] == 10 and document["rows_valid"] == 4
            assert document["dead_by_reason"] == {r: 1 for r in BAD}
            assert sum(document["rows_by_split"].values()) == 4
            assert sum(document["positives_by_split"].values()) == 2  # label_rate 0.5 of 4
            assert document["fields"]["c"]["missing_rate"] == 0.5
            assert document["fields"]["c"]["approx_distinct"] == 2  # "x" and missing
            assert document["fields"]["m"]["approx_distinct"] == 3  # a, b and missing
            assert document["label_rate"] == 0.5

        assert_that(stats, check)


def test_lost_rows_fail_the_stats() -> None:
    total = BlockStats(RowCounts(read=6, kept=3, dead={"bad_label": 2}), splits={"train": 3})
    with pytest.raises(RuntimeError, match="rows lost: 6 read but 3 valid"):
        build_stats(SPEC, total)
    rates = collision_rates(
        SPEC.replace(table=SPEC.table.__class__(rows=100, width=8)), {"c": 50, "m": 50}
    )
    draws = 50 * 2 + 50 * 2
    assert rates["c"]["unified_probe_collision_rate"] == pytest.approx(
        1 - np.exp(-(draws - 1) / 100)
    )


def read_range_blocks(
    path: Path, split_bytes: int, split_after: int | None = None, header: ColumnsOf | None = None
) -> list[LineBlock]:
    """Blocks read range by range, as a runner would; `split_after`: split each range's tracker
    in half after that many blocks (a dynamic split), and read the residual too."""
    metadata = FileMetadata(str(path), path.stat().st_size)
    provider = FileRanges(split_bytes)
    pending = list(provider.split(metadata, provider.initial_restriction(metadata)))
    fn = ReadBlocksFn(header, block_rows=7, total_bytes=metadata.size_in_bytes)
    fn.setup()
    blocks: list[LineBlock] = []
    while pending:
        tracker = provider.create_tracker(pending.pop(0))
        for i, one in enumerate(fn.process(metadata, tracker)):
            blocks.append(one)
            if split_after is not None and i + 1 == split_after:
                split = tracker.try_split(0.5)
                if split is not None:
                    pending.append(split[1])
        tracker.check_done()
    return blocks


def read_ranges(path: Path, split_bytes: int, split_after: int | None = None) -> list[bytes]:
    """The lines of `read_range_blocks`."""
    return [
        line
        for b in read_range_blocks(path, split_bytes, split_after)
        for line in b.data.splitlines()
    ]


def test_one_file_read_in_byte_ranges_equals_the_whole_file(tmp_path: Path) -> None:
    rows = [f"{i % 2}\t{i}\tvalue{i * 7919 % 1000}\ta|b".encode() for i in range(2000)]
    path = tmp_path / "big.tsv"
    path.write_bytes(b"\n".join(rows))  # no final newline
    whole = read_ranges(path, split_bytes=1 << 30)
    assert whole == rows
    for split_bytes in (997, 4096, 10_000):
        ranges = read_ranges(path, split_bytes)
        assert sorted(ranges) == sorted(rows) and len(ranges) == len(rows)
        assert (
            len(
                list(
                    FileRanges(split_bytes).split(
                        FileMetadata(str(path), path.stat().st_size),
                        OffsetRange(0, path.stat().st_size),
                    )
                )
            )
            > 1
        )
    dynamic = read_ranges(path, 8192, split_after=2)
    assert sorted(dynamic) == sorted(rows) and len(dynamic) == len(rows)


def test_compressed_files_are_one_unsplittable_range(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "rows.tsv.gz"
    rows = [f"1\t{i}\tx\ta".encode() for i in range(500)]
    path.write_bytes(gzip.compress(b"\n".join(rows) + b"\n"))
    assert read_ranges(path, split_bytes=100, split_after=1) == rows


@pytest.mark.parametrize("compressed", [False, True])
def test_every_byte_range_maps_columns_by_the_files_header(
    tmp_path: Path, compressed: bool
) -> None:
    """A range that starts past the header reads the header at the file's start: its rows
    are parsed by the file's column order (here the schema's reversed, plus an extra column)."""
    import gzip

    csv = from_short_form({**SCHEMA, "delimiter": ",", "header": True})
    rows = [f"a|{i},x{i},{i},{i % 2},?" for i in range(2000)]
    data = "\ufeffm,c,n,y,extra\r\n" + "\r\n".join(rows) + "\r\n"
    path = tmp_path / ("rows.csv.gz" if compressed else "rows.csv")
    path.write_bytes(gzip.compress(data.encode()) if compressed else data.encode())
    blocks = read_range_blocks(path, 997, split_after=2, header=header_of(csv.input_format))
    assert len({b.offset for b in blocks}) == len(blocks) > 2
    assert {b.columns for b in blocks} == {("m", "c", "n", "y", "extra")}
    checked = [BlockValidator(csv).validate(b) for b in blocks]
    assert not any(c.dead for c in checked)
    numbers = np.concatenate([c.columns["n"].to_numpy(zero_copy_only=False) for c in checked])
    cities = np.concatenate([c.columns["c"].to_numpy(zero_copy_only=False) for c in checked])
    labels = np.concatenate([c.labels for c in checked])
    order = np.argsort(numbers.astype(int))
    assert numbers[order].astype(int).tolist() == list(range(2000))
    assert cities[order].tolist() == [f"x{i}" for i in range(2000)]
    assert labels[order].tolist() == [i % 2 for i in range(2000)]


def test_long_plain_digit_strings_overflow_float32() -> None:
    lines = [b"1\t" + b"9" * 38 + b"\tx\ta", b"1\t" + b"9" * 39 + b"\tx\ta"]
    checked = BlockValidator(SPEC).validate(block(lines))
    assert [(d.line, d.reason) for d in checked.dead] == [(1, "non_finite")]


def test_a_file_without_line_breaks_fails_instead_of_filling_memory(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import unified_embedding.rows.textfile as textfile

    monkeypatch.setattr(textfile, "MAX_LINE_BYTES", 1000)
    data = b"1\t2\tx\ta\n" * 3 + b"z" * 5000
    parts = (data[i : i + 100] for i in range(0, len(data), 100))
    with pytest.raises(textfile.CorruptInput, match=r"f\.tsv: no line break in the \d+ bytes"):
        list(textfile.line_blocks(parts, "f.tsv", 0, 1, block_rows=2))
