"""Streaming Keras metrics for the train-time evaluation: the histogram AUC with its bound, and
the calibration metrics of `metrics.exact`.

All take logits and accumulate float32 sums (TPUs have no float64), so they are exact up to
rounding over any number of batches and replicas (their variables sum across replicas and
workers; a bin's count is exact up to 2^24 rows).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from unified_embedding.metrics.exact import ECE_BINS
from unified_embedding.metrics.histogram import BINS, LOGIT_RANGE


@keras.utils.register_keras_serializable(package="unified_embedding")
class Calibration(keras.metrics.Metric):
    """Mean predicted / observed CTR (`metrics.calibration`); NaN before any positive label."""

    def __init__(self, name: str = "calibration", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.predicted = self.add_weight("predicted", initializer="zeros", dtype=tf.float32)
        self.observed = self.add_weight("observed", initializer="zeros", dtype=tf.float32)

    def update_state(
        self, y_true: tf.Tensor, y_pred: tf.Tensor, sample_weight: tf.Tensor | None = None
    ) -> None:
        del sample_weight  # the task passes None; weighted CTRs are not reported
        probabilities = tf.sigmoid(tf.cast(y_pred, tf.float32))
        self.predicted.assign_add(tf.reduce_sum(probabilities))
        self.observed.assign_add(tf.reduce_sum(tf.cast(y_true, tf.float32)))

    def result(self) -> tf.Tensor:
        nan = tf.constant(float("nan"), tf.float32)
        return tf.where(self.observed > 0, self.predicted / self.observed, nan)


@keras.utils.register_keras_serializable(package="unified_embedding")
class ExpectedCalibrationError(keras.metrics.Metric):
    """ECE over `bins` equal-mass bins (`metrics.expected_calibration_error`), streamed.

    Rows are counted into `resolution` equal-width bins of the logit over [-limit, limit] (a
    fine histogram: ~0.8% steps of the odds by default); `result` cuts the fine bins, in order,
    into `bins` groups of equal row counts, sharing a fine bin that straddles two groups in
    proportion. It matches the exact NumPy ECE up to that resolution.

    Args:
      bins: equal-mass bins of the reported ECE.
      resolution: fine logit bins.
      limit: logits beyond +-limit share the outermost fine bins.
    """

    def __init__(
        self,
        bins: int = ECE_BINS,
        resolution: int = 4096,
        limit: float = 16.0,
        name: str = "ece",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        for arg, value in (("bins", bins), ("resolution", resolution)):
            if value < 1:
                raise ValueError(f"`{arg}` should be >= 1. Received: `{arg}={value}`")
        if not limit > 0:
            raise ValueError(f"`limit` should be > 0. Received: `limit={limit}`")
        self.bins = bins
        self.resolution = resolution
        self.limit = limit
        shape = (resolution,)
        self.rows = self.add_weight("rows", shape, initializer="zeros", dtype=tf.float32)
        self.predicted = self.add_weight("predicted", shape, initializer="zeros", dtype=tf.float32)
        self.observed = self.add_weight("observed", shape, initializer="zeros", dtype=tf.float32)

    def update_state(
        self, y_true: tf.Tensor, y_pred: tf.Tensor, sample_weight: tf.Tensor | None = None
    ) -> None:
        del sample_weight
        logits = tf.reshape(tf.cast(y_pred, tf.float32), [-1])
        labels = tf.reshape(tf.cast(y_true, tf.float32), [-1])
        scaled = (logits + self.limit) / (2 * self.limit) * self.resolution
        index = tf.clip_by_value(tf.cast(tf.floor(scaled), tf.int32), 0, self.resolution - 1)
        for total, values in (
            (self.rows, tf.ones_like(labels)),
            (self.predicted, tf.sigmoid(logits)),
            (self.observed, labels),
        ):
            total.assign_add(tf.math.unsorted_segment_sum(values, index, self.resolution))

    def result(self) -> tf.Tensor:
        rows = tf.reduce_sum(self.rows)
        # Fine bin i covers positions [start_i, end_i) of the sorted rows, group g positions
        # [g n / bins, (g + 1) n / bins); a fine bin on a boundary is shared in proportion.
        end = tf.cumsum(self.rows)[:, None]
        start = end - self.rows[:, None]
        edges = tf.linspace(tf.constant(0.0, tf.float32), rows, self.bins + 1)[None, :]
        overlap = tf.nn.relu(tf.minimum(end, edges[:, 1:]) - tf.maximum(start, edges[:, :-1]))
        share = tf.math.divide_no_nan(overlap, self.rows[:, None])  # (resolution, bins)
        gaps = tf.linalg.matvec(share, self.predicted - self.observed, transpose_a=True)
        return tf.math.divide_no_nan(tf.reduce_sum(tf.abs(gaps)), rows)

    def reset_state(self) -> None:
        for total in (self.rows, self.predicted, self.observed):
            total.assign(tf.zeros_like(total))

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(bins=self.bins, resolution=self.resolution, limit=self.limit)
        return config


@keras.utils.register_keras_serializable(package="unified_embedding")
class HistogramAUC(keras.metrics.Metric):
    """ROC AUC from per-label counts in the logit bins of `metrics.histogram`.

    A pair of rows in one bin counts as a tie; `histograms()` gives the counts, from which
    `histogram.histogram_auc` gives the AUC with its bound (the largest possible |AUC - exact
    AUC|; `training.callbacks.refine_auc` logs it as `auc_bound`). Where the bound is too
    large (scores bunched within a few bins), `set_window` narrows the counted rows to a run
    of bins (`histogram.refinement_window`), which the next pass splits `BINS` times finer;
    `histogram.refined_auc` combines the two passes. The state sums, so it is right under
    any `tf.distribute` strategy.
    """

    def __init__(self, name: str = "auc", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.positives = self.add_weight("positives", (BINS,), initializer="zeros")
        self.negatives = self.add_weight("negatives", (BINS,), initializer="zeros")
        # The window (first, last bin); set between passes, so kept alike on every replica.
        self.window = self.add_weight(
            "window",
            (2,),
            initializer=keras.initializers.Constant([0.0, BINS - 1.0]),
            synchronization=tf.VariableSynchronization.ON_WRITE,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    def update_state(
        self, y_true: tf.Tensor, y_pred: tf.Tensor, sample_weight: tf.Tensor | None = None
    ) -> None:
        del sample_weight  # the task passes None
        logits = tf.clip_by_value(
            tf.reshape(tf.cast(y_pred, tf.float32), [-1]), -LOGIT_RANGE, LOGIT_RANGE
        )
        labels = tf.reshape(tf.cast(y_true, tf.float32), [-1])
        scale = BINS / (2 * LOGIT_RANGE)
        coarse = tf.minimum(tf.cast((logits + LOGIT_RANGE) * scale, tf.int32), BINS - 1)
        first, last = tf.unstack(self.window)
        inside = (coarse >= tf.cast(first, tf.int32)) & (coarse <= tf.cast(last, tf.int32))
        low = -LOGIT_RANGE + first / scale
        fine_scale = BINS / ((last + 1.0 - first) / scale)
        fine = tf.clip_by_value(tf.cast((logits - low) * fine_scale, tf.int32), 0, BINS - 1)
        counted = tf.cast(inside, tf.float32)
        for total, values in ((self.positives, labels), (self.negatives, 1.0 - labels)):
            total.assign_add(tf.math.unsorted_segment_sum(values * counted, fine, BINS))

    def result(self) -> tf.Tensor:
        # The tensor form of `histogram.histogram_auc` (NaN when a class is absent).
        pos, neg = self.positives, self.negatives
        pairs = tf.reduce_sum(pos) * tf.reduce_sum(neg)
        ordered = tf.reduce_sum(pos * (tf.cumsum(neg, exclusive=True) + neg / 2.0))
        return tf.where(pairs > 0, ordered / pairs, tf.constant(float("nan"), tf.float32))

    def set_window(self, window: tuple[int, int] | None) -> None:
        """Counts only the bins first..last of `window`, split `BINS` times finer (None: every
        bin, as built)."""
        first, last = window or (0, BINS - 1)
        if not 0 <= first <= last < BINS:
            raise ValueError(
                f"`window` should be bins 0 <= first <= last < {BINS}. Received: `window={window}`"
            )
        self.window.assign([float(first), float(last)])

    def histograms(self) -> tuple[np.ndarray, np.ndarray]:
        """(positives, negatives) per bin, summed over replicas and workers."""
        return self.positives.numpy().astype(np.float64), self.negatives.numpy().astype(np.float64)

    def reset_state(self) -> None:
        for total in (self.positives, self.negatives):  # the window stays
            total.assign(tf.zeros_like(total))

    def merge_state(self, metrics: Any) -> list[Any]:
        return [
            total.assign_add(other)
            for metric in metrics
            for total, other in (
                (self.positives, metric.positives),
                (self.negatives, metric.negatives),
            )
        ]
