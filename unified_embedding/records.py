"""The training-record layout: one `tf.train.Example` per BLOCK of rows, each column one
little-endian byte string (`ndarray.tobytes()`, read back with `tf.io.decode_raw`).

Building one protobuf per row in Python is what limits a naive pipeline (~19k rows/s on two
cores), and even one list value per row costs ~0.2 us in Python; a column as raw bytes costs
one copy, so a block's record is built in O(columns).

    layout           int64  [2]                 this layout's version
    label            float32 (rows,)            NaN where a scoring input has no label
    <numeric field>  float32 (rows,)            transformed, NaN where missing
    <categorical>    int64  (rows * probes,)    fingerprints, row-major
    <multi-valued>   int64  (values * probes,)  plus `<field>.lengths` int64 (rows,)

Fingerprints, not table rows, are stored, so one preprocessing run serves every table size.
`read_blocks` -> `tf.data.Dataset` of row dicts shaped like `features.encode_features` output.
Layout 1 (one int64/float list per column) was written before version 0.2; rerun
`ue preprocess` on such records.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from unified_embedding.artifacts import LENGTHS_SUFFIX
from unified_embedding.kinds import kind_of
from unified_embedding.spec import FeatureSpec

__all__ = ["LABEL", "LAYOUT", "LAYOUT_VERSION", "LENGTHS_SUFFIX", "encode_block", "read_blocks"]
LABEL = "label"
LAYOUT = "layout"
LAYOUT_VERSION = 2


def encode_block(spec: FeatureSpec, columns: Mapping[str, np.ndarray], labels: np.ndarray) -> bytes:
    """Serialize a block. `columns` hold `encode_features` output as NumPy: (rows,) floats,
    (rows, probes) ints, or for multi-valued fields a (flat values (n, probes), lengths) pair."""
    feature = {
        LAYOUT: tf.train.Feature(int64_list=tf.train.Int64List(value=[LAYOUT_VERSION])),
        LABEL: _raw(labels, "<f4"),
    }
    for f in spec.fields:
        for key, (values, dtype) in kind_of(f).record_columns(f, columns[f.name]).items():
            feature[key] = _raw(values, dtype)
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString()


def _raw(values: np.ndarray, dtype: str) -> tf.train.Feature:
    data = np.ascontiguousarray(values, dtype=dtype).tobytes()
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))


def block_features(spec: FeatureSpec) -> dict[str, tf.io.FixedLenFeature]:
    """The parsing spec of a block record (a record of another layout fails on `layout`)."""
    raw = tf.io.FixedLenFeature([], tf.string)
    out = {LAYOUT: tf.io.FixedLenFeature([], tf.int64), LABEL: raw}
    for f in spec.fields:
        out.update({key: raw for key in kind_of(f).record_keys(f)})
    return out


def parse_block(spec: FeatureSpec, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """One serialized block -> columns with a leading rows dimension (ragged for multi-valued)."""
    parsed = tf.io.parse_single_example(serialized, block_features(spec))
    tf.debugging.assert_equal(
        parsed[LAYOUT],
        tf.constant(LAYOUT_VERSION, tf.int64),
        message=f"records of another layout: rerun `ue preprocess` (expected {LAYOUT_VERSION})",
    )
    out: dict[str, tf.Tensor] = {LABEL: tf.io.decode_raw(parsed[LABEL], tf.float32)[:, None]}
    for f in spec.fields:
        out[f.name] = kind_of(f).parse_record(f, parsed)
    return out


def read_blocks(spec: FeatureSpec, pattern: str, compression: str = "GZIP") -> tf.data.Dataset:
    """Rows (label included) from every block file matching `pattern`, in file order."""
    files = tf.data.Dataset.list_files(pattern, shuffle=False)
    records = tf.data.TFRecordDataset(files, compression_type=compression)
    return records.map(lambda s: parse_block(spec, s)).unbatch()
