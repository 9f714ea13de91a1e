"""Arrow string columns -> TensorFlow string tensors without a Python object per value.

Every column's data buffer goes into one byte string, and `tf.strings.substr` cuts each value
out of it by the columns' offsets: C++ loops only, and one op for any number of columns.

    data, starts, lengths = pack_strings([table.column("C1"), table.column("C2")])
    cells = tf.strings.substr(data, starts, lengths)   # (2, rows) tf.string
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import tensorflow as tf


def pack_strings(columns: list[pa.Array]) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Equal-length string arrays -> (all their bytes, int64 starts (columns, rows), int64
    lengths (columns, rows)); nulls read as empty strings."""
    rows = len(columns[0]) if columns else 0
    starts = np.zeros((len(columns), rows), dtype=np.int64)
    lengths = np.zeros((len(columns), rows), dtype=np.int64)
    parts, base = [], 0
    for i, values in enumerate(columns):
        values = _plain(values)
        _, offsets_buffer, data_buffer = values.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[
            values.offset : values.offset + rows + 1
        ].astype(np.int64)
        starts[i] = base + offsets[:-1] - offsets[0]
        lengths[i] = np.diff(offsets)
        if data_buffer is not None and offsets[-1] > offsets[0]:
            parts.append(data_buffer.to_pybytes()[offsets[0] : offsets[-1]])
            base += int(offsets[-1] - offsets[0])
    return b"".join(parts), starts, lengths


def string_tensor(values: pa.Array | pa.ChunkedArray) -> tf.Tensor:
    """A (rows,) tf.string tensor of one Arrow string array."""
    data, starts, lengths = pack_strings([_plain(values)])
    return tf.strings.substr(tf.constant(data), starts[0], lengths[0])


def _plain(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != pa.string():
        values = values.cast(pa.string())
    if values.null_count:
        values = values.fill_null("")
    return values
