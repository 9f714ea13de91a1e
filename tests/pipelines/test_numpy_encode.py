"""`numpy_encode.encode_cells` (what the pipeline's workers run) against the reference,
`features.encode_features` in TensorFlow (what the model and the SavedModel run): equal bit
for bit on numbers of every form the validation lets through, each transform, missing
tokens, categorical and multi-valued cells."""

from typing import cast

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.numpy_encode import encode_cells
from unified_embedding.contract.features import encode_features
from unified_embedding.contract.schemas import from_short_form
from unified_embedding.contract.spec import FeatureSpec


def spec_of(transform: str = "log1p", missing: tuple[str, ...] = ()) -> FeatureSpec:
    return from_short_form(
        {
            "columns": ["y", "n", "c", "m"],
            "label": "y",
            "delimiter": "\t",
            "header": False,
            "numeric": {"n": transform},
            "multi_valued": {"m": "|"},
            "probes": 3,
            "missing": list(missing),
        }
    )


def assert_same(spec: FeatureSpec, cells: dict[str, list[str]]) -> None:
    got = encode_cells(spec, {k: pa.array(v, pa.string()) for k, v in cells.items()})
    expected = encode_features(spec, {k: tf.constant(v, tf.string) for k, v in cells.items()})
    for f in spec.fields:
        want = expected[f.name]
        if isinstance(want, tf.RaggedTensor):
            flat, lengths = cast(tuple[np.ndarray, np.ndarray], got[f.name])
            np.testing.assert_array_equal(flat, want.flat_values.numpy())
            np.testing.assert_array_equal(lengths, want.row_lengths().numpy())
        elif f.kind == "numeric":
            value, reference = np.asarray(got[f.name]), want.numpy()
            assert value.dtype == np.float32
            np.testing.assert_array_equal(np.isnan(value), np.isnan(reference))
            ok = ~np.isnan(reference)  # equal bits (the sign of zero included) where a number
            np.testing.assert_array_equal(value[ok].view(np.int32), reference[ok].view(np.int32))
        else:
            np.testing.assert_array_equal(got[f.name], want.numpy())


def numbers(rng: np.random.Generator, count: int) -> list[str]:
    """Number cells in the forms validation accepts: integers, decimals, exponents, signs."""
    ints = rng.integers(-(10**9), 10**9, count)
    floats = rng.standard_normal(count) * 10.0 ** rng.integers(-30, 30, count)
    forms = [
        *map(str, ints),
        *map(repr, floats.astype(np.float32).tolist()),
        *map(repr, floats.tolist()),
        *(
            f"{x:.{k}e}"
            for x, k in zip(floats.tolist(), rng.integers(0, 20, count).tolist(), strict=True)
        ),
        *(
            f"{x:.{k}f}"
            for x, k in zip(floats.tolist(), rng.integers(0, 9, count).tolist(), strict=True)
        ),
    ]
    return [
        *forms,
        "",
        "0",
        "-0",
        "+0",
        "0.0",
        "-0.0",
        ".5",
        "5.",
        "+7",
        "1e5",
        "1E-5",
        "2",
        "3.4028234e38",
        "-3.4028235e38",
        "1e-45",
        "-1e-45",
        "1e-40",
        "-3e-39",
        "1.1754944e-38",
        "-1.1754942e-38",
        "7e-46",
        "2.5",
        "-2.5",
        "1.0000001",
    ]


@pytest.mark.parametrize("transform", ["identity", "log1p", "log_square"])
def test_numbers_of_every_form_under_each_transform(transform: str) -> None:
    cells = numbers(np.random.default_rng(0), 3000)
    filler = ["x"] * len(cells)
    assert_same(spec_of(transform), {"n": cells, "c": filler, "m": filler})


def test_every_count_up_to_a_million_under_log1p() -> None:
    # Criteo's numeric fields are counts: every one up to 10^6, then a sample up to 10^9
    cells = [
        *map(str, range(1_000_001)),
        *map(str, np.random.default_rng(1).integers(0, 10**9, 10**5)),
    ]
    filler = ["x"] * len(cells)
    assert_same(spec_of("log1p"), {"n": cells, "c": filler, "m": filler})


def test_categorical_and_multi_valued_cells_with_missing_tokens() -> None:
    cells = {
        "n": ["1", "NA", "", "3", "null", "4", "5"],
        "c": ["a", "", "NA", "日本", "null", "a", "x\x00"],
        "m": ["a|b|a", "", "NA", "|", "b||c", "null|a", "日|本"],
    }
    assert_same(spec_of("log1p", ("NA", "null")), cells)


def text_without(separators: str) -> st.SearchStrategy[str]:
    """Characters a cell can hold (UTF-8 encodable, no field or value separators)."""
    return st.characters(exclude_categories=["Cs"], exclude_characters=separators)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet=text_without("\t\n\r"), max_size=20),
            st.lists(st.text(alphabet=text_without("|\t\n\r"), max_size=8), max_size=4),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_random_cells(rows: list[tuple[str, list[str]]]) -> None:
    cells = {"n": ["1"] * len(rows), "c": [c for c, _ in rows], "m": ["|".join(m) for _, m in rows]}
    assert_same(spec_of(), cells)
