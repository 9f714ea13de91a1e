"""Collision-free lookup of fingerprints in a fixed vocabulary (sorted search, no hash-table ops).

Row 0 is the shared out-of-vocabulary row; the missing value always has a row of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from unified_embedding.hashing import MISSING, fingerprint


def vocabulary_fingerprints(field: str, values: Sequence[str]) -> np.ndarray:
    """Sorted unique probe-0 fingerprints of `values` plus the missing value."""
    fps = fingerprint(tf.constant([*values, MISSING]), field, probes=1)[:, 0]
    return np.unique(fps.numpy())


def vocabulary_rows(field: str, values: Sequence[str]) -> int:
    """Rows a collision-free table for `values` needs (OOV and missing included)."""
    return len(vocabulary_fingerprints(field, values)) + 1


def lookup(sorted_fingerprints: tf.Tensor, fingerprints: tf.Tensor) -> tf.Tensor:
    """Row ids in [0, len + 1) for int64 `fingerprints` of any shape; 0 when not in vocabulary."""
    flat = tf.reshape(fingerprints, [-1])
    position = tf.searchsorted(sorted_fingerprints, flat, side="left")
    position = tf.minimum(position, tf.size(sorted_fingerprints, out_type=position.dtype) - 1)
    found = tf.equal(tf.gather(sorted_fingerprints, position), flat)
    ids = tf.where(found, tf.cast(position, tf.int64) + 1, tf.zeros_like(flat))
    return tf.reshape(ids, tf.shape(fingerprints))
