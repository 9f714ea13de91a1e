"""The AUC of a nested run's kept weights at each of its widths (`--nested-widths`), on the rows
the run evaluates: what each `ue export --table-width` of it scores, before exporting."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from unified_embedding.metrics.exact import roc_auc
from unified_embedding.models.autoint import AutoInt


def nested_aucs(model: AutoInt, evaluation: tf.data.Dataset) -> dict[str, float]:
    """Exact AUC per nested width (keys: the widths as text); empty when not nested."""
    widths = model.nested_widths
    if not widths:
        return {}

    @tf.function
    def logits(features: dict[str, Any]) -> tf.Tensor:
        return tf.stack([model(features, width=w)[:, 0] for w in widths], axis=1)

    labels, scores = [], []
    for batch in evaluation:
        features = dict(batch)
        labels.append(np.reshape(features.pop(model.label_key).numpy(), [-1]))
        scores.append(logits(features).numpy())
    y, s = np.concatenate(labels), np.concatenate(scores)
    return {str(w): roc_auc(y, s[:, i]) for i, w in enumerate(widths)}
