"""The training-record layout: one `tf.train.Example` per BLOCK of rows, columns stored flat.

Building one protobuf per row in Python is what limits a naive pipeline (~19k rows/s on two
cores); a block of a few thousand rows costs one protobuf with one list per column instead.

    label            float  (rows,)
    <numeric field>  float  (rows,)            transformed, NaN where missing
    <categorical>    int64  (rows * probes,)   fingerprints, row-major
    <multi-valued>   int64  (values * probes,) plus `<field>.lengths` int64 (rows,)

Fingerprints, not table rows, are stored, so one preprocessing run serves every table size.
`read_blocks` -> `tf.data.Dataset` of row dicts shaped like `features.encode_features` output.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from unified_embedding.spec import FeatureSpec

LABEL = "label"
LENGTHS_SUFFIX = ".lengths"


def encode_block(spec: FeatureSpec, columns: Mapping[str, np.ndarray], labels: np.ndarray) -> bytes:
    """Serialize a block. `columns` hold `encode_features` output as NumPy: (rows,) floats,
    (rows, probes) ints, or for multi-valued fields a (flat values (n, probes), lengths) pair."""
    feature = {LABEL: _floats(labels)}
    for f in spec.fields:
        value = columns[f.name]
        if f.kind == "numeric":
            feature[f.name] = _floats(value)
        elif f.kind == "multi_valued":
            flat, lengths = value
            feature[f.name] = _ints(flat)
            feature[f.name + LENGTHS_SUFFIX] = _ints(lengths)
        else:
            feature[f.name] = _ints(value)
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString()


def _floats(values: np.ndarray) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(values)))


def _ints(values: np.ndarray) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=np.ravel(values)))


def block_features(spec: FeatureSpec) -> dict[str, tf.io.FixedLenSequenceFeature]:
    """The parsing spec of a block record."""
    floats = tf.io.FixedLenSequenceFeature([], tf.float32, allow_missing=True)
    ints = tf.io.FixedLenSequenceFeature([], tf.int64, allow_missing=True)
    out = {LABEL: floats}
    for f in spec.fields:
        out[f.name] = floats if f.kind == "numeric" else ints
        if f.kind == "multi_valued":
            out[f.name + LENGTHS_SUFFIX] = ints
    return out


def parse_block(spec: FeatureSpec, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """One serialized block -> columns with a leading rows dimension (ragged for multi-valued)."""
    parsed = tf.io.parse_single_example(serialized, block_features(spec))
    out: dict[str, tf.Tensor] = {LABEL: parsed[LABEL][:, None]}
    for f in spec.fields:
        value = parsed[f.name]
        if f.kind == "numeric":
            out[f.name] = value
        elif f.kind == "multi_valued":
            values = tf.reshape(value, [-1, f.probes])
            out[f.name] = tf.RaggedTensor.from_row_lengths(values, parsed[f.name + LENGTHS_SUFFIX])
        else:
            out[f.name] = tf.reshape(value, [-1, f.probes])
    return out


def read_blocks(spec: FeatureSpec, pattern: str, compression: str = "GZIP") -> tf.data.Dataset:
    """Rows (label included) from every block file matching `pattern`, in file order."""
    files = tf.data.Dataset.list_files(pattern, shuffle=False)
    records = tf.data.TFRecordDataset(files, compression_type=compression)
    return records.map(lambda s: parse_block(spec, s)).unbatch()
