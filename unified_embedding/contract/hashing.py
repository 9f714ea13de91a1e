"""The one hashing function, in two steps, as TensorFlow ops and, for step 1, in NumPy.

1. `fingerprint(values, field, probes)`: raw string values -> a stable non-negative int64
   fingerprint per (value, probe), keyed SipHash-2-4 whose 128-bit key is derived from the field
   name and probe index (never from a field's position).
2. `bucketize(fingerprints, rows)`: fingerprints -> rows of a table of any size.

`fingerprint_packed` is step 1 in NumPy, bit for bit the op's result (a property test holds it
to `tf.strings.to_hash_bucket_strong`): the Beam pipeline runs it on blocks and writes
fingerprints, so its workers never import TensorFlow and one preprocessing run serves every
table size. The model runs step 2; an exported SavedModel runs both in-graph, with the op.
Python's `hash()` is salted per process and is never used.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
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
    import tensorflow as tf

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


def fingerprint_columns(columns: tf.Tensor, fields: Sequence[tuple[str, int]]) -> list[tf.Tensor]:
    """`fingerprint` of each column of a (batch, len(fields)) string matrix, `fields[i]` =
    (field, probes) naming column i: int64 (batch, probes) per field, equal to `fingerprint`'s,
    with the empty check and the missing value's fingerprint applied once to the matrix."""
    import tensorflow as tf

    columns = tf.convert_to_tensor(columns, dtype=tf.string)
    hashes, owners, missing = [], [], []
    for i, (field, probes) in enumerate(fields):
        column = columns[:, i]
        for j in range(probes):
            hashes.append(_hash(column, field, j))
            owners.append(i)
            missing.append(_missing_fingerprint(field, j))
    empty = tf.gather(tf.equal(tf.strings.length(columns), 0), owners, axis=1)
    merged = tf.where(empty, tf.constant(missing, tf.int64), tf.stack(hashes, axis=1))
    return tf.split(merged, [probes for _, probes in fields], axis=1)


def _hash(values: tf.Tensor, field: str, probe: int) -> tf.Tensor:
    import tensorflow as tf

    return tf.strings.to_hash_bucket_strong(
        values, FINGERPRINT_BUCKETS, key=list(probe_key(field, probe))
    )


@functools.cache
def _missing_fingerprint(field: str, probe: int) -> int:
    import tensorflow as tf

    with tf.init_scope():  # a Python int even when first asked inside a tf.function
        return int(_hash(tf.constant([MISSING]), field, probe).numpy()[0])


def bucketize(fingerprints: tf.Tensor, rows: int) -> tf.Tensor:
    """Rows in [0, rows) of a table for fingerprints (any shape)."""
    import tensorflow as tf

    return tf.math.floormod(fingerprints, tf.constant(rows, dtype=tf.int64))


def fingerprint_packed(
    data: bytes,
    starts: np.ndarray,
    lengths: np.ndarray,
    sizes: Sequence[int],
    fields: Sequence[tuple[str, int]],
) -> list[np.ndarray]:
    """`fingerprint` in NumPy, for strings packed in `data` (`arrow_tensors.pack_strings`),
    `sizes[i]` strings of `fields[i]` = (field, probes) after another: for each field, int64
    (its strings, probes). An empty string takes MISSING's fingerprint, as in `fingerprint`.
    One call hashes every field's strings under every probe's key together."""
    data, starts, lengths = _missing_for_empty(data, starts, lengths)
    bounds = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
    element, k0, k1 = [], [], []  # one element per (string, probe)
    for (field, probes), begin, end in zip(fields, bounds[:-1], bounds[1:], strict=True):
        for probe in range(probes):
            key = probe_key(field, probe)
            element.append(np.arange(begin, end))
            k0.append(np.full(end - begin, key[0], np.uint64))
            k1.append(np.full(end - begin, key[1], np.uint64))
    index = np.concatenate(element) if element else np.zeros(0, np.int64)
    hashed = siphash24(
        data,
        starts[index],
        lengths[index],
        np.concatenate(k0) if k0 else np.zeros(0, np.uint64),
        np.concatenate(k1) if k1 else np.zeros(0, np.uint64),
    )
    ids = (hashed % np.uint64(FINGERPRINT_BUCKETS)).astype(np.int64)
    out, at = [], 0
    for (_, probes), size in zip(fields, sizes, strict=True):
        out.append(ids[at : at + probes * size].reshape(probes, size).T)
        at += probes * size
    return out


