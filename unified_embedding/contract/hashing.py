"""The one hashing function, in two steps, as TensorFlow ops.

1. `fingerprint(values, field, probes)`: raw string values -> a stable non-negative int64
   fingerprint per (value, probe), keyed SipHash-2-4 whose 128-bit key is derived from the field
   name and probe index (never from a field's position).
2. `bucketize(fingerprints, rows)`: fingerprints -> rows of a table of any size.

The Beam pipeline runs step 1 eagerly on batches and writes fingerprints, so one preprocessing run
serves every table size; the model runs step 2; an exported SavedModel runs both in-graph. Python's
`hash()` is salted per process and is never used.
"""

from __future__ import annotations

import functools
import hashlib

import tensorflow as tf

# Fingerprints are SipHash values reduced into [0, 2^63 - 1): 63 bits, non-negative int64.
FINGERPRINT_BUCKETS = 2**63 - 1
# The value a missing entry takes before hashing. It cannot occur in text input (NUL byte), and
# each field's own key makes "missing" a distinct value per field.
MISSING = "\x00missing"
_SALT_NAMESPACE = "unified-embedding/v1"


@functools.cache
def probe_key(field: str, probe: int) -> tuple[int, int]:
    """The 128-bit SipHash key of (field, probe), from the field's name; stable everywhere."""
    digest = hashlib.blake2b(f"{_SALT_NAMESPACE}/{field}/{probe}".encode(), digest_size=16).digest()
    mask = 2**63 - 1  # the op's key attribute is int64
    return (
        int.from_bytes(digest[:8], "little") & mask,
        int.from_bytes(digest[8:], "little") & mask,
    )


def fingerprint(values: tf.Tensor | tf.RaggedTensor, field: str, probes: int) -> tf.Tensor:
    """Fingerprints of string `values` (any shape, ragged too) for `probes` probes of `field`.

    Returns int64 of shape `values.shape + [probes]`, each entry in [0, 2^63 - 1).
    """
    if isinstance(values, tf.RaggedTensor):
        return tf.ragged.map_flat_values(lambda v: fingerprint(v, field, probes), values)
    values = tf.convert_to_tensor(values, dtype=tf.string)
    # Hash as they are, then put the missing value's fingerprint where a value is empty: the
    # same result as hashing MISSING there, without copying every string through tf.where.
    empty = tf.equal(tf.strings.length(values), 0)
    return tf.stack(
        [
            tf.where(empty, _missing_fingerprint(field, j), _hash(values, field, j))
            for j in range(probes)
        ],
        axis=-1,
    )


def _hash(values: tf.Tensor, field: str, probe: int) -> tf.Tensor:
    return tf.strings.to_hash_bucket_strong(
        values, FINGERPRINT_BUCKETS, key=list(probe_key(field, probe))
    )


@functools.cache
def _missing_fingerprint(field: str, probe: int) -> int:
    with tf.init_scope():  # a Python int even when first asked inside a tf.function
        return int(_hash(tf.constant([MISSING]), field, probe).numpy()[0])


def bucketize(fingerprints: tf.Tensor, rows: int) -> tf.Tensor:
    """Rows in [0, rows) of a table for fingerprints (any shape)."""
    return tf.math.floormod(fingerprints, tf.constant(rows, dtype=tf.int64))
