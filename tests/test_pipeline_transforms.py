"""Each preprocessing transform on a handful of rows, with TestPipeline + assert_that."""

import json

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.encode import FINGERPRINTS, EncodeBlocks
from pipelines.preprocess import split_of
from pipelines.read import RawLine
from pipelines.stats import RowStatsFn, build_stats, collision_rates
from pipelines.validate import DEAD_LETTERS, ValidateFn
from unified_embedding.hashing import fingerprint
from unified_embedding.records import parse_block
from unified_embedding.schemas import from_short_form
from unified_embedding.validation import RowValidator, ValidRow, split_digest

SPEC = from_short_form(
    {
        "name": "tiny",
        "columns": ["y", "n", "c", "m"],
        "label": "y",
        "delimiter": "\t",
        "header": False,
        "numeric": {"n": "log1p"},
        "multi_valued": {"m": "|"},
    }
)


def line(n: int, data: bytes) -> RawLine:
    return RawLine("f.tsv", n, data)


GOOD = [line(1, b"1\t3\tx\ta|b"), line(2, b"0\t\t\t")]
BAD = {
    "undecodable": line(3, b"1\t3\t\xff\ta"),
    "wrong_column_count": line(4, b"1\t3\tx"),
    "bad_label": line(5, b"2\t3\tx\ta"),
    "non_numeric": line(6, b"1\tthree\tx\ta"),
    "field_too_long": line(7, b"1\t3\t" + b"x" * 30 + b"\ta"),
}


def test_validate_routes_every_defect_to_dead_letters_with_its_reason() -> None:
    with TestPipeline(runner="FnApiRunner") as p:
        out = (
            p
            | beam.Create(GOOD + list(BAD.values()))
            | beam.ParDo(ValidateFn(SPEC.to_json(), 20, None)).with_outputs(
                DEAD_LETTERS, main="valid"
            )
        )
        reasons = out[DEAD_LETTERS] | beam.Map(
            lambda d: (json.loads(d)["line"], json.loads(d)["reason"])
        )
        assert_that(reasons, equal_to([(v.line, k) for k, v in BAD.items()]), label="DeadReasons")
        values = out.valid | beam.Map(lambda r: (r.values, r.label))
        assert_that(
            values,
            equal_to([(("3", "x", "a|b"), 1.0), (("", "", ""), 0.0)]),
            label="ValidRows",
        )


def test_dead_letter_names_field_and_value() -> None:
    validator = RowValidator(SPEC, 20, None)
    with pytest.raises(Exception, match=r"field `n` is not a number: 'three'"):
        validator.validate(BAD["non_numeric"].data)
    with pytest.raises(Exception, match=r"field `c` has 30 characters \(max 20\)"):
        validator.validate(BAD["field_too_long"].data)


@pytest.mark.parametrize("value", ["1e5", "-2.5", ".5", "7", "+3"])
def test_numbers_accepted(value: str) -> None:
    RowValidator(SPEC, 20, None).validate(f"1\t{value}\tx\ta".encode())


@pytest.mark.parametrize("value", ["inf", "nan", "1_000", "0x10", " 3", "3 "])
def test_numbers_rejected(value: str) -> None:
    with pytest.raises(Exception, match="not a number"):
        RowValidator(SPEC, 20, None).validate(f"1\t{value}\tx\ta".encode())


def test_split_depends_only_on_content() -> None:
    rows = [ValidRow(("a",), 1.0, split_digest(f"row {i}")) for i in range(2000)]
    first = [split_of(r, 2, 0.25) for r in rows]
    assert first == [split_of(r, 2, 0.25) for r in reversed(rows)][::-1]
    assert 0.2 < np.mean(first) < 0.3
    assert all(split_of(r, 2, 0.0) == 0 for r in rows)
    assert all(split_of(r, 2, 1.0) == 1 for r in rows)


def test_row_stats_combine() -> None:
    rows = [ValidRow(("3", "", "a"), 1.0, 0), ValidRow(("", "", "b"), 0.0, 1)]
    with TestPipeline(runner="FnApiRunner") as p:
        stats = p | beam.Create(rows) | beam.CombineGlobally(RowStatsFn(3))
        assert_that(stats, equal_to([[2, 1, 1, 2, 0]]))


def test_encode_blocks_hash_with_the_shared_function() -> None:
    rows = [ValidRow(("3", "x", "a|b"), 1.0, 0), ValidRow(("", "", ""), 0.0, 1)]
    with TestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create(rows) | EncodeBlocks(SPEC, "train", block_rows=16)
        blocks = out.records | beam.Map(
            lambda s: {k: v.numpy().tolist() if not isinstance(v, tf.RaggedTensor)
                       else v.to_list() for k, v in parse_block(SPEC, tf.constant(s)).items()}
        )  # fmt: skip
        expected_c = fingerprint(tf.constant(["x", ""]), "c", 2).numpy().tolist()
        expected_m = [
            fingerprint(tf.constant(["a", "b"]), "m", 2).numpy().tolist(),
            fingerprint(tf.constant([""]), "m", 2).numpy().tolist(),
        ]

        def check(found: list) -> None:
            (block,) = found
            assert block["label"] == [[1.0], [0.0]]
            assert block["c"] == expected_c and block["m"] == expected_m
            assert block["n"][0] == pytest.approx(np.log1p(3.0)) and np.isnan(block["n"][1])

        assert_that(blocks, check, label="Blocks")
        distinct = out[FINGERPRINTS] | beam.combiners.Count.PerKey()
        assert_that(distinct, equal_to([("c", 2), ("m", 3)]), label="Fingerprints")


def test_stats_invariant_and_collisions() -> None:
    stats = build_stats(SPEC, 5, [3, 1, 0, 1, 0], {"bad_label": 2}, {"train": 2, "eval": 1},
                        {"c": 2, "m": 3})  # fmt: skip
    assert stats["rows_dead"] == 2 and stats["dead_by_reason"]["bad_label"] == 2
    assert stats["fields"]["c"]["missing_rate"] == pytest.approx(1 / 3)
    with pytest.raises(RuntimeError, match="rows lost: 6 read but 3 valid"):
        build_stats(SPEC, 6, [3, 1, 0, 1, 0], {"bad_label": 2}, {"train": 3}, {})
    rates = collision_rates(SPEC.replace(table=SPEC.table.__class__(rows=100, width=8)),
                            {"c": 50, "m": 50})  # fmt: skip
    draws = 50 * 2 + 50 * 2
    assert rates["c"]["unified_probe_collision_rate"] == pytest.approx(
        1 - np.exp(-(draws - 1) / 100)
    )


def test_read_lines_numbers_lines_skips_a_valid_header_and_reads_gzip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import gzip

    from pipelines.read import ReadLines

    (tmp_path / "a.csv").write_bytes(b"y,n\n1,2\n0,3\n")
    with gzip.open(tmp_path / "b.csv.gz", "wb") as f:
        f.write(b"not,the,header\n1,4\r\n")
    with TestPipeline(runner="FnApiRunner") as p:
        lines = p | ReadLines(str(tmp_path / "*.csv*"), header=b"y,n")
        found = lines | beam.Map(lambda r: (r.source.rsplit("/", 1)[-1], r.line, r.data))
        assert_that(
            found,
            equal_to([
                ("a.csv", 2, b"1,2"), ("a.csv", 3, b"0,3"),
                ("b.csv.gz", 1, b"not,the,header"), ("b.csv.gz", 2, b"1,4"),
            ]),
        )  # fmt: skip
