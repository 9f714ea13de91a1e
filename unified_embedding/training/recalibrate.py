"""The output bias re-fit on the training rows once training stops.

Early stopping keeps the weights of the evaluation with the best AUC, and AUC ignores the
scores' level: on small data the mean prediction of consecutive evaluations swings by 10-30%
(the shared table's large sparse steps move many logits at once), so the kept weights can be
off in calibration by that much. Shifting the output bias by the delta that makes the mean
predicted CTR over the training rows equal their label rate fixes the level without touching
the ranking (a shift of every logit keeps their order, so AUC is unchanged). Only training
rows are read: the evaluation stays honest.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from unified_embedding.models.autoint import AutoInt
from unified_embedding.rows.records import LABEL

MAX_ROWS = 1_000_000  # rows read for the fit (the first ones: one pass over small data)
_NEWTON_STEPS = 50


def bias_shift(logits: np.ndarray, label_rate: float) -> float:
    """The delta with mean(sigmoid(logits + delta)) == label_rate (Newton's method on a
    monotone function; 0 when the rate is 0 or 1, where no finite delta exists)."""
    if not 0.0 < label_rate < 1.0 or logits.size == 0:
        return 0.0
    z = logits.astype(np.float64)
    delta = 0.0
    for _ in range(_NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-(z + delta)))
        gap = float(p.mean()) - label_rate
        slope = float((p * (1.0 - p)).mean())
        if abs(gap) < 1e-9 or slope <= 0.0:
            break
        delta -= float(np.clip(gap / slope, -2.0, 2.0))  # damped: far from the root p saturates
    return delta


def refit_output_bias(model: AutoInt, rows: tf.data.Dataset, max_rows: int = MAX_ROWS) -> float:
    """Shifts the output bias (the head's last Dense) so that the mean prediction over the
    first `max_rows` of `rows` (batches with a label) equals their label rate; returns the
    shift."""
    forward = tf.function(lambda features: model(features, training=False))
    logits, labels, seen = [], [], 0
    for batch in rows:
        features = {k: v for k, v in batch.items() if k != LABEL}
        logits.append(forward(features).numpy().reshape(-1))
        labels.append(batch[LABEL].numpy().reshape(-1))
        seen += labels[-1].size
        if seen >= max_rows:
            break
    if not logits:
        return 0.0
    shift = bias_shift(np.concatenate(logits), float(np.concatenate(labels).mean()))
    model.head.layers[-1].bias.assign_add([shift])
    return shift
