"""Baseline: collision-free vocabulary tables, one row per known value of each field.

The upper bound on quality for a given vocabulary and the most parameters: every value seen in
training (plus the missing value) owns a row; unseen values share one out-of-vocabulary row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf
import tf_keras as keras

from unified_embedding.layers.field_embedding import PerFieldTables
from unified_embedding.spec import FieldSpec
from unified_embedding.vocabulary import lookup, vocabulary_fingerprints


@keras.utils.register_keras_serializable(package="unified_embedding")
class CollisionlessEmbedding(PerFieldTables):
    """A vocabulary table per categorical field; same input/output contract as `UnifiedEmbedding`.

    Args:
        spec: the feature contract; only probe 0 of each field's fingerprints is used.
        vocabularies: the raw values of each categorical field (e.g. every value seen in the
            training split). A field left out uses its spec `vocabulary`.
        embeddings_initializer: initializer of the tables.
    """

    def __init__(
        self,
        spec: Any,
        vocabularies: Mapping[str, Sequence[str]] | None = None,
        embeddings_initializer: str | keras.initializers.Initializer = "uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(spec, **kwargs)
        vocabularies = dict(vocabularies or {})
        for f in self.spec.categorical_fields:
            if f.name not in vocabularies and f.vocabulary is not None:
                vocabularies[f.name] = f.vocabulary
        missing = [f.name for f in self.spec.categorical_fields if f.name not in vocabularies]
        if missing:
            raise ValueError(
                f"`vocabularies` should cover every categorical field. Received none for {missing}"
            )
        self.vocabularies = {name: list(values) for name, values in vocabularies.items()}
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def table_rows(self) -> dict[str, int]:
        self.sorted_fingerprints = {
            f.name: tf.constant(vocabulary_fingerprints(f.name, self.vocabularies[f.name]))
            for f in self.spec.categorical_fields
        }
        return {name: int(fps.shape[0]) + 1 for name, fps in self.sorted_fingerprints.items()}

    def local_rows(self, field: FieldSpec, fingerprints: tf.Tensor) -> tf.Tensor:
        return lookup(self.sorted_fingerprints[field.name], fingerprints)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocabularies": self.vocabularies,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }
