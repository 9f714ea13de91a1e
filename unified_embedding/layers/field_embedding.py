"""The contract shared by every embedding layout: encoded features in, one vector per field out.

Inputs are what `features.encode_features` returns: int64 fingerprints (batch, probes) for
categorical fields, ragged (batch, (values), probes) for multi-valued fields, float32 (batch,) for
numeric fields (NaN = missing). Output: (batch, fields, embedding_dim) in the spec's field order.

Numeric field i: `x_i * v_i` (Song et al.'s AutoInt), plus a learned vector `m_i` when x is missing.
Multi-valued fields are the mean of their values' embeddings. Layouts only decide how a
categorical field's fingerprints become a vector (`embed_fields`).

Nested widths (Matryoshka, `AutoIntConfig.nested_widths`): `layer(features, width=m)` reads only
the first m columns of every row of the layout's hashed tables (the rest as zeros), so one
trained table also serves at width m. An export serving such a table builds the layer from a
spec whose `table.served_width`/`served_dtype` are set (`layers.served_table`) and copies the
trained weights into it (`copy_from`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import tensorflow as tf
import tf_keras as keras

from unified_embedding.contract.kinds import KINDS, kind_of
from unified_embedding.contract.spec import FeatureSpec, FieldSpec
from unified_embedding.layers.served_table import ServedTable, mask_columns

Table: TypeAlias = "tf.Variable | ServedTable"


def gather(table: Table, ids: tf.Tensor) -> tf.Tensor:
    """`table[ids]` for ids of any shape -> `ids.shape + (width,)`. Gathers 1-D ids, which a
    table sharded across parameter servers (`ShardedVariable`) requires."""
    flat = tf.reshape(ids, [-1])
    rows = table.gather(flat) if isinstance(table, ServedTable) else tf.gather(table, flat)
    out = tf.reshape(rows, tf.concat([tf.shape(ids), tf.shape(rows)[1:]], 0))
    out.set_shape(ids.shape.concatenate(rows.shape[1:]))
    return out


def _short_name(variable: tf.Variable) -> str:
    """`auto_int/unified_embedding/shared_table_0:0` -> `shared_table_0`."""
    return str(variable.name).rsplit("/", 1)[-1].split(":")[0]


class FieldEmbedding(keras.layers.Layer):
    """Base class; subclasses implement `build_tables` and `embed_fields`."""

    def __init__(self, spec: FeatureSpec | Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec if isinstance(spec, FeatureSpec) else FeatureSpec.from_dict(spec)

    @property
    def output_dim(self) -> int:
        return self.spec.embedding_dim

    @property
    def table_width(self) -> int:
        """The columns of a row of the layout's hashed tables: what nested widths divide."""
        raise NotImplementedError

    def build(self, input_shape: Any = None) -> None:
        self.served_tables: list[ServedTable] = []
        count = len(self.spec.numeric_fields)
        if count:
            shape = (count, self.output_dim)
            self.numeric_vectors = self.add_weight(
                "numeric_vectors", shape, initializer="glorot_uniform"
            )
            self.numeric_missing = self.add_weight("numeric_missing", shape, initializer="zeros")
        self.build_tables()
        super().build(input_shape)

    def build_tables(self) -> None:
        raise NotImplementedError

    def add_table(self, name: str, rows: int, width: int) -> Table:
        """A hashed table of the layout: trainable, or as the spec's table is served."""
        table = self.spec.table
        if table.is_served_whole:
            return self.add_weight(name, (rows, width), initializer=self.table_initializer())
        served = ServedTable(
            self, name, rows, width, table.served_width or width, table.served_dtype
        )
        self.served_tables.append(served)
        return served

    def copy_from(self, trained: FieldEmbedding) -> None:
        """Every weight from `trained`, a built layer of the same config except the served
        table: the served tables keep the first columns of its tables (quantized if int8)."""
        weights = {_short_name(v): v for v in trained.weights}
        served = {id(v) for t in self.served_tables for v in t.variables}
        for table in self.served_tables:
            table.assign(weights[table.name].numpy())
        for variable in self.weights:
            if id(variable) not in served:
                variable.assign(weights[_short_name(variable)])

    def table_initializer(self) -> keras.initializers.Initializer:
        """A fresh `embeddings_initializer`: one unseeded instance reused gives identical tables."""
        initializer = self.embeddings_initializer
        return type(initializer).from_config(initializer.get_config())

    def embed_fields(
        self, fields: Sequence[FieldSpec], ids: Sequence[tf.Tensor], width: int | None = None
    ) -> list[tf.Tensor]:
        """Fingerprints (n, probes) of each field -> its vectors (n, embedding_dim), reading
        the first `width` columns of the hashed tables (None: all)."""
        raise NotImplementedError

    def call(
        self, features: Mapping[str, tf.Tensor | tf.RaggedTensor], width: int | None = None
    ) -> tf.Tensor:
        out: dict[str, tf.Tensor] = {}
        for kind in KINDS.values():  # each kind embeds all its fields at once
            fields = [f for f in self.spec.fields if kind_of(f) is kind]
            if fields:
                vectors = kind.embed(self, fields, [features[f.name] for f in fields], width)
                out.update(zip([f.name for f in fields], vectors, strict=True))
        return tf.stack([out[name] for name in self.spec.field_names], axis=1)

    def embed_numeric(self, values: tf.Tensor) -> tf.Tensor:
        """Numeric values (batch, numeric fields) -> (batch, numeric fields, dim)."""
        missing = tf.math.is_nan(values)
        present = tf.where(missing, tf.zeros_like(values), values)
        return present[..., None] * tf.cast(self.numeric_vectors, self.compute_dtype) + tf.cast(
            missing, self.compute_dtype
        )[..., None] * tf.cast(self.numeric_missing, self.compute_dtype)

    def embed_pooled(
        self, field: FieldSpec, ids: tf.RaggedTensor, width: int | None = None
    ) -> tf.Tensor:
        """Fingerprints (batch, (values), probes) of a field -> the mean of its values'
        vectors (batch, dim)."""
        if not isinstance(ids, tf.RaggedTensor):  # (batch, values, probes) padded densely
            ids = tf.RaggedTensor.from_tensor(ids, ragged_rank=1)
        rows = self.embed_fields([field], [ids.flat_values], width)[0]  # (all values, dim)
        per_row = tf.RaggedTensor.from_row_splits(rows, ids.row_splits)
        total = tf.reduce_sum(per_row, axis=1)
        count = tf.cast(per_row.row_lengths(), total.dtype)[:, None]
        return tf.math.divide_no_nan(total, count)  # an empty list embeds as zeros

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "spec": self.spec.to_dict()}


class PerFieldTables(FieldEmbedding):
    """Base of layouts with one `rows_f x d` table per categorical field (stored as one variable
    with per-field offsets, so all fields share one gather). Subclasses give `table_rows` and
    `local_rows`, and set `embeddings_initializer`."""

    embeddings_initializer: keras.initializers.Initializer

    @property
    def table_width(self) -> int:
        return self.output_dim

    def table_rows(self) -> dict[str, int]:
        raise NotImplementedError

    def local_rows(self, field: FieldSpec, fingerprints: tf.Tensor) -> tf.Tensor:
        """Probe-0 fingerprints (n,) of `field` -> rows of its own table."""
        raise NotImplementedError

    def build_tables(self) -> None:
        self.offsets: dict[str, int] = {}
        total = 0
        for name, rows in self.table_rows().items():
            self.offsets[name] = total
            total += rows
        self.table = self.add_table("tables", total, self.output_dim)

    def embed_fields(
        self, fields: Sequence[FieldSpec], ids: Sequence[tf.Tensor], width: int | None = None
    ) -> list[tf.Tensor]:
        rows = tf.stack(
            [
                self.offsets[f.name] + self.local_rows(f, i[:, 0])
                for f, i in zip(fields, ids, strict=True)
            ],
            axis=1,
        )
        vectors = mask_columns(gather(self.table, rows), width)  # (n, fields, dim)
        vectors = tf.cast(vectors, self.compute_dtype)
        return tf.unstack(vectors, num=len(fields), axis=1)
