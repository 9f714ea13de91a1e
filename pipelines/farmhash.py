"""FarmHash Fingerprint64 (`farmhashna::Hash64`, what `tf.strings.to_hash_bucket_fast` buckets)
in NumPy, vectorised across strings, bit for bit the op's value (a property test holds it to
the op): the random split hashes each row's text without TensorFlow in the workers.

    fingerprint64(data, starts, lengths)   # uint64 per string data[start:start + length]

Strings of 0-16, 17-32, 33-64 and longer bytes take FarmHash's four paths, each over all its
strings at once; the longest path runs its 64-byte loop once per chunk over the strings that
still have that chunk.
"""

from __future__ import annotations

import numpy as np

from unified_embedding.contract.hashing import unaligned_words

U = np.uint64
K0, K1, K2 = U(0xC3A5C85C97CB3127), U(0xB492B66FBE98F273), U(0x9AE16A3B2F90404F)
Pair = tuple[np.ndarray, np.ndarray]


def fingerprint64(data: bytes, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """FarmHash Fingerprint64 (uint64) of each string `data[starts[i]:starts[i] + lengths[i]]`."""
    words = unaligned_words(data)
    starts, lengths = np.asarray(starts, np.int64), np.asarray(lengths, np.int64)
    out = np.empty(len(starts), U)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as in C
        for low, high, path in (
            (0, 16, _len_0_to_16),
            (17, 32, _len_17_to_32),
            (33, 64, _len_33_to_64),
            (65, None, _long),
        ):
            pick = np.flatnonzero((lengths >= low) & (lengths <= (high or lengths.max(initial=0))))
            if len(pick):
                out[pick] = path(data, words, starts[pick], lengths[pick])
    return out


def _rotate(x: np.ndarray, bits: int) -> np.ndarray:
    return (x >> U(bits)) | (x << U(64 - bits))


def _shift_mix(x: np.ndarray) -> np.ndarray:
    return x ^ (x >> U(47))


def _hash_len16(u: np.ndarray, v: np.ndarray, mul: np.ndarray) -> np.ndarray:
    a = _shift_mix((u ^ v) * mul)
    return _shift_mix((v ^ a) * mul) * mul


def _len_0_to_16(data: bytes, words: np.ndarray, s: np.ndarray, n: np.ndarray) -> np.ndarray:
    out = np.full(len(s), K2, U)
    un = n.astype(U)
    mul = K2 + un * U(2)
    eight = n >= 8
    a, b = words[s] + K2, words[s + n - 8]
    c = _rotate(b, 37) * mul + a
    d = (_rotate(a, 25) + b) * mul
    out[eight] = _hash_len16(c, d, mul)[eight]
    four = (n >= 4) & ~eight
    low32 = U(0xFFFFFFFF)
    first, last = words[s] & low32, words[np.maximum(s + n - 4, 0)] & low32
    out[four] = _hash_len16(un + (first << U(3)), last, mul)[four]
    short = (n > 0) & (n < 4)
    byte = np.frombuffer(data, np.uint8) if data else np.zeros(1, np.uint8)
    s_, n_ = s[short], n[short]
    y = byte[s_].astype(U) + (byte[s_ + (n_ >> 1)].astype(U) << U(8))
    z = n_.astype(U) + (byte[s_ + n_ - 1].astype(U) << U(2))
    out[short] = _shift_mix(y * K2 ^ z * K0) * K2
    return out


def _len_17_to_32(data: bytes, words: np.ndarray, s: np.ndarray, n: np.ndarray) -> np.ndarray:
    mul = K2 + n.astype(U) * U(2)
    a, b = words[s] * K1, words[s + 8]
    c, d = words[s + n - 8] * mul, words[s + n - 16] * K2
    return _hash_len16(_rotate(a + b, 43) + _rotate(c, 30) + d, a + _rotate(b + K2, 18) + c, mul)


def _len_33_to_64(data: bytes, words: np.ndarray, s: np.ndarray, n: np.ndarray) -> np.ndarray:
    mul = K2 + n.astype(U) * U(2)
    a, b = words[s] * K2, words[s + 8]
    c, d = words[s + n - 8] * mul, words[s + n - 16] * K2
    y = _rotate(a + b, 43) + _rotate(c, 30) + d
    z = _hash_len16(y, a + _rotate(b + K2, 18) + c, mul)
    e, f = words[s + 16] * mul, words[s + 24]
    g = (y + words[s + n - 32]) * mul
    h = (z + words[s + n - 24]) * mul
    return _hash_len16(_rotate(e + f, 43) + _rotate(g, 30) + h, e + _rotate(f + a, 18) + g, mul)


def _weak32(words: np.ndarray, at: np.ndarray, a: np.ndarray, b: np.ndarray) -> Pair:
    """WeakHashLen32WithSeeds over the 32 bytes at `at`, seeded by a and b."""
    w, x, y, z = words[at], words[at + 8], words[at + 16], words[at + 24]
    a = a + w
    b = _rotate(b + a + z, 21)
    c = a
    a = a + x + y
    return a + z, b + _rotate(a, 44) + c


def _long(data: bytes, words: np.ndarray, s: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Strings over 64 bytes: FarmHash's loop over 64-byte chunks, then the last 64 bytes.
    Sorted by length, longest first, so the strings with a chunk left are a prefix."""
    order = np.argsort(-n, kind="stable")
    s, n = s[order], n[order]
    count = len(s)
    seed = U(81)
    y = np.full(count, seed * K1 + U(113), U)
    z = np.full(count, _shift_mix(np.array([seed * K1 + U(113)], U) * K2 + U(113))[0] * K2, U)
    x = seed * K2 + words[s]
    v, w = (np.zeros(count, U), np.zeros(count, U)), (np.zeros(count, U), np.zeros(count, U))
    chunks = (n - 1) // 64
    for i, live in enumerate(np.searchsorted(-chunks, -np.arange(1, chunks[0] + 1), "right")):
        p, at = slice(0, live), s[:live] + 64 * i
        xp, yp, zp, vp, wp = x[p], y[p], z[p], (v[0][p], v[1][p]), (w[0][p], w[1][p])
        xp = _rotate(xp + yp + vp[0] + words[at + 8], 37) * K1
        yp = _rotate(yp + vp[1] + words[at + 48], 42) * K1
        xp ^= wp[1]
        yp += vp[0] + words[at + 40]
        zp = _rotate(zp + wp[0], 33) * K1
        vp = _weak32(words, at, vp[1] * K1, xp + wp[0])
        wp = _weak32(words, at + 32, zp + wp[1], yp + words[at + 16])
        x[p], y[p], z[p] = zp, yp, xp  # std::swap(z, x)
        v[0][p], v[1][p], w[0][p], w[1][p] = vp[0], vp[1], wp[0], wp[1]
    mul = K1 + ((z & U(0xFF)) << U(1))
    at = s + n - 64
    w0 = w[0] + ((n - 1) & 63).astype(U)
    v0 = v[0] + w0
    w0 = w0 + v0
    x = _rotate(x + y + v0 + words[at + 8], 37) * mul
    y = _rotate(y + v[1] + words[at + 48], 42) * mul
    x ^= w[1] * U(9)
    y += v0 * U(9) + words[at + 40]
    z = _rotate(z + w0, 33) * mul
    v = _weak32(words, at, v[1] * mul, x + w0)
    w = _weak32(words, at + 32, z + w[1], y + words[at + 16])
    x, z = z, x
    inner = _hash_len16(v[0], w[0], mul) + _shift_mix(y) * K0 + z
    out = np.empty(count, U)
    out[order] = _hash_len16(inner, _hash_len16(v[1], w[1], mul) + x, mul)
    return out
