"""Field kinds: each kind's encoding, record columns and signature inputs agree with each other,
and records keep layout 2 byte for byte.

Block of 2 rows of a 3-field spec:

    n (numeric, log1p)   c (2 probes)   m (multi-valued, "|", 2 probes)
    "3"                  "x"            "p|q"
    ""                   ""             ""
"""

import numpy as np
import pytest
import tensorflow as tf

from unified_embedding.contract import spec as spec_module
from unified_embedding.contract.features import encode_features
from unified_embedding.contract.kinds import KINDS, LENGTHS_SUFFIX, kind_of
from unified_embedding.contract.spec import FeatureSpec, FieldSpec, InputFormat, TableSpec
from unified_embedding.rows.records import LAYOUT_VERSION, encode_block, parse_block, record_key

SPEC = FeatureSpec(
    name="tiny",
    input_format=InputFormat(columns=("y", "n", "c", "m")),
    label="y",
    fields=(
        FieldSpec("n", kind="numeric", transform="log1p"),
        FieldSpec("c", probes=2),
        FieldSpec("m", kind="multi_valued", probes=2, separator="|"),
    ),
    table=TableSpec(rows=7, width=4),
    embedding_dim=8,
)
RAW = {"n": tf.constant(["3", ""]), "c": tf.constant(["x", ""]), "m": tf.constant(["p|q", ""])}


def test_every_spec_kind_has_a_class() -> None:
    assert tuple(KINDS) == spec_module.KINDS
    assert [type(kind_of(f)).__name__ for f in SPEC.fields] == [
        "Numeric",
        "Categorical",
        "MultiValued",
    ]


def _layout_2_oracle(columns: dict[str, object], labels: np.ndarray) -> bytes:
    """The block record as written before the kinds existed (independent of `kinds.py`)."""

    def raw(values: object, dtype: str) -> tf.train.Feature:
        data = np.ascontiguousarray(values, dtype=dtype).tobytes()
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))

    n, c, (flat, lengths) = columns["n"], columns["c"], columns["m"]  # type: ignore[misc]
    contract = record_key(SPEC).encode()  # the fields' digest: records of another spec refused
    feature = {
        "layout": tf.train.Feature(int64_list=tf.train.Int64List(value=[LAYOUT_VERSION])),
        "contract": tf.train.Feature(bytes_list=tf.train.BytesList(value=[contract])),
        "label": raw(labels, "<f4"),
        "n": raw(n, "<f4"),
        "c": raw(c, "<i8"),
        "m": raw(flat, "<i8"),
        "m.lengths": raw(lengths, "<i8"),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _block_columns() -> dict[str, object]:
    encoded = encode_features(SPEC, RAW)
    m = encoded["m"]
    return {
        "n": encoded["n"].numpy(),
        "c": encoded["c"].numpy(),
        "m": (m.flat_values.numpy(), m.row_lengths().numpy()),
    }


def test_records_keep_layout_2_byte_for_byte() -> None:
    columns, labels = _block_columns(), np.array([1.0, 0.0], np.float32)
    block = encode_block(SPEC, columns, labels)  # type: ignore[arg-type]
    assert block == _layout_2_oracle(columns, labels)


def test_record_round_trip_gives_the_encoded_features() -> None:
    columns = _block_columns()
    block = encode_block(SPEC, columns, np.array([1.0, 0.0], np.float32))  # type: ignore[arg-type]
    parsed = parse_block(SPEC, tf.constant(block))
    encoded = encode_features(SPEC, RAW)
    for name in ("n", "c"):
        np.testing.assert_array_equal(parsed[name].numpy(), encoded[name].numpy())
    assert parsed["m"].to_list() == encoded["m"].to_list()
    assert LENGTHS_SUFFIX == ".lengths"


@pytest.mark.parametrize("field", SPEC.fields, ids=lambda f: f.name)
def test_ids_spec_and_dummy_input_match_the_encoding(field: FieldSpec) -> None:
    kind = kind_of(field)
    encoded = encode_features(SPEC, RAW)[field.name]
    assert kind.ids_spec(field).is_compatible_with(encoded)
    assert kind.ids_spec(field).is_compatible_with(kind.dummy_input(field))


def test_raw_inputs_per_kind() -> None:
    numeric, categorical = kind_of(SPEC.fields[0]), kind_of(SPEC.fields[1])
    assert numeric.raw_dtype == tf.float32 and categorical.raw_dtype == tf.string
    np.testing.assert_array_equal(
        numeric.from_text(tf.constant(["2.5", ""])).numpy(), np.array([2.5, np.nan], np.float32)
    )
    present = np.array([True, False])
    np.testing.assert_array_equal(numeric.warmup_values(SPEC.fields[0], present), [1.0, np.nan])
    assert list(categorical.warmup_values(SPEC.fields[1], present)) == ["warmup-c", ""]


def test_cell_values_split_multi_valued_cells() -> None:
    cells = np.array(["p|q", "", "q"], object)
    assert list(kind_of(SPEC.fields[2]).cell_values(SPEC.fields[2], cells)) == ["p", "q", "", "q"]
    assert list(kind_of(SPEC.fields[1]).cell_values(SPEC.fields[1], cells)) == list(cells)
    with pytest.raises(ValueError, match="numeric field `n`"):
        kind_of(SPEC.fields[0]).cell_values(SPEC.fields[0], cells)
