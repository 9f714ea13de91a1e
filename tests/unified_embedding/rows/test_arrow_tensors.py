"""Arrow string columns packed into one byte string and cut back out by `tf.strings.substr`:
every value comes back, whatever the column's layout (slices, chunks, nulls, other types).

    columns  ["ab", ""]   ["é", None, "xyz"]
    data     b"ab" + b"\\xc3\\xa9" + b"xyz"
    starts   [0, 2,        2, 4, 4]          lengths  [2, 0, 2, 0, 3]   (bytes)
"""

import numpy as np
import pyarrow as pa
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unified_embedding.rows.arrow_tensors import pack_strings, string_tensor


def python_values(column: pa.Array | pa.ChunkedArray) -> list[bytes]:
    """The oracle: each value as UTF-8 bytes, a null as b"" (Python objects, one per value)."""
    return [b"" if v is None else str(v).encode() for v in column.to_pylist()]


def unpack(data: bytes, starts: np.ndarray, lengths: np.ndarray) -> list[bytes]:
    return tf.strings.substr(tf.constant(data), starts, lengths).numpy().tolist()


def check_packing(columns: list) -> None:
    expected = [v for column in columns for v in python_values(column)]
    data, starts, lengths = pack_strings(columns)
    assert starts.dtype == lengths.dtype == np.int64
    assert starts.shape == lengths.shape == (len(expected),)
    assert data == b"".join(expected)  # nothing but the values' bytes, in column order
    np.testing.assert_array_equal(lengths, [len(v) for v in expected])
    np.testing.assert_array_equal(starts, np.cumsum([0, *map(len, expected)])[:-1])
    assert unpack(data, starts, lengths) == expected


def test_the_docstring_example() -> None:
    data, starts, lengths = pack_strings([pa.array(["ab", ""]), pa.array(["é", None, "xyz"])])
    assert data == b"ab\xc3\xa9xyz"
    assert starts.tolist() == [0, 2, 2, 4, 4] and lengths.tolist() == [2, 0, 2, 0, 3]


def test_unicode_values_are_cut_at_byte_offsets() -> None:
    check_packing([pa.array(["中文", "e\u0301", "\U0001f600!", "\x00nul", "tab\tand\nline"])])


def test_empty_strings_nulls_and_empty_columns() -> None:
    check_packing(
        [
            pa.array(["", "", ""]),
            pa.array([None, None], pa.string()),  # no data buffer content at all
            pa.array([], pa.string()),
            pa.array(["x", None, ""]),
        ]
    )


def test_no_columns_pack_to_nothing() -> None:
    data, starts, lengths = pack_strings([])
    assert data == b"" and starts.shape == lengths.shape == (0,)


def test_sliced_arrays_read_only_their_own_values() -> None:
    parent = pa.array(["zero", "one", None, "three", "four"])
    # a slice shares its parent's buffers from an offset
    check_packing([parent.slice(1, 3), parent.slice(3), parent.slice(2, 0), parent.slice(0, 1)])


def test_chunked_arrays() -> None:
    chunked = pa.chunked_array([pa.array(["a"]), pa.array([], pa.string()), pa.array(["bc", None])])
    check_packing([chunked, pa.chunked_array([], pa.string()), pa.array(["d"])])
    assert string_tensor(chunked).numpy().tolist() == [b"a", b"bc", b""]


def test_other_string_like_types_are_cast() -> None:
    check_packing(
        [
            pa.array(["x", "yy", None], pa.large_string()),
            pa.array(["a", "b", "a", None]).dictionary_encode(),  # as pc.dictionary_encode gives
            pa.array([1, 22, None]),  # numbers as their text
        ]
    )


def test_many_columns_of_many_rows() -> None:
    rng = np.random.default_rng(0)
    alphabet = np.array(list("abcxyz019é中\U0001f600|,"))
    columns = []
    for i in range(64):
        rows = int(rng.integers(0, 300))
        sizes = rng.integers(0, 12, size=rows)
        values = ["".join(rng.choice(alphabet, size=s)) for s in sizes]
        column = pa.array([None if rng.random() < 0.05 else v for v in values], pa.string())
        columns.append(column.slice(rows // 3) if i % 5 == 0 else column)
    check_packing(columns)


def test_string_tensor_is_one_column() -> None:
    tensor = string_tensor(pa.array(["é", None, "", "z"]))
    assert tensor.dtype == tf.string and tensor.shape == (4,)
    assert tensor.numpy().tolist() == ["é".encode(), b"", b"", b"z"]
    assert string_tensor(pa.array([], pa.string())).shape == (0,)


# Any text but lone surrogates (not UTF-8; pyarrow refuses them), or a null.
text = st.text(st.characters(codec="utf-8"), max_size=12)
cells = st.lists(st.one_of(st.none(), text), max_size=20)
FUZZ = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def layout(values: list[str | None], skip: int, chunks: int) -> pa.Array | pa.ChunkedArray:
    """`values` as a string array sliced past `skip` values, in `chunks` chunks (1: plain)."""
    array = pa.array(values, pa.string()).slice(min(skip, len(values)))
    if chunks == 1:
        return array
    cuts = np.array_split(np.arange(len(array)), chunks)
    return pa.chunked_array([array.slice(int(c[0]) if len(c) else 0, len(c)) for c in cuts])


@FUZZ
@given(st.lists(st.tuples(cells, st.integers(0, 5), st.integers(1, 3)), max_size=6))
def test_any_columns_round_trip(columns: list[tuple[list[str | None], int, int]]) -> None:
    check_packing([layout(*column) for column in columns])
