"""Raw feature values -> model inputs, as the spec says: the one function pipeline and model share.

    encode_features(spec, {"I1": ["3", ""], "C1": ["68fd1e64", ""]})
    -> {"I1": float32 (batch,) log1p(3), NaN for missing
        "C1": int64 (batch, probes) fingerprints}

Multi-valued fields come out ragged: int64 (batch, (values), probes). Each kind's encoding is
its class's in `kinds.py`; hashing happens in `hashing.fingerprint`; the table size is applied
later by the embedding layer.
"""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from unified_embedding.contract.kinds import as_strings, kind_of, parse_numeric, transform_numeric
from unified_embedding.contract.spec import FeatureSpec, FieldSpec

__all__ = [
    "as_strings",
    "blank_missing",
    "encode_features",
    "encode_field",
    "parse_numeric",
    "transform_numeric",
]

Features = dict[str, tf.Tensor | tf.RaggedTensor]


def blank_missing(
    values: tf.Tensor | tf.RaggedTensor, tokens: tuple[str, ...]
) -> tf.Tensor | tf.RaggedTensor:
    """String cells equal to a declared missing-value token become empty (= missing)."""
    if not tokens or isinstance(values, tf.RaggedTensor):
        return values
    values = tf.convert_to_tensor(values)
    if values.dtype != tf.string:
        return values
    hit = tf.reduce_any(tf.equal(values[..., None], tf.constant(tokens)), axis=-1)
    return tf.where(hit, tf.constant(""), values)


def encode_field(
    field: FieldSpec, values: tf.Tensor | tf.RaggedTensor, missing: tuple[str, ...] = ()
) -> tf.Tensor:
    """One field's raw values (batch,) -> its model input; `missing`: the format's tokens
    that mean missing, besides the empty string."""
    return kind_of(field).encode(field, blank_missing(values, missing))


def encode_features(spec: FeatureSpec, raw: Mapping[str, tf.Tensor | tf.RaggedTensor]) -> Features:
    """Every field of `spec` from `raw` (extra keys, e.g. the label, are ignored)."""
    absent = [f.name for f in spec.fields if f.name not in raw]
    if absent:
        raise KeyError(f"raw features are missing fields {absent} of spec `{spec.name}`")
    missing = spec.input_format.missing
    return {f.name: encode_field(f, raw[f.name], missing) for f in spec.fields}
