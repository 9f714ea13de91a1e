"""Which field pairs interact across a dataset: AutoInt's attention weights averaged over rows,
layers and heads (each row's own strongest pairs are `exported.model.top_pairs`).

The exported `attention` signature returns `(batch, layers, heads, fields, fields)` weights,
`a[..., i, j]` = how much field `i` attends to field `j` (each row of a head sums to 1). The
pair strength of `{i, j}` is the mean of `a[i, j]` and `a[j, i]`: attention in either direction
means the model mixes the two fields' embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from unified_embedding.evaluation.scoring import Model, as_model
from unified_embedding.rows.reader import RawRows


def model_attention(
    model: Model, rows: RawRows, max_rows: int = 2048, batch_size: int = 512
) -> np.ndarray:
    """`(rows, layers, heads, fields, fields)` attention of the first `max_rows` rows, from an
    exported model (loaded, or the path of a base or a version)."""
    sample = rows.take(np.arange(min(max_rows, len(rows))))
    return as_model(model).attention_rows(sample, batch_size)


def mean_attention(attention: npt.ArrayLike, layers: Sequence[int] | None = None) -> np.ndarray:
    """`(fields, fields)` mean over rows, the chosen `layers` (default all) and heads."""
    a = np.asarray(attention, dtype=np.float64)
    if a.ndim != 5 or a.shape[-1] != a.shape[-2]:
        raise ValueError(
            f"`attention` should be (batch, layers, heads, fields, fields). Received: {a.shape}"
        )
    if layers is not None:
        a = a[:, list(layers)]
    return a.mean(axis=(0, 1, 2))


def top_pairs(matrix: npt.ArrayLike, field_names: Sequence[str], k: int = 10) -> pd.DataFrame:
    """The `k` strongest field pairs `{i, j}`, i != j, by (m[i, j] + m[j, i]) / 2.

    Columns: `field_a`, `field_b` (in field order), `strength`, `a_to_b`, `b_to_a`; strongest
    first. A uniform head gives every pair 1 / fields.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (len(field_names), len(field_names)):
        raise ValueError(
            f"`matrix` should be (fields, fields) for {len(field_names)} field names. "
            f"Received: {m.shape}"
        )
    i, j = np.triu_indices(len(field_names), k=1)
    strength = (m[i, j] + m[j, i]) / 2.0
    order = np.argsort(-strength, kind="stable")[:k]
    return pd.DataFrame(
        {
            "field_a": [field_names[a] for a in i[order]],
            "field_b": [field_names[b] for b in j[order]],
            "strength": strength[order],
            "a_to_b": m[i[order], j[order]],
            "b_to_a": m[j[order], i[order]],
        }
    )
