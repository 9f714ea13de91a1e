"""Unified Embedding: every categorical field multiplexed into ONE shared table.

Coleman et al., "Unified Embedding: Battle-Tested Feature Representations for Web-Scale ML
Systems", NeurIPS 2023 (arXiv 2305.12102). Field f with k_f probes looks up rows
`h_{f,j}(x) mod B` for j < k_f of the shared `B x c` table and concatenates them:

    e_f(x) = [T[h_{f,0}(x) mod B], ..., T[h_{f,k_f-1}(x) mod B]]        # (k_f * c,)

All hashed fields share one gather. Fields with a spec vocabulary use a small collision-free table
instead; a field whose `k_f * c` differs from `embedding_dim` gets a learned projection (so k_f
may differ per field: multi-size, see `probes.py`). Fingerprints recorded with more probes than
a field uses are cut to its first k_f (probe j's salt does not depend on k_f).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tf_keras as keras

from unified_embedding.contract.hashing import bucketize
from unified_embedding.contract.spec import FieldSpec
from unified_embedding.contract.vocabulary import lookup, vocabulary_fingerprints
from unified_embedding.layers.field_embedding import FieldEmbedding, gather
from unified_embedding.layers.served_table import mask_columns


def first_probes(ids: tf.Tensor, probes: int) -> tf.Tensor:
    """The first `probes` columns of fingerprints (n, recorded probes)."""
    return ids if ids.shape[-1] == probes else ids[:, :probes]


@keras.utils.register_keras_serializable(package="unified_embedding")
class UnifiedEmbedding(FieldEmbedding):
    """One multiplexed table for all categorical fields.

    Args:
        spec: the feature contract (`FeatureSpec` or its dict); `spec.table` gives the shared
            table's rows, width and sub-tables, each field its probes.
        embeddings_initializer: initializer of the shared and vocabulary tables.

    Input: `features.encode_features(spec, raw)`. Output: (batch, fields, spec.embedding_dim).
    """

    def __init__(
        self,
        spec: Any,
        embeddings_initializer: str | keras.initializers.Initializer = "uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(spec, **kwargs)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    @property
    def table_width(self) -> int:
        return self.spec.table.width

    def build_tables(self) -> None:
        table, dim = self.spec.table, self.output_dim
        self.tables = [
            self.add_table(f"shared_table_{i}", table.rows // table.num_tables, table.width)
            for i in range(table.num_tables)
        ]
        self.vocabularies: dict[str, tf.Tensor] = {}
        self.vocabulary_tables: dict[str, tf.Variable] = {}
        self.projections: dict[str, tf.Variable] = {}
        for f in self.spec.categorical_fields:
            if f.vocabulary is not None:
                fps = vocabulary_fingerprints(f.name, f.vocabulary)
                self.vocabularies[f.name] = tf.constant(fps, dtype=tf.int64)
                self.vocabulary_tables[f.name] = self.add_weight(
                    f"vocabulary_{f.name}",
                    (len(fps) + 1, dim),
                    initializer=self.table_initializer(),
                )
            elif f.probes * table.width != dim:
                self.projections[f.name] = self.add_weight(
                    f"projection_{f.name}",
                    (f.probes * table.width, dim),
                    initializer="glorot_uniform",
                )

    def embed_fields(
        self, fields: Sequence[FieldSpec], ids: Sequence[tf.Tensor], width: int | None = None
    ) -> list[tf.Tensor]:
        out: dict[str, tf.Tensor] = {}
        hashed = [(f, i) for f, i in zip(fields, ids, strict=True) if f.is_hashed]
        if hashed:
            probes = [f.probes for f, _ in hashed]
            fps = tf.concat([first_probes(i, f.probes) for f, i in hashed], axis=1)
            rows = bucketize(fps, self.spec.table.rows)
            chunks = mask_columns(self.gather_rows(rows), width)  # (n, sum of probes, c)
            for (f, _), chunk in zip(hashed, tf.split(chunks, probes, axis=1), strict=True):
                vector = tf.reshape(chunk, [-1, f.probes * self.spec.table.width])
                if f.name in self.projections:
                    vector = tf.matmul(vector, tf.cast(self.projections[f.name], vector.dtype))
                out[f.name] = vector
        for f, i in zip(fields, ids, strict=True):
            if f.vocabulary is not None:
                rows = lookup(self.vocabularies[f.name], i[:, 0])
                out[f.name] = tf.gather(self.vocabulary_tables[f.name], rows)
        return [tf.cast(out[f.name], self.compute_dtype) for f in fields]

    def gather_rows(self, rows: tf.Tensor) -> tf.Tensor:
        """Rows of the logical `B x c` table; row r lives in sub-table r % T at r // T."""
        count = len(self.tables)
        if count == 1:
            return gather(self.tables[0], rows)
        flat = tf.reshape(rows, [-1])
        part = tf.cast(flat % count, tf.int32)
        local = tf.dynamic_partition(flat // count, part, count)
        positions = tf.dynamic_partition(tf.range(tf.size(flat)), part, count)
        gathered = [gather(t, r) for t, r in zip(self.tables, local, strict=True)]
        stitched = tf.dynamic_stitch(positions, gathered)
        return tf.reshape(stitched, tf.concat([tf.shape(rows), [self.spec.table.width]], 0))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }
