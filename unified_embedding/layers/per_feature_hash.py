"""Baseline: the hashing trick, one table per categorical field (Weinberger et al., ICML 2009).

Field f has its own `rows_f x d` table; value x embeds as `T_f[h_{f,0}(x) mod rows_f]`. The
tables are stored as one variable with per-field offsets (one gather), which is equivalent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf
import tf_keras as keras

from unified_embedding.contract.hashing import bucketize
from unified_embedding.contract.spec import FieldSpec
from unified_embedding.layers.field_embedding import PerFieldTables


@keras.utils.register_keras_serializable(package="unified_embedding")
class PerFeatureHashEmbedding(PerFieldTables):
    """One hashed table per categorical field; same input/output contract as `UnifiedEmbedding`.

    Args:
        spec: the feature contract; only probe 0 of each field's fingerprints is used.
        rows_per_field: rows of each field's table (`budget.plan.split_rows_equally` gives the
            shared table's budget to each field alike).
        embeddings_initializer: initializer of the tables.
    """

    def __init__(
        self,
        spec: Any,
        rows_per_field: Mapping[str, int],
        embeddings_initializer: str | keras.initializers.Initializer = "uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(spec, **kwargs)
        expected = {f.name for f in self.spec.categorical_fields}
        if set(rows_per_field) != expected or any(r < 1 for r in rows_per_field.values()):
            raise ValueError(
                f"`rows_per_field` should give positive rows for each of {sorted(expected)}. "
                f"Received: `rows_per_field={dict(rows_per_field)}`"
            )
        self.rows_per_field = dict(rows_per_field)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def table_rows(self) -> dict[str, int]:
        return self.rows_per_field

    def local_rows(self, field: FieldSpec, fingerprints: tf.Tensor) -> tf.Tensor:
        return bucketize(fingerprints, self.rows_per_field[field.name])

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "rows_per_field": self.rows_per_field,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }
