"""`farmhash.fingerprint64` (NumPy, what the random split runs) against TensorFlow's
`to_hash_bucket_fast`, the reference: equal on every length class and on random strings."""

import numpy as np
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.farmhash import fingerprint64

ALL_BITS = 2**63 - 1  # the op reduces modulo the bucket count: this keeps 63 bits


def packed(values: list[bytes]) -> tuple[bytes, np.ndarray, np.ndarray]:
    lengths = np.array([len(v) for v in values], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return b"".join(values), starts, lengths


def check(values: list[bytes], buckets: int = ALL_BITS) -> None:
    got = fingerprint64(*packed(values)) % np.uint64(buckets)
    expected = tf.strings.to_hash_bucket_fast(tf.constant(values, tf.string), buckets).numpy()
    np.testing.assert_array_equal(got.astype(np.int64), expected)


def test_every_length_up_to_400_bytes() -> None:
    rng = np.random.default_rng(0)
    values = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in range(401)]
    check(values)
    check(values, 1_000_000)  # the split's buckets


def test_long_rows_unicode_and_repeats() -> None:
    rng = np.random.default_rng(1)
    values = [
        rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 3000, 200)
    ]
    values += ["1\t2\t\tdéjà vu\t日本".encode(), b"a" * 64, b"a" * 65, b"a" * 128, b"a" * 129, b""]
    check(values)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=100).map(str.encode)), min_size=1)
)
def test_random_strings(values: list[bytes]) -> None:
    check(values)
