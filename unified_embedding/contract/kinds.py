"""Field kinds: one small class per kind owns everything that differs by kind.

    kind = kind_of(field)        # Numeric(), Categorical() or MultiValued()
    kind.encode(field, values)   # raw values -> the model's input for the field
    kind.record_columns(...)     # its columns in a training record (`records.py`)
    kind.ids_spec(field)         # its input to the exported `from_ids` signature

    kind        model input                          record columns (little-endian bytes)
    numeric     float32 (batch,), NaN = missing      <field> float32 (rows,)
    categorical int64 (batch, probes) fingerprints   <field> int64 (rows * probes,)
    multi_valued int64 ragged (batch, (values), probes)  <field> int64 (values * probes,),
                                                     <field>.lengths int64 (rows,)

The rest of the code asks `kind_of(field)` instead of comparing `field.kind` to a name;
adding a kind is one class here plus its name in `spec.KINDS` (the spec validates names
without importing TensorFlow).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from unified_embedding.contract.artifacts import LENGTHS_SUFFIX
from unified_embedding.contract.hashing import fingerprint
from unified_embedding.contract.raw_values import RAW_TYPES
from unified_embedding.contract.spec import KINDS as KIND_NAMES
from unified_embedding.contract.spec import FieldSpec

if TYPE_CHECKING:
    import tensorflow as tf
else:

    class _TensorFlowOnFirstUse:
        """`tf` here, imported when a kind first uses it: a record's layout
        (`record_columns`, what the pipeline's workers ask) needs no TensorFlow."""

        def __getattr__(self, name: str) -> Any:
            import tensorflow

            return getattr(tensorflow, name)

    tf = _TensorFlowOnFirstUse()


class EmbeddingLayer(Protocol):
    """What a kind asks of the embedding layer (`layers.field_embedding.FieldEmbedding`)."""

    @property
    def compute_dtype(self) -> tf.DType: ...

    def embed_fields(
        self,
        fields: Sequence[FieldSpec],
        inputs: Sequence[tf.Tensor | tf.RaggedTensor],
        width: int | None = None,
    ) -> list[tf.Tensor]: ...

    def embed_numeric(self, values: tf.Tensor) -> tf.Tensor: ...

    def embed_pooled(
        self, field: FieldSpec, ids: tf.RaggedTensor, width: int | None = None
    ) -> tf.Tensor: ...


Column = tuple[np.ndarray, str]  # values and the little-endian dtype they are stored as


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


class FieldKind:
    """What a kind of field is, from raw values to the model and back to files."""

    name: ClassVar[str]

    @property
    def raw_dtype(self) -> tf.DType:
        """Its input to the raw-features signatures (`raw_values` owns numbers vs strings)."""
        return tf.as_dtype(RAW_TYPES[self.name].tf_dtype)

    def encode(self, field: FieldSpec, values: tf.Tensor | tf.RaggedTensor) -> tf.Tensor:
        """Raw values (batch,), missing already blanked -> the field's model input."""
        raise NotImplementedError

    def from_text(self, values: tf.Tensor) -> tf.Tensor:
        """Text cells (batch,) -> the field's input to the raw-features signatures."""
        return values

    def example_feature(self) -> tf.io.FixedLenFeature:
        """Its raw value in a serialized tf.train.Example; absent = missing."""
        return tf.io.FixedLenFeature([], tf.string, default_value="")

    def warmup_values(self, field: FieldSpec, present: np.ndarray) -> np.ndarray:
        """Raw-signature inputs: a value where `present`, missing elsewhere."""
        return np.where(present, f"warmup-{field.name}", "").astype(object)

    def ids_spec(self, field: FieldSpec) -> tf.TensorSpec | tf.RaggedTensorSpec:
        """Its encoded input (the `from_ids` signature)."""
        return tf.TensorSpec([None, field.probes], tf.int64, field.name)

    def dummy_input(self, field: FieldSpec) -> tf.Tensor:
        """One row of encoded input (builds a model's variables)."""
        return tf.zeros([1, field.probes], tf.int64)

    def record_columns(self, field: FieldSpec, value: np.ndarray) -> dict[str, Column]:
        """Encoded values of a block (as NumPy) -> the record's columns."""
        return {field.name: (value, "<i8")}

    def record_keys(self, field: FieldSpec) -> tuple[str, ...]:
        return (field.name,)

    def parse_record(self, field: FieldSpec, parsed: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """The record's raw byte columns -> encoded values with a leading rows dimension."""
        return tf.reshape(tf.io.decode_raw(parsed[field.name], tf.int64), [-1, field.probes])

    def cell_values(self, field: FieldSpec, cells: np.ndarray) -> np.ndarray:
        """Text cells of a column -> the values they hold (a vocabulary's input)."""
        return cells

    def embed(
        self,
        layer: EmbeddingLayer,
        fields: Sequence[FieldSpec],
        inputs: Sequence[tf.Tensor | tf.RaggedTensor],
        width: int | None = None,
    ) -> list[tf.Tensor]:
        """All fields of this kind at once -> one (batch, dim) vector each; `width`: read only
        the first `width` columns of the embedding tables (a nested width; None: all)."""
        return layer.embed_fields(fields, inputs, width)


class Numeric(FieldKind):
    """A number: `x * v_f` in the model (plus a learned vector when missing)."""

    name = "numeric"

    def encode(self, field: FieldSpec, values: tf.Tensor | tf.RaggedTensor) -> tf.Tensor:
        return transform_numeric(parse_numeric(values), field.transform)

    def from_text(self, values: tf.Tensor) -> tf.Tensor:
        return parse_numeric(values)

    def example_feature(self) -> tf.io.FixedLenFeature:
        return tf.io.FixedLenFeature([], tf.float32, default_value=float("nan"))

    def warmup_values(self, field: FieldSpec, present: np.ndarray) -> np.ndarray:
        return np.where(present, 1.0, np.nan).astype(np.float32)

    def ids_spec(self, field: FieldSpec) -> tf.TensorSpec | tf.RaggedTensorSpec:
        return tf.TensorSpec([None], tf.float32, field.name)

    def dummy_input(self, field: FieldSpec) -> tf.Tensor:
        return tf.zeros([1], tf.float32)

    def record_columns(self, field: FieldSpec, value: np.ndarray) -> dict[str, Column]:
        return {field.name: (value, "<f4")}

    def parse_record(self, field: FieldSpec, parsed: Mapping[str, tf.Tensor]) -> tf.Tensor:
        return tf.io.decode_raw(parsed[field.name], tf.float32)

    def cell_values(self, field: FieldSpec, cells: np.ndarray) -> np.ndarray:
        raise ValueError(f"numeric field `{field.name}` has no vocabulary")

    def embed(
        self,
        layer: EmbeddingLayer,
        fields: Sequence[FieldSpec],
        inputs: Sequence[tf.Tensor | tf.RaggedTensor],
        width: int | None = None,
    ) -> list[tf.Tensor]:
        values = tf.stack([tf.cast(x, layer.compute_dtype) for x in inputs], 1)
        vectors = layer.embed_numeric(values)  # (batch, numeric fields, dim)
        return [vectors[:, i] for i in range(len(fields))]


class Categorical(FieldKind):
    """One value per row, hashed into `probes` fingerprints."""

    name = "categorical"

    def encode(self, field: FieldSpec, values: tf.Tensor | tf.RaggedTensor) -> tf.Tensor:
        return fingerprint(as_strings(values), field.name, field.probes)


class MultiValued(FieldKind):
    """A list of values in one cell, split on the field's separator and mean-pooled."""

    name = "multi_valued"

    def encode(self, field: FieldSpec, values: tf.Tensor | tf.RaggedTensor) -> tf.Tensor:
        values = as_strings(values)
        if not isinstance(values, tf.RaggedTensor):
            assert field.separator is not None
            values = tf.strings.split(values, sep=field.separator)
        return fingerprint(values, field.name, field.probes)

    def ids_spec(self, field: FieldSpec) -> tf.TensorSpec | tf.RaggedTensorSpec:
        return tf.RaggedTensorSpec([None, None, field.probes], tf.int64, ragged_rank=1)

    def dummy_input(self, field: FieldSpec) -> tf.Tensor:
        return tf.RaggedTensor.from_row_lengths(tf.zeros([1, field.probes], tf.int64), [1])

    def record_columns(self, field: FieldSpec, value: np.ndarray) -> dict[str, Column]:
        flat, lengths = value  # (values, probes) fingerprints and values per row
        return {field.name: (flat, "<i8"), field.name + LENGTHS_SUFFIX: (lengths, "<i8")}

    def record_keys(self, field: FieldSpec) -> tuple[str, ...]:
        return (field.name, field.name + LENGTHS_SUFFIX)

    def parse_record(self, field: FieldSpec, parsed: Mapping[str, tf.Tensor]) -> tf.Tensor:
        values = super().parse_record(field, parsed)
        lengths = tf.io.decode_raw(parsed[field.name + LENGTHS_SUFFIX], tf.int64)
        return tf.RaggedTensor.from_row_lengths(values, lengths)

    def cell_values(self, field: FieldSpec, cells: np.ndarray) -> np.ndarray:
        assert field.separator is not None
        return np.array([v for cell in cells for v in str(cell).split(field.separator)], object)

    def embed(
        self,
        layer: EmbeddingLayer,
        fields: Sequence[FieldSpec],
        inputs: Sequence[tf.Tensor | tf.RaggedTensor],
        width: int | None = None,
    ) -> list[tf.Tensor]:
        return [layer.embed_pooled(f, ids, width) for f, ids in zip(fields, inputs, strict=True)]


KINDS: dict[str, FieldKind] = {
    kind.name: kind for kind in (Numeric(), Categorical(), MultiValued())
}
assert tuple(KINDS) == KIND_NAMES, "spec.KINDS and kinds.KINDS should name the same kinds"
assert tuple(RAW_TYPES) == KIND_NAMES, "spec.KINDS and raw_values.RAW_TYPES should agree"


def kind_of(field: FieldSpec) -> FieldKind:
    return KINDS[field.kind]
