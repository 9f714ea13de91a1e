"""An embedding table as an export serves it: the first `width` of its `full_width` columns, as
float32 or row-wise int8 (`TableSpec.served_width`, `served_dtype`).

    int8 row r:  q_r = round((x_r - offset_r) / scale_r) - 128
    read back:   x_r ~ (q_r + 128) * scale_r + offset_r

with a float16 scale and offset per row (TorchRec's row-wise int8 layout): `c + 4` bytes a row
instead of `4c`. Lookups dequantize in the graph and pad the row with zeros to `full_width`,
so the layers after the table see the shapes they were trained with, and a narrow table reads
exactly as the full one with its last columns masked (`mask_columns`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

LEVELS = 255  # int8 steps between a row's smallest and largest value
_FLOAT16 = np.float16


def column_mask(width: int, full_width: int, dtype: tf.DType) -> tf.Tensor:
    """(full_width,) ones on the first `width` columns, zeros after."""
    return tf.constant([1.0] * width + [0.0] * (full_width - width), dtype=dtype)


def mask_columns(rows: tf.Tensor, width: int | None) -> tf.Tensor:
    """`rows` (..., full width) with the columns from `width` on zeroed (None: unchanged)."""
    full_width = int(rows.shape[-1])
    if width is None or width == full_width:
        return rows
    return rows * column_mask(width, full_width, rows.dtype)


def _round_down(values: np.ndarray) -> np.ndarray:
    """The largest float16 at or below each float32 value."""
    rounded = values.astype(_FLOAT16)
    above = rounded.astype(np.float32) > values
    return np.where(above, np.nextafter(rounded, _FLOAT16(-np.inf)), rounded)


def _round_up(values: np.ndarray) -> np.ndarray:
    """The smallest float16 at or above each float32 value."""
    rounded = values.astype(_FLOAT16)
    below = rounded.astype(np.float32) < values
    return np.where(below, np.nextafter(rounded, _FLOAT16(np.inf)), rounded)


def quantize_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 rows (n, c) -> int8 values (n, c) and float16 (n, 2) [scale, offset] per row.

    The offset is the row's minimum rounded down to float16 and the scale its range over 255
    rounded up, so every value lies on the row's grid: the error of `dequantize_rows` is at
    most half a scale (`max_error`)."""
    values = np.asarray(values, np.float32)
    largest = float(np.abs(values).max(initial=0.0))
    if not largest <= float(np.finfo(_FLOAT16).max):  # NaN fails too
        raise ValueError(
            f"a table row holds a value float16's scale and offset cannot store (beyond "
            f"+-65504, or NaN). Received: largest magnitude {largest}"
        )
    offset = _round_down(values.min(axis=1))
    spread = values.max(axis=1) - offset.astype(np.float32)
    scale = _round_up(np.maximum(spread / LEVELS, np.finfo(_FLOAT16).smallest_subnormal))
    grid = (values - offset.astype(np.float32)[:, None]) / scale.astype(np.float32)[:, None]
    steps = np.rint(grid)
    quantized = (np.clip(steps, 0, LEVELS) - 128).astype(np.int8)
    return quantized, np.stack([scale, offset], axis=1)


def dequantize_rows(quantized: np.ndarray, scale_offset: np.ndarray) -> np.ndarray:
    """The float32 rows `quantize_rows` stored, as the graph reads them."""
    scale, offset = (scale_offset[:, i].astype(np.float32)[:, None] for i in (0, 1))
    return (quantized.astype(np.float32) + 128.0) * scale + offset


def max_error(scale_offset: np.ndarray) -> np.ndarray:
    """The largest round-trip error of each row: half its scale."""
    return scale_offset[:, 0].astype(np.float32) / 2


class ServedTable(tf.Module):
    """The variables of one served table, created on `layer` (so they save with it).

    Args:
      layer: the embedding layer that owns the table.
      name: the trained table's variable name (`shared_table_0`, `tables`).
      rows, full_width: the trained table's shape.
      width: the columns served (<= full_width).
      dtype: `float32`, or `int8` (plus `<name>_scale_offset`, float16 (rows, 2)).
    """

    def __init__(
        self, layer: Any, name: str, rows: int, full_width: int, width: int, dtype: str
    ) -> None:
        if not 1 <= width <= full_width:
            raise ValueError(
                f"`served_width` should be in [1, {full_width}] (the table's width). "
                f"Received: `served_width={width}` for `{name}`"
            )
        super().__init__(name=name)
        self.full_width, self.width, self.dtype = full_width, width, dtype
        self.values = layer.add_weight(
            name, (rows, width), dtype=dtype, initializer="zeros", trainable=False
        )
        self.scale_offset = None
        if dtype == "int8":
            self.scale_offset = layer.add_weight(
                f"{name}_scale_offset",
                (rows, 2),
                dtype="float16",
                initializer="zeros",
                trainable=False,
            )

    def assign(self, trained: np.ndarray) -> None:
        """Stores the first `width` columns of the trained table's values (rows, full_width)."""
        kept = np.asarray(trained, np.float32)[:, : self.width]
        if self.scale_offset is None:
            self.values.assign(kept)
            return
        quantized, scale_offset = quantize_rows(kept)
        self.values.assign(quantized)
        self.scale_offset.assign(scale_offset)

    def read(self) -> np.ndarray:
        """The served rows (rows, width) as the graph reads them."""
        values = self.values.numpy()
        if self.scale_offset is None:
            return values
        return dequantize_rows(values, self.scale_offset.numpy())

    def gather(self, ids: tf.Tensor) -> tf.Tensor:
        """Rows `ids` (1-D) -> float32 (n, full_width): dequantized, zero-padded."""
        rows = tf.gather(self.values, ids)
        if self.scale_offset is not None:
            scale_offset = tf.cast(tf.gather(self.scale_offset, ids), tf.float32)
            rows = (tf.cast(rows, tf.float32) + 128.0) * scale_offset[:, :1] + scale_offset[:, 1:]
        if self.width < self.full_width:
            rows = tf.pad(rows, [[0, 0], [0, self.full_width - self.width]])
        return rows

    @property
    def nbytes(self) -> int:
        return sum(int(np.prod(v.shape)) * v.dtype.size for v in self.variables)
