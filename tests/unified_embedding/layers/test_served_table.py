"""Tables served narrower or quantized: the round-trip bound of int8 rows, nested reads equal to a
masked table, and served layers (every layout) reading exactly what the trained one reads at that
width and dtype."""

from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf

from tests.unified_embedding.layers.test_embeddings import (
    LAYOUTS,
    encoded,
    set_random_weights,
    tiny_spec,
)
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.exported.table_format import served_spec
from unified_embedding.layers.field_embedding import FieldEmbedding
from unified_embedding.layers.served_table import (
    dequantize_rows,
    mask_columns,
    max_error,
    quantize_rows,
)


@pytest.mark.parametrize("scale", [1e-4, 0.05, 3.0, 1e3])
def test_int8_round_trip_error_is_at_most_half_a_step_per_row(scale: float) -> None:
    rng = np.random.default_rng(0)
    rows = (rng.normal(size=(500, 16)) * scale + rng.normal(size=(500, 1)) * scale).astype(
        np.float32
    )
    rows[0] = 0.25  # a constant row
    quantized, scale_offset = quantize_rows(rows)
    assert quantized.dtype == np.int8 and scale_offset.dtype == np.float16
    error = np.abs(dequantize_rows(quantized, scale_offset) - rows).max(axis=1)
    bound = max_error(scale_offset) * (1 + 1e-3) + 1e-6 * np.abs(rows).max(axis=1)
    assert np.all(error <= bound)
    spread = rows.max(axis=1) - rows.min(axis=1)
    wide = spread > 0
    # The step is the row's range over 255, give or take float16's rounding.
    assert np.all(max_error(scale_offset)[wide] <= spread[wide] / 255 / 2 * 1.01 + 1e-7)
    assert error[0] == 0.0


@pytest.mark.parametrize("bad", [1e5, np.nan])
def test_a_row_float16_cannot_store_is_refused(bad: float) -> None:
    rows = np.zeros((3, 4), np.float32)
    rows[1, 2] = bad
    with pytest.raises(ValueError, match="beyond"):
        quantize_rows(rows)


def test_mask_columns_zeroes_the_columns_from_the_width_on() -> None:
    rows = tf.constant(np.arange(12, dtype=np.float32).reshape(2, 6) + 1)
    np.testing.assert_array_equal(
        mask_columns(rows, 2).numpy(), [[1, 2, 0, 0, 0, 0], [7, 8, 0, 0, 0, 0]]
    )
    assert mask_columns(rows, None) is rows and mask_columns(rows, 6) is rows


def built(make: Callable[[FeatureSpec], FieldEmbedding], spec: FeatureSpec) -> FieldEmbedding:
    layer = make(spec)
    layer(encoded(spec))
    return layer


def served_layer(trained: FieldEmbedding, width: int | None, dtype: str) -> FieldEmbedding:
    spec = served_spec(trained.spec, width, dtype, trained.table_width)
    served = type(trained).from_config({**trained.get_config(), "spec": spec.to_dict()})
    served(encoded(spec))
    served.copy_from(trained)
    return served


def hashed_table_names(layer: FieldEmbedding) -> list[str]:
    return [t.name for t in layer.served_tables]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("num_tables", [1, 3])
def test_a_narrow_served_table_reads_as_the_masked_trained_table(
    layout: str, num_tables: int
) -> None:
    trained = built(LAYOUTS[layout], tiny_spec(rows=9, width=4, num_tables=num_tables))
    set_random_weights(trained)
    for width in (1, 2, trained.table_width):
        served = served_layer(trained, width, "float32")
        expected = trained(encoded(trained.spec), width=width).numpy()
        np.testing.assert_array_equal(served(encoded(served.spec)).numpy(), expected)
        tables = served.served_tables  # none when served whole: the trained variables
        expected = 0 if width == trained.table_width else (num_tables if layout == "unified" else 1)
        assert [t.values.shape[1] for t in tables] == [width] * expected


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_an_int8_served_table_reads_as_the_trained_table_rounded_per_row(layout: str) -> None:
    trained = built(LAYOUTS[layout], tiny_spec(rows=9, width=4, num_tables=3))
    set_random_weights(trained)
    served = served_layer(trained, 2, "int8")
    assert served.spec.table.served_width == 2 and served.spec.table.served_dtype == "int8"
    names = hashed_table_names(served)
    assert names and all(t.values.dtype == tf.int8 for t in served.served_tables)
    rounded = built(LAYOUTS[layout], trained.spec)  # the trained layer with its rows rounded
    rounded.set_weights(trained.get_weights())
    for table in served.served_tables:
        (variable,) = [v for v in rounded.weights if v.name.endswith(f"/{table.name}:0")]
        full = np.zeros(variable.shape, np.float32)
        full[:, :2] = table.read()
        variable.assign(full)
    np.testing.assert_allclose(
        served(encoded(served.spec)).numpy(),
        rounded(encoded(trained.spec), width=2).numpy(),
        rtol=1e-6,
        atol=1e-6,
    )
    bytes_per_row = 2 + 4  # 2 int8 columns, a float16 scale and offset
    assert sum(t.nbytes for t in served.served_tables) == bytes_per_row * sum(
        int(t.values.shape[0]) for t in served.served_tables
    )


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_full_width_read_is_the_plain_read(layout: str) -> None:
    layer = built(LAYOUTS[layout], tiny_spec(width=4))
    set_random_weights(layer)
    np.testing.assert_array_equal(
        layer(encoded(layer.spec), width=layer.table_width).numpy(),
        layer(encoded(layer.spec)).numpy(),
    )


def test_a_served_width_wider_than_the_table_is_refused() -> None:
    trained = built(LAYOUTS["unified"], tiny_spec(width=4))
    with pytest.raises(
        ValueError, match=r"`served_width` should be in \[1, 4\].*Received: `served_width=8`"
    ):
        served_layer(trained, 8, "float32")
