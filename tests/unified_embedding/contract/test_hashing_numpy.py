"""`hashing.fingerprint_packed` (NumPy SipHash-2-4, what the pipeline's workers run) against the
reference, TensorFlow's `fingerprint` (the op every model runs in-graph): equal bit for bit on
random bytes, unicode, empty, long strings and many keys."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from unified_embedding.contract.hashing import MISSING, fingerprint, fingerprint_packed


def packed(values: list[bytes]) -> tuple[bytes, np.ndarray, np.ndarray]:
    lengths = np.array([len(v) for v in values], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return b"".join(values), starts, lengths


def reference(values: list[bytes], field: str, probes: int) -> np.ndarray:
    return fingerprint(tf.constant(values, tf.string), field, probes).numpy()


def test_every_length_up_to_300_bytes_and_random_lengths() -> None:
    rng = np.random.default_rng(0)
    lengths = [*range(301), *rng.integers(0, 2000, 300).tolist()]
    values = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths]
    (ids,) = fingerprint_packed(*packed(values), [len(values)], [("C1", 3)])
    np.testing.assert_array_equal(ids, reference(values, "C1", 3))


def test_unicode_empty_missing_and_nul_bytes() -> None:
    values = [s.encode() for s in ["", "é", "日本語テキスト", "a\x00b", MISSING, "68fd1e64", " "]]
    (ids,) = fingerprint_packed(*packed(values), [len(values)], [("site_id", 2)])
    expected = reference(values, "site_id", 2)
    np.testing.assert_array_equal(ids, expected)
    assert ids[0].tolist() == ids[4].tolist()  # empty = missing, under this field's key


def test_several_fields_in_one_call_each_under_its_own_keys() -> None:
    rng = np.random.default_rng(1)
    fields = [("C1", 2), ("genres", 1), ("C26", 4), ("empty", 3)]
    groups = [
        [rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 40, k)]
        for k in (50, 7, 30, 0)
    ]
    flat = [v for group in groups for v in group]
    got = fingerprint_packed(*packed(flat), [len(g) for g in groups], fields)
    for (field, probes), group, ids in zip(fields, groups, got, strict=True):
        assert ids.shape == (len(group), probes)
        if group:
            np.testing.assert_array_equal(ids, reference(group, field, probes))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.binary(max_size=150), st.text(max_size=60).map(str.encode)), max_size=40),
    st.text(min_size=1, max_size=20),
    st.integers(1, 4),
)
def test_random_values_and_field_names(values: list[bytes], field: str, probes: int) -> None:
    (ids,) = fingerprint_packed(*packed(values), [len(values)], [(field, probes)])
    assert ids.shape == (len(values), probes) and ids.dtype == np.int64
    if values:
        np.testing.assert_array_equal(ids, reference(values, field, probes))


@pytest.mark.parametrize("count", [1, 4097])
def test_offsets_into_a_shared_buffer(count: int) -> None:
    # strings need not be contiguous: any (start, length) into the data
    data = bytes(range(256)) * 20
    rng = np.random.default_rng(count)
    starts = rng.integers(0, 4000, count).astype(np.int64)
    lengths = rng.integers(0, 1000, count).astype(np.int64)
    (ids,) = fingerprint_packed(data, starts, lengths, [count], [("f0", 1)])
    values = [data[s : s + n] for s, n in zip(starts.tolist(), lengths.tolist(), strict=True)]
    np.testing.assert_array_equal(ids, reference(values, "f0", 1))
