"""Arrow string columns -> TensorFlow string tensors without a Python object per value.

Every column's data buffer goes into one byte string, and `tf.strings.substr` cuts each value
out of it by the columns' offsets: C++ loops only, and one op for any number of columns.

    data, starts, lengths = pack_strings([table.column("C1"), table.column("C2")])
    cells = tf.strings.substr(data, starts, lengths)   # (2 * rows,) tf.string
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import tensorflow as tf


def pack_strings(columns: list[pa.Array]) -> tuple[bytes, np.ndarray, np.ndarray]:
    """String arrays (of any lengths) -> (all their bytes, int64 starts, int64 lengths), the
    columns' values one after another; nulls read as empty strings."""
    starts, lengths, parts, base = [], [], [], 0
    for values in columns:
        values = _plain(values)
        _, offsets_buffer, data_buffer = values.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[
            values.offset : values.offset + len(values) + 1
        ].astype(np.int64)
        starts.append(base + offsets[:-1] - offsets[0])
        lengths.append(np.diff(offsets))
        if data_buffer is not None and offsets[-1] > offsets[0]:
            parts.append(data_buffer.to_pybytes()[offsets[0] : offsets[-1]])
            base += int(offsets[-1] - offsets[0])
    empty = np.zeros(0, np.int64)
    return (
        b"".join(parts),
        np.concatenate(starts) if starts else empty,
        np.concatenate(lengths) if lengths else empty,
    )


def string_tensor(values: pa.Array | pa.ChunkedArray) -> tf.Tensor:
    """A (rows,) tf.string tensor of one Arrow string array."""
    import tensorflow as tf

    data, starts, lengths = pack_strings([values])
    return tf.strings.substr(tf.constant(data), starts, lengths)


def _plain(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != pa.string():
        values = values.cast(pa.string())
    if values.null_count:
        values = values.fill_null("")
    return values
