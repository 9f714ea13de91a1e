"""Raw feature values -> model inputs, as the spec says: the one function pipeline and model share.

    encode_features(spec, {"I1": ["3", ""], "C1": ["68fd1e64", ""]})
    -> {"I1": float32 (batch,) log1p(3), NaN for missing
        "C1": int64 (batch, probes) fingerprints}

Multi-valued fields come out ragged: int64 (batch, (values), probes). Hashing happens in
`hashing.fingerprint`; the table size is applied later by the embedding layer.
"""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from unified_embedding.hashing import fingerprint
from unified_embedding.spec import FeatureSpec, FieldSpec

Features = dict[str, tf.Tensor | tf.RaggedTensor]


def parse_numeric(values: tf.Tensor) -> tf.Tensor:
    """Strings (empty = missing) or numbers -> float32, NaN where missing."""
    values = tf.convert_to_tensor(values)
    if values.dtype == tf.string:
        values = tf.strings.to_number(
            tf.where(tf.equal(tf.strings.strip(values), ""), "nan", values), out_type=tf.float32
        )
    return tf.cast(values, tf.float32)


def transform_numeric(values: tf.Tensor, transform: str) -> tf.Tensor:
    """The spec's numeric transform of float32 values; NaN (missing) stays NaN.

    Computed in float64 and rounded to float32: float32 log1p differs by an ulp between the
    vectorised and scalar kernels, i.e. with the batch's size, which would make the pipeline's
    records depend on batching and differ from a batch-1 request to the exported model.
    """
    if transform not in ("identity", "log1p", "log_square"):
        raise ValueError(f"unknown numeric transform. Received: `transform={transform!r}`")
    x = tf.cast(values, tf.float64)
    magnitude = tf.abs(x)
    if transform == "log1p":
        x = tf.sign(x) * tf.math.log1p(magnitude)
    elif transform == "log_square":
        squared = tf.sign(x) * tf.floor(tf.square(tf.math.log(tf.maximum(magnitude, 1.0))))
        x = tf.where(magnitude > 2.0, squared, x)
    return tf.cast(x, tf.float32)


def as_strings(values: tf.Tensor | tf.RaggedTensor) -> tf.Tensor | tf.RaggedTensor:
    """Categorical values as strings; integer ids are formatted the way text files spell them."""
    if isinstance(values, tf.RaggedTensor):
        return tf.ragged.map_flat_values(as_strings, values)
    values = tf.convert_to_tensor(values)
    return values if values.dtype == tf.string else tf.strings.as_string(values)


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
    values = blank_missing(values, missing)
    if field.kind == "numeric":
        return transform_numeric(parse_numeric(values), field.transform)
    values = as_strings(values)
    if field.kind == "multi_valued" and not isinstance(values, tf.RaggedTensor):
        assert field.separator is not None
        values = tf.strings.split(values, sep=field.separator)
    return fingerprint(values, field.name, field.probes)


def encode_features(spec: FeatureSpec, raw: Mapping[str, tf.Tensor | tf.RaggedTensor]) -> Features:
    """Every field of `spec` from `raw` (extra keys, e.g. the label, are ignored)."""
    absent = [f.name for f in spec.fields if f.name not in raw]
    if absent:
        raise KeyError(f"raw features are missing fields {absent} of spec `{spec.name}`")
    missing = spec.input_format.missing
    return {f.name: encode_field(f, raw[f.name], missing) for f in spec.fields}