def _missing_for_empty(
    data: bytes, starts: np.ndarray, lengths: np.ndarray
) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Empty strings pointed at a copy of MISSING appended to `data` (hashing it, not them)."""
    empty = lengths == 0
    if not empty.any():
        return data, starts, lengths
    missing = MISSING.encode()
    starts, lengths = np.where(empty, len(data), starts), np.where(empty, len(missing), lengths)
    return data + missing, starts, lengths


def unaligned_words(data: bytes) -> np.ndarray:
    """`words[i]`: the little-endian uint64 at byte `i` of `data` (zero past its end), for
    every `i < len(data) + 8`: one overlapping view of a padded copy, no copy per word."""
    padded = np.zeros(len(data) + 16, np.uint8)
    padded[: len(data)] = np.frombuffer(data, np.uint8)
    return np.ndarray((len(data) + 8,), dtype="<u8", buffer=padded, offset=0, strides=(1,))


_SIP_INIT = tuple(
    np.uint64(c)
    for c in (0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573)
)


def siphash24(
    data: bytes, starts: np.ndarray, lengths: np.ndarray, k0: np.ndarray, k1: np.ndarray
) -> np.ndarray:
    """SipHash-2-4 (uint64) of each string `data[starts[i]:starts[i] + lengths[i]]` under the
    key (k0[i], k1[i]). Vectorised across strings: longest first, so the strings that still
    have an 8-byte word to absorb are always a prefix of the arrays."""
    order = np.argsort(-lengths, kind="stable")
    starts, lengths = starts[order], lengths[order]
    v0, v1 = k0[order] ^ _SIP_INIT[0], k1[order] ^ _SIP_INIT[1]
    v2, v3 = k0[order] ^ _SIP_INIT[2], k1[order] ^ _SIP_INIT[3]
    state, scratch = (v0, v1, v2, v3), np.empty(len(starts), np.uint64)
    words = unaligned_words(data)
    full = lengths // 8
    longest = int(full[0]) if len(full) else 0
    # strings with at least i + 1 full words: a prefix, as lengths are in decreasing order
    counts = np.searchsorted(-full, -np.arange(1, longest + 1), side="right")
    for i, count in enumerate(counts.tolist()):
        _absorb(tuple(v[:count] for v in state), words[starts[:count] + 8 * i], scratch[:count])
    tail = (lengths & 7).astype(np.uint64) * np.uint64(8)  # bits of the last partial word
    last = words[starts + 8 * full] & ((np.uint64(1) << tail) - np.uint64(1))
    _absorb(state, last | (lengths.astype(np.uint64) << np.uint64(56)), scratch)
    v2 ^= np.uint64(0xFF)
    for _ in range(4):
        _sip_round(state, scratch)
    out = np.empty(len(starts), np.uint64)
    out[order] = v0 ^ v1 ^ v2 ^ v3
    return out


def _absorb(state: tuple[np.ndarray, ...], word: np.ndarray, scratch: np.ndarray) -> None:
    state[3][...] ^= word
    _sip_round(state, scratch)
    _sip_round(state, scratch)
    state[0][...] ^= word


def _sip_round(state: tuple[np.ndarray, ...], t: np.ndarray) -> None:
    v0, v1, v2, v3 = state  # updated in place: no array allocated per step
    v0 += v1
    _rotate(v1, 13, t)
    v1 ^= v0
    _rotate(v0, 32, t)
    v2 += v3
    _rotate(v3, 16, t)
    v3 ^= v2
    v0 += v3
    _rotate(v3, 21, t)
    v3 ^= v0
    v2 += v1
    _rotate(v1, 17, t)
    v1 ^= v2
    _rotate(v2, 32, t)


def _rotate(x: np.ndarray, bits: int, t: np.ndarray) -> None:
    np.right_shift(x, np.uint64(64 - bits), out=t)
    np.left_shift(x, np.uint64(bits), out=x)
    np.bitwise_or(x, t, out=x)
