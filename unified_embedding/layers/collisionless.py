"""Baseline: collision-free vocabulary tables, one row per known value of each field.

The upper bound on quality for a given vocabulary and the most parameters: every value seen in
training (plus the missing value) owns a row; unseen values share one out-of-vocabulary row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from unified_embedding.contract.spec import FieldSpec
from unified_embedding.contract.vocabulary import lookup, sorted_unique, vocabulary_fingerprints
from unified_embedding.layers.field_embedding import PerFieldTables


@keras.utils.register_keras_serializable(package="unified_embedding")
class CollisionlessEmbedding(PerFieldTables):
    """A vocabulary table per categorical field; same input/output contract as `UnifiedEmbedding`.

    Args:
        spec: the feature contract; only probe 0 of each field's fingerprints is used.
        vocabularies: the raw values of each categorical field (e.g. every value seen in the
            training split). A field left out uses its spec `vocabulary`.
        fingerprints: instead of raw values, the probe-0 fingerprints of a field's values
            (what the pipeline's records hold: `data.distinct_fingerprints`).
        embeddings_initializer: initializer of the tables.
    """

    def __init__(
        self,
        spec: Any,
        vocabularies: Mapping[str, Sequence[str]] | None = None,
        fingerprints: Mapping[str, Sequence[int] | np.ndarray] | None = None,
        embeddings_initializer: str | keras.initializers.Initializer = "uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(spec, **kwargs)
        vocabularies = dict(vocabularies or {})
        fingerprints = dict(fingerprints or {})
        for f in self.spec.categorical_fields:
            if f.name not in vocabularies and f.name not in fingerprints and f.vocabulary:
                vocabularies[f.name] = f.vocabulary
        known = vocabularies.keys() | fingerprints.keys()
        missing = [f.name for f in self.spec.categorical_fields if f.name not in known]
        if missing:
            raise ValueError(
                "`vocabularies` or `fingerprints` should cover every categorical field. "
                f"Received none for {missing}"
            )
        self.vocabularies = {name: list(values) for name, values in vocabularies.items()}
        self.fingerprints = {name: [int(v) for v in fps] for name, fps in fingerprints.items()}
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def _sorted_fingerprints(self, field: str) -> np.ndarray:
        if field in self.fingerprints:
            missing = vocabulary_fingerprints(field, [])  # the missing value always has a row
            return sorted_unique(np.append(np.asarray(self.fingerprints[field], np.int64), missing))
        return vocabulary_fingerprints(field, self.vocabularies[field])

    def table_rows(self) -> dict[str, int]:
        self.sorted_fingerprints = {
            f.name: tf.constant(self._sorted_fingerprints(f.name))
            for f in self.spec.categorical_fields
        }
        return {name: int(fps.shape[0]) + 1 for name, fps in self.sorted_fingerprints.items()}

    def local_rows(self, field: FieldSpec, fingerprints: tf.Tensor) -> tf.Tensor:
        return lookup(self.sorted_fingerprints[field.name], fingerprints)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocabularies": self.vocabularies,
            "fingerprints": self.fingerprints,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }
