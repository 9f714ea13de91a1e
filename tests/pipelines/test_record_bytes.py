"""`records.encode_block` builds tf.train.Example from its own copy of the schema (the
pipeline's workers import no TensorFlow): the bytes parse, with TensorFlow's own protobuf
classes, into the Example TensorFlow builds from the same columns, and `parse_block` reads
them back. (tests/unified_embedding/contract/test_kinds.py checks the bytes themselves.)"""

from typing import Any

import numpy as np
import tensorflow as tf

from tests.pipelines.tiny_schema import TINY_SCHEMA
from unified_embedding.contract.schemas import from_short_form
from unified_embedding.rows.records import (
    CONTRACT,
    LABEL,
    LAYOUT,
    LAYOUT_VERSION,
    encode_block,
    parse_block,
    record_key,
)

SPEC = from_short_form({**TINY_SCHEMA, "probes": 2})


Columns = dict[str, Any]


def block(rows: int, seed: int = 0) -> tuple[Columns, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 4, rows)
    columns = {
        "n": rng.standard_normal(rows).astype(np.float32),
        "c": rng.integers(0, 2**63 - 1, (rows, 2)),
        "m": (rng.integers(0, 2**63 - 1, (int(lengths.sum()), 2)), lengths),
    }
    return columns, rng.integers(0, 2, rows).astype(np.float32)


def tf_example(columns: Columns, labels: np.ndarray) -> tf.train.Example:
    def raw(values: Any, dtype: str) -> tf.train.Feature:
        data = np.ascontiguousarray(values, dtype=dtype).tobytes()
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))

    flat, lengths = columns["m"]
    feature = {
        LAYOUT: tf.train.Feature(int64_list=tf.train.Int64List(value=[LAYOUT_VERSION])),
        CONTRACT: tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[record_key(SPEC).encode()])
        ),
        LABEL: raw(labels, "<f4"),
        "n": raw(columns["n"], "<f4"),
        "c": raw(columns["c"], "<i8"),
        "m": raw(flat, "<i8"),
        "m.lengths": raw(lengths, "<i8"),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def test_the_bytes_are_the_example_tensorflow_builds() -> None:
    for rows in (0, 1, 5, 3000):  # 3000 rows: lengths past one varint byte
        columns, labels = block(rows, seed=rows)
        written = encode_block(SPEC, columns, labels)
        assert tf.train.Example.FromString(written) == tf_example(columns, labels)


def test_parse_block_reads_them_back() -> None:
    columns, labels = block(17)
    parsed = parse_block(SPEC, tf.constant(encode_block(SPEC, columns, labels)))
    np.testing.assert_array_equal(parsed[LABEL].numpy()[:, 0], labels)
    np.testing.assert_array_equal(parsed["n"].numpy(), columns["n"])
    np.testing.assert_array_equal(parsed["c"].numpy(), columns["c"])
    flat, lengths = columns["m"]
    np.testing.assert_array_equal(parsed["m"].flat_values.numpy(), flat)
    np.testing.assert_array_equal(parsed["m"].row_lengths().numpy(), lengths)
