"""Streaming Keras counterparts of `metrics.py`'s calibration metrics, for the train-time eval.

Both take logits (as the ranking task's AUC does) and accumulate float32 sums (TPUs have no
float64), so they are exact up to rounding over any number of batches and replicas (their
variables sum across replicas).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras

from unified_embedding.metrics.exact import ECE_BINS


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
