"""The training-record layout: one `tf.train.Example` per BLOCK of rows, each column one
little-endian byte string (`ndarray.tobytes()`, read back with `tf.io.decode_raw`).

Building one protobuf per row in Python is what limits a naive pipeline (~19k rows/s on two
cores), and even one list value per row costs ~0.2 us in Python; a column as raw bytes costs
one copy, so a block's record is built in O(columns).

    layout           int64  [2]                 this layout's version
    contract         bytes                      `record_key` of the spec that wrote it
    label            float32 (rows,)            NaN where a scoring input has no label
    <numeric field>  float32 (rows,)            transformed, NaN where missing
    <categorical>    int64  (rows * probes,)    fingerprints, row-major
    <multi-valued>   int64  (values * probes,)  plus `<field>.lengths` int64 (rows,)

Fingerprints, not table rows, are stored, so one preprocessing run serves every table size.
`read_blocks` -> `tf.data.Dataset` of row dicts shaped like `features.encode_features` output.
Layout 1 (one int64/float list per column) was written before version 0.2; rerun
`ue preprocess` on such records.

Each block names the contract it was written under (`record_key`: what its columns mean, not
the table a run sizes), and parsing checks it in-graph, once per block: records read under
another spec.json fail instead of being misread. Blocks written before the key existed carry
none and are read as before. `find_bad_file` names the file behind a read error (the error
path only: it reads the files again).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import types
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from unified_embedding.contract.artifacts import LENGTHS_SUFFIX
from unified_embedding.contract.kinds import kind_of
from unified_embedding.contract.spec import FeatureSpec

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "LABEL",
    "LAYOUT",
    "LAYOUT_VERSION",
    "LENGTHS_SUFFIX",
    "RecordsError",
    "encode_block",
    "find_bad_file",
    "read_blocks",
    "record_key",
]
LABEL = "label"
LAYOUT = "layout"
LAYOUT_VERSION = 2
CONTRACT = "contract"
COMPRESSION = "GZIP"


class RecordsError(ValueError):
    """A record file that cannot be read as records of the spec; the message names the file."""


def record_key(spec: FeatureSpec) -> str:
    """A digest of what a block's columns mean: the label, the missing-value cells, and each
    field's name, kind, probes, transform and separator. Not the table, the embedding width
    nor vocabularies: a run changes those without changing what the records hold."""
    fields = [
        [f.name, f.kind, f.probes if f.is_categorical else 0, f.transform, f.separator]
        for f in spec.fields
    ]
    contract = [spec.label, list(spec.input_format.missing), fields]
    canonical = json.dumps(contract, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def encode_block(spec: FeatureSpec, columns: Mapping[str, np.ndarray], labels: np.ndarray) -> bytes:
    """Serialize a block. `columns` hold `encode_features` output as NumPy: (rows,) floats,
    (rows, probes) ints, or for multi-valued fields a (flat values (n, probes), lengths) pair."""
    proto = _example_classes()
    contract = record_key(spec).encode("ascii")
    feature = {
        LAYOUT: proto.Feature(int64_list=proto.Int64List(value=[LAYOUT_VERSION])),
        CONTRACT: proto.Feature(bytes_list=proto.BytesList(value=[contract])),
        LABEL: _raw(labels, "<f4"),
    }
    for f in spec.fields:
        for key, (values, dtype) in kind_of(f).record_columns(f, columns[f.name]).items():
            feature[key] = _raw(values, dtype)
    example = proto.Example(features=proto.Features(feature=feature))
    return bytes(example.SerializeToString())


def _raw(values: np.ndarray, dtype: str) -> Any:
    data = np.ascontiguousarray(values, dtype=dtype).tobytes()
    proto = _example_classes()
    return proto.Feature(bytes_list=proto.BytesList(value=[data]))


@functools.cache
def _example_classes() -> Any:
    """`tf.train.Example`'s protobuf classes (`.Example`, `.Feature`, ...), built from its
    schema (example.proto, feature.proto: the messages a block uses) in a descriptor pool of
    its own: the same protobuf runtime writes the same bytes as `tf.train.Example`, and the
    pipeline's workers need no TensorFlow to write records."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    schema = descriptor_pb2.FileDescriptorProto(
        name="unified_embedding/rows/example.proto", package="tensorflow", syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, str]) -> Any:
        out = schema.message_type.add(name=name)
        for field_name, number, kind, type_name in fields:
            label = field.LABEL_REPEATED if name.endswith("List") else field.LABEL_OPTIONAL
            out.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                out.field[-1].type_name = type_name
        return out

    message("BytesList", ("value", 1, field.TYPE_BYTES, ""))
    message("FloatList", ("value", 1, field.TYPE_FLOAT, ""))
    message("Int64List", ("value", 1, field.TYPE_INT64, ""))
    one_of = message(
        "Feature",
        ("bytes_list", 1, field.TYPE_MESSAGE, ".tensorflow.BytesList"),
        ("float_list", 2, field.TYPE_MESSAGE, ".tensorflow.FloatList"),
        ("int64_list", 3, field.TYPE_MESSAGE, ".tensorflow.Int64List"),
    )
    one_of.oneof_decl.add(name="kind")
    for f in one_of.field:
        f.oneof_index = 0
    features = message("Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    entry.field.add(
        name="value",
        number=2,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_OPTIONAL,
        type_name=".tensorflow.Feature",
    )
    features.field.add(
        name="feature",
        number=1,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_REPEATED,
        type_name=".tensorflow.Features.FeatureEntry",
    )
    message("Example", ("features", 1, field.TYPE_MESSAGE, ".tensorflow.Features"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(schema)
    names = ("BytesList", "Int64List", "Feature", "Features", "Example")
    classes = {n: pool.FindMessageTypeByName(f"tensorflow.{n}") for n in names}
    return types.SimpleNamespace(
        **{n: message_factory.GetMessageClass(d) for n, d in classes.items()}
    )


def block_features(spec: FeatureSpec) -> dict[str, tf.io.FixedLenFeature]:
    """The parsing spec of a block record (a record of another layout fails on `layout`)."""
    import tensorflow as tf

    raw = tf.io.FixedLenFeature([], tf.string)
    out = {
        LAYOUT: tf.io.FixedLenFeature([], tf.int64),
        CONTRACT: tf.io.FixedLenFeature([], tf.string, default_value=""),  # older blocks: none
        LABEL: raw,
    }
    for f in spec.fields:
        out.update({key: raw for key in kind_of(f).record_keys(f)})
    return out


def parse_block(spec: FeatureSpec, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """One serialized block -> columns with a leading rows dimension (ragged for multi-valued)."""
    import tensorflow as tf

    parsed = tf.io.parse_single_example(serialized, block_features(spec))
    tf.debugging.assert_equal(
        parsed[LAYOUT],
        tf.constant(LAYOUT_VERSION, tf.int64),
        message=f"records of another layout: rerun `ue preprocess` (expected {LAYOUT_VERSION})",
    )
    expected, contract = record_key(spec), parsed[CONTRACT]
    message = f"records written under another spec.json (contract {expected} expected), found:"
    tf.debugging.Assert(
        tf.logical_or(tf.equal(contract, ""), tf.equal(contract, expected)), [message, contract]
    )
    out: dict[str, tf.Tensor] = {LABEL: tf.io.decode_raw(parsed[LABEL], tf.float32)[:, None]}
    for f in spec.fields:
        out[f.name] = kind_of(f).parse_record(f, parsed)
    return out


def read_blocks(spec: FeatureSpec, pattern: str, compression: str = COMPRESSION) -> tf.data.Dataset:
    """Rows (label included) from every block file matching `pattern`, in file order."""
    import tensorflow as tf

    files = tf.data.Dataset.list_files(pattern, shuffle=False)
    records = tf.data.TFRecordDataset(files, compression_type=compression)
    return records.map(lambda s: parse_block(spec, s)).unbatch()


def find_bad_file(
    spec: FeatureSpec, files: Sequence[str], error: tf.errors.OpError
) -> RecordsError | None:
    """The error naming the file behind `error` (raised while reading `files`), or None when
    every file reads. Another spec shows in a file's first block, so a parse error reads one
    block per file; a data loss (a truncated or corrupt shard) reads the files until one fails."""
    import tensorflow as tf

    whole = isinstance(error, tf.errors.DataLossError)
    for path in files:
        records = tf.data.TFRecordDataset(path, compression_type=COMPRESSION)
        if not whole:
            records = records.take(1)
        blocks = records.map(lambda s: parse_block(spec, s))
        try:
            blocks.reduce(np.int64(0), lambda n, _: n + 1)
        except tf.errors.DataLossError as e:
            return RecordsError(
                f"`{path}` is truncated or corrupt ({_reason(e)}): rerun `ue "
                f"preprocess` to write it again"
            )
        except tf.errors.InvalidArgumentError as e:
            return RecordsError(
                f"`{path}` does not hold records of this spec.json "
                f"({_reason(e)}): rerun `ue preprocess` for it"
            )
    return None


def _reason(error: tf.errors.OpError) -> str:
    """TensorFlow's message without the op and graph context: its first line, short."""
    message = re.sub(r"\{\{[^}]*\}\}\s*", "", error.message).strip()
    message = message.splitlines()[0] if message else type(error).__name__
    message = re.sub(r"^Error in user-defined function .*? with iterator: [\w:]+: ", "", message)
    message = message.split(" [[")[0].split(" [Op:")[0]
    message = re.sub(r"^assertion failed: \[(.*)\] \[(.*)\]$", r"\1 \2", message)  # tf.Assert's
    return message[:300]
